"""The projection LSTM (torch's ``nn.LSTM(proj_size=P)``) against torch (skipped where torch is
not installed): with torch's weights loaded, rnnkit.nn.LSTM(proj_size=P) and
rnnkit.ops.lstm_forward(w_hr=...) give torch's outputs, final states, input and initial-state
gradients and every parameter's gradient, in float64 (tight) and float32, for 1 and 2 layers,
one or two directions, batch_first, padded lengths (a length-0 sequence included), no bias,
no hx, eval mode, and 1 or 2 threads (bitwise the same). The mutation tests at the end check
that these comparisons do catch an ignored projection or a wrong projection gradient."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnkit
import rnnkit.ops
import rnnkit.ops.cells
from torch_peers import check_like_torch

T, B, I, H, P = 6, 4, 5, 7, 3
# torch's float32 CPU LSTM warns that oneDNN has no projection (it then runs its own code)
pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN:UserWarning")

TOL = {"float64": {"rtol": 1e-10, "atol": 1e-12}, "float32": {"rtol": 1e-5, "atol": 1e-5}}
TDT = {"float64": torch.float64, "float32": torch.float32}

# lengths cases: None (full batch), all >= 1 (torch's pack_padded_sequence), one length 0
# (torch's packing refuses it: each sequence runs alone in torch, length 0 by the definition)
LENGTHS = {"full": None, "padded": np.array([T, 2, 5, 1]), "zero": np.array([3, 0, T, 1])}


def check(actual, expected, rtol, atol, name):
    check_like_torch(actual, expected, rtol, atol, name, same_dtype=True)


def pair(L, *, bidirectional, batch_first, bias=True, dtype="float64", seed=0,
         sizes=(I, H, P)):
    """A torch projection LSTM and an rnnkit one holding its weights (loaded as numpy)."""
    i, h, p = sizes
    torch.manual_seed(seed)
    t = torch.nn.LSTM(i, h, L, bias=bias, batch_first=batch_first,
                      bidirectional=bidirectional, proj_size=p).to(TDT[dtype])
    r = rnnkit.nn.LSTM(i, h, L, bias=bias, batch_first=batch_first,
                       bidirectional=bidirectional, proj_size=p, dtype=dtype, seed=123)
    r.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    return t, r


def torch_run(t, x, hx, lengths, *, batch_first, per_sequence, dy, dh_n, dc_n):
    """torch's y, h_n, c_n and gradients (dx, dh0, dc0, {parameter: grad}).

    hx None: torch runs from zeros, whose gradients are the ones rnnkit returns as dh0, dc0.
    per_sequence: each sequence runs alone (its own length, its slice of hx); a length-0
    sequence is the definition, y = 0 and (h_n, c_n) = (h0, c0), so its dh0 = dh_n."""
    L_D, p = t.num_layers * (2 if t.bidirectional else 1), t.proj_size
    bsz = x.shape[0 if batch_first else 1]
    xt = torch.tensor(x, requires_grad=True)
    if hx is None:
        hx = (np.zeros((L_D, bsz, p), x.dtype), np.zeros((L_D, bsz, t.hidden_size), x.dtype))
    h0t, c0t = (torch.tensor(a, requires_grad=True) for a in hx)
    t.zero_grad()
    if per_sequence:
        tdim = 1 if batch_first else 0
        ys, hs, cs = [], [], []
        for b in range(bsz):
            n = int(lengths[b]) if lengths is not None else x.shape[tdim]
            h0b, c0b = h0t[:, b:b + 1], c0t[:, b:b + 1]
            if n == 0:
                width = p * (2 if t.bidirectional else 1)
                ys.append(torch.zeros((1, x.shape[tdim], width) if batch_first
                                      else (x.shape[tdim], 1, width), dtype=xt.dtype))
                hs.append(h0b)
                cs.append(c0b)
                continue
            xb = xt[b:b + 1, :n] if batch_first else xt[:n, b:b + 1]
            yb, (hb, cb) = t(xb, (h0b, c0b))
            pad = x.shape[tdim] - n
            if pad:
                yb = torch.cat([yb, torch.zeros((1, pad, yb.shape[2]) if batch_first
                                                else (pad, 1, yb.shape[2]), dtype=yb.dtype)],
                               dim=tdim)
            ys.append(yb)
            hs.append(hb)
            cs.append(cb)
        out = torch.cat(ys, dim=0 if batch_first else 1)
        h_n, c_n = torch.cat(hs, dim=1), torch.cat(cs, dim=1)
    else:
        inp = xt
        if lengths is not None:
            inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                          batch_first=batch_first,
                                                          enforce_sorted=False)
        out, (h_n, c_n) = t(inp, (h0t, c0t))
        if lengths is not None:
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(
                out, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
    loss = ((out * torch.tensor(dy)).sum() + (h_n * torch.tensor(dh_n)).sum()
            + (c_n * torch.tensor(dc_n)).sum())
    loss.backward()
    return out, h_n, c_n, xt.grad, h0t.grad, c0t.grad, {
        n: q.grad for n, q in t.named_parameters()}


def compare(L=2, *, bidirectional=True, batch_first=False, lengths="full", bias=True,
            with_hx=True, dtype="float64", eval_too=False, seed=0, dhx=True):
    rng = np.random.default_rng(seed)
    t, r = pair(L, bidirectional=bidirectional, batch_first=batch_first, bias=bias,
                dtype=dtype, seed=seed)
    D = 2 if bidirectional else 1
    lens = LENGTHS[lengths]
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    hx = (rng.standard_normal((L * D, B, P)).astype(dtype),
          rng.standard_normal((L * D, B, H)).astype(dtype)) if with_hx else None
    dy = rng.standard_normal((B, T, D * P) if batch_first else (T, B, D * P)).astype(dtype)
    dh_n = rng.standard_normal((L * D, B, P)).astype(dtype)
    dc_n = rng.standard_normal((L * D, B, H)).astype(dtype)
    if not dhx:
        dh_n, dc_n = np.zeros_like(dh_n), np.zeros_like(dc_n)
    tol = TOL[dtype]
    out, th, tc, tdx, tdh0, tdc0, tgrads = torch_run(
        t, x, hx, lens, batch_first=batch_first, per_sequence=lengths == "zero", dy=dy,
        dh_n=dh_n, dc_n=dc_n)

    y, (h_n, c_n) = r(x, hx, lengths=lens)
    check(y, out, name="y", **tol)
    check(h_n, th, name="h_n", **tol)
    check(c_n, tc, name="c_n", **tol)
    if lens is not None:  # padded outputs are exactly zero
        for b, n in enumerate(lens):
            assert not (y[b, n:] if batch_first else y[n:, b]).any()
    r.zero_grad()
    dx, (dh0, dc0) = r.backward(dy, (dh_n, dc_n) if dhx else None)
    check(dx, tdx, name="dx", **tol)
    check(dh0, tdh0, name="dh0", **tol)
    check(dc0, tdc0, name="dc0", **tol)
    names = [n for n, _ in r.named_parameters()]
    assert names == list(tgrads), "parameter names and order as torch"
    assert sum("weight_hr" in n for n in names) == L * D
    for name, prm in r.named_parameters():
        check(prm.grad, tgrads[name], name=f"grad of {name}", **tol)

    if eval_too:  # no cache, in-place kernels: the same outputs
        r.eval()
        ye, (he, ce) = r(x, hx, lengths=lens)
        r.train()
        check(ye, out, name="eval y", **tol)
        check(he, th, name="eval h_n", **tol)
        check(ce, tc, name="eval c_n", **tol)
        np.testing.assert_allclose(ye, y, rtol=1e-12 if dtype == "float64" else 1e-6, atol=0)
        np.testing.assert_allclose(he, h_n, rtol=1e-12 if dtype == "float64" else 1e-6, atol=0)
        np.testing.assert_allclose(ce, c_n, rtol=1e-12 if dtype == "float64" else 1e-6, atol=0)


# ------------------------------------------------------------------ nn.LSTM(proj_size=P)
@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("L", [1, 2])
def test_matches_torch_float64(L, bidirectional, batch_first, lengths):
    compare(L, bidirectional=bidirectional, batch_first=batch_first, lengths=lengths,
            dtype="float64")


@pytest.mark.parametrize("lengths", ["full", "zero"])
@pytest.mark.parametrize("with_hx", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bias_and_hx_match_torch(dtype, bias, with_hx, lengths):
    compare(2, bidirectional=True, batch_first=False, lengths=lengths, bias=bias,
            with_hx=with_hx, dtype=dtype, seed=1)


@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_torch_float32(bidirectional, batch_first, lengths):
    compare(2, bidirectional=bidirectional, batch_first=batch_first, lengths=lengths,
            dtype="float32", seed=2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_eval_mode_gives_the_same_outputs(bidirectional, batch_first, lengths, dtype):
    compare(2, bidirectional=bidirectional, batch_first=batch_first, lengths=lengths,
            dtype=dtype, eval_too=True, seed=3)


@pytest.mark.parametrize("L", [1, 2])
def test_eval_single_step_matches_torch(L):
    # T = 1 in eval mode (the layers' single-step path, which packs weights without w_hr)
    t, r = pair(L, bidirectional=False, batch_first=True)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, 1, I))
    hx = (rng.standard_normal((L, B, P)), rng.standard_normal((L, B, H)))
    r.eval()
    y, (h_n, c_n) = r(x, hx)
    with torch.no_grad():
        ty, (th, tc) = t(torch.tensor(x), tuple(torch.tensor(a) for a in hx))
    for name, a, e in (("y", y, ty), ("h_n", h_n, th), ("c_n", c_n, tc)):
        check(a, e, name=name, **TOL["float64"])


def test_without_dhx_matches_torch():
    compare(2, bidirectional=True, lengths="zero", dhx=False, seed=5)


def test_gradients_accumulate():
    # two forward/backward passes without zero_grad: every p.grad is twice torch's
    t, r = pair(2, bidirectional=True, batch_first=False)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, B, I))
    dy = rng.standard_normal((T, B, 2 * P))
    *_, tgrads = torch_run(t, x, None, None, batch_first=False, per_sequence=False, dy=dy,
                           dh_n=np.zeros((4, B, P)), dc_n=np.zeros((4, B, H)))
    r.zero_grad()
    for _ in range(2):
        r(x)
        r.backward(dy)
    for name, prm in r.named_parameters():
        check(prm.grad, 2 * tgrads[name], name=f"grad of {name}", **TOL["float64"])


# ------------------------------------------------------------------ threads
def _big_run(dtype, threads):
    Bb, Tb, Ib, Hb, Pb = 16, 5, 32, 256, 64
    rng = np.random.default_rng(7)
    r = rnnkit.nn.LSTM(Ib, Hb, 2, bidirectional=True, proj_size=Pb, dtype=dtype, seed=11)
    x = rng.standard_normal((Tb, Bb, Ib)).astype(dtype)
    hx = (rng.standard_normal((4, Bb, Pb)).astype(dtype),
          rng.standard_normal((4, Bb, Hb)).astype(dtype))
    lens = rng.integers(0, Tb + 1, Bb)
    lens[:2] = (Tb, 0)
    dy = rng.standard_normal((Tb, Bb, 2 * Pb)).astype(dtype)
    dhx = (rng.standard_normal((4, Bb, Pb)).astype(dtype),
           rng.standard_normal((4, Bb, Hb)).astype(dtype))
    old = rnnkit.get_num_threads()
    try:
        rnnkit.set_num_threads(threads)
        y, (h_n, c_n) = r(x, hx, lengths=lens)
        r.zero_grad()
        dx, (dh0, dc0) = r.backward(dy, dhx)
        r.eval()
        ye, (he, ce) = r(x, hx, lengths=lens)
    finally:
        rnnkit.set_num_threads(old)
    return [y, h_n, c_n, dx, dh0, dc0, ye, he, ce] + [p.grad.copy()
                                                      for _, p in r.named_parameters()]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_and_two_threads_bitwise_identical(dtype):
    old = rnnkit.get_num_threads()
    one = _big_run(dtype, 1)
    two = _big_run(dtype, 2)
    assert rnnkit.get_num_threads() == old
    for k, (a, b) in enumerate(zip(one, two)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b), f"array {k} differs between 1 and 2 threads"


# ------------------------------------------------------------------ ops form
def _ops_case(dtype, bias, with_state, lengths, seed=8):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    t = torch.nn.LSTM(I, H, 1, bias=bias, proj_size=P).to(TDT[dtype])
    w = {n: q.detach().numpy() for n, q in t.named_parameters()}
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((B, P)).astype(dtype) if with_state else None
    c0 = rng.standard_normal((B, H)).astype(dtype) if with_state else None
    dy = rng.standard_normal((T, B, P)).astype(dtype)
    dh_n = rng.standard_normal((B, P)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype)
    return t, w, x, h0, c0, dy, dh_n, dc_n, LENGTHS[lengths]


def _torch_ops_reference(t, x, h0, c0, dy, dh_n, dc_n, lens, reverse):
    """torch on each sequence alone (flipped within its length for reverse=True); the output
    is flipped back into place. Length 0: y = 0, final states = initial states."""
    dt = x.dtype
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0 if h0 is not None else np.zeros((B, P), dt), requires_grad=True)
    c0t = torch.tensor(c0 if c0 is not None else np.zeros((B, H), dt), requires_grad=True)
    t.zero_grad()
    ys, hs, cs = [], [], []
    for b in range(B):
        n = T if lens is None else int(lens[b])
        if n == 0:
            ys.append(torch.zeros((T, 1, P), dtype=xt.dtype))
            hs.append(h0t[b:b + 1])
            cs.append(c0t[b:b + 1])
            continue
        xb = xt[:n, b:b + 1]
        if reverse:
            xb = xb.flip(0)
        yb, (hb, cb) = t(xb, (h0t[b:b + 1][None], c0t[b:b + 1][None]))
        if reverse:
            yb = yb.flip(0)
        ys.append(torch.cat([yb, torch.zeros((T - n, 1, P), dtype=yb.dtype)], 0))
        hs.append(hb[0])
        cs.append(cb[0])
    y, h_n, c_n = torch.cat(ys, 1), torch.cat(hs, 0), torch.cat(cs, 0)
    ((y * torch.tensor(dy)).sum() + (h_n * torch.tensor(dh_n)).sum()
     + (c_n * torch.tensor(dc_n)).sum()).backward()
    return y, h_n, c_n, xt.grad, h0t.grad, c0t.grad, {n: q.grad for n, q in t.named_parameters()}


@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ops_lstm_forward_w_hr_matches_torch(dtype, reverse, bias, with_state, lengths):
    t, w, x, h0, c0, dy, dh_n, dc_n, lens = _ops_case(dtype, bias, with_state, lengths)
    tol = TOL[dtype]
    ty, th, tc, tdx, tdh0, tdc0, tg = _torch_ops_reference(t, x, h0, c0, dy, dh_n, dc_n, lens,
                                                           reverse)
    args = (x, h0, c0, w["weight_ih_l0"], w["weight_hh_l0"], w.get("bias_ih_l0"),
            w.get("bias_hh_l0"))
    y, h_n, c_n, cache = rnnkit.ops.lstm_forward(*args, lengths=lens, reverse=reverse,
                                                 w_hr=w["weight_hr_l0"])
    check(y, ty, name="y", **tol)
    check(h_n, th, name="h_n", **tol)
    check(c_n, tc, name="c_n", **tol)
    g = rnnkit.ops.lstm_backward(cache, dy, dh_n, dc_n)
    assert isinstance(g, rnnkit.ops.LSTMProjectedGrads)
    assert g._fields == ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_hr")
    check(g.dx, tdx, name="dx", **tol)
    check(g.dh0, tdh0, name="dh0", **tol)
    check(g.dc0, tdc0, name="dc0", **tol)
    check(g.dw_ih, tg["weight_ih_l0"], name="dw_ih", **tol)
    check(g.dw_hh, tg["weight_hh_l0"], name="dw_hh", **tol)
    check(g.dw_hr, tg["weight_hr_l0"], name="dw_hr", **tol)
    if bias:
        check(g.db_ih, tg["bias_ih_l0"], name="db_ih", **tol)
        check(g.db_hh, tg["bias_hh_l0"], name="db_hh", **tol)
    else:
        assert g.db_ih is None and g.db_hh is None
    # inference: the same outputs, no cache
    ye, he, ce, none = rnnkit.ops.lstm_forward(*args, lengths=lens, reverse=reverse,
                                               training=False, w_hr=w["weight_hr_l0"])
    assert none is None
    check(ye, ty, name="eval y", **tol)
    check(he, th, name="eval h_n", **tol)
    check(ce, tc, name="eval c_n", **tol)


# ------------------------------------------------------------------ the checks catch bugs
def _ignored_w_hr(real):
    # as if the kernels ignored the projection: h = the first P units of o * tanh(c)
    def forward(*args, w_hr=None, **kw):
        if w_hr is not None:
            w_hr = np.eye(*w_hr.shape, dtype=w_hr.dtype)
        return real(*args, w_hr=w_hr, **kw)
    return forward


def _perturbed_w_hr(real, how):
    w_hr_perturbations = {"scaled": lambda d: d * (1 + 1e-6), "zero": np.zeros_like,
                          "sign": lambda d: -d}

    def forward(*args, w_hr=None, **kw):
        if w_hr is not None:
            w_hr = w_hr * (1 + 1e-6)
        return real(*args, w_hr=w_hr, **kw)

    def backward(cache, dy, dstate_n=None, *, into=None, **kw):
        if cache.w_hr is None:
            return real(cache, dy, dstate_n, into=into, **kw)
        if into is None:  # the ops form: fresh arrays, returned last
            dx, ds, grads = real(cache, dy, dstate_n, into=into, **kw)
            return dx, ds, grads[:-1] + (w_hr_perturbations[how](grads[-1]),)
        before = into[-1].copy()   # the layers: add into p.grad; perturb only this increment
        out = real(cache, dy, dstate_n, into=into, **kw)
        into[-1][...] = before + w_hr_perturbations[how](into[-1] - before)
        return out
    return forward if how == "forward" else backward


@pytest.mark.parametrize("mutation", ["ignored", "forward", "scaled", "zero", "sign"])
def test_layer_comparison_catches_projection_bugs(monkeypatch, mutation):
    compare(2, lengths="padded")   # passes unpatched
    if mutation == "ignored":
        monkeypatch.setattr(rnnkit.ops, "sequence_forward",
                            _ignored_w_hr(rnnkit.ops.sequence_forward))
    elif mutation == "forward":
        monkeypatch.setattr(rnnkit.ops, "sequence_forward",
                            _perturbed_w_hr(rnnkit.ops.sequence_forward, "forward"))
    else:
        monkeypatch.setattr(rnnkit.ops, "sequence_backward",
                            _perturbed_w_hr(rnnkit.ops.sequence_backward, mutation))
    match = "grad of weight_hr" if mutation in ("scaled", "zero", "sign") else "y"
    with pytest.raises(AssertionError, match=match):
        compare(2, lengths="padded")
    monkeypatch.undo()
    compare(2, lengths="padded")


@pytest.mark.parametrize("mutation", ["ignored", "scaled"])
def test_ops_comparison_catches_projection_bugs(monkeypatch, mutation):
    cells = rnnkit.ops.cells
    if mutation == "ignored":
        monkeypatch.setattr(cells, "sequence_forward", _ignored_w_hr(cells.sequence_forward))
        match = "^y"
    else:
        monkeypatch.setattr(cells, "sequence_backward",
                            _perturbed_w_hr(cells.sequence_backward, "scaled"))
        match = "dw_hr"
    with pytest.raises(AssertionError, match=match):
        test_ops_lstm_forward_w_hr_matches_torch("float64", True, True, True, "padded")
    monkeypatch.undo()
    test_ops_lstm_forward_w_hr_matches_torch("float64", True, True, True, "padded")
