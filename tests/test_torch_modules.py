"""rnnkit's kernels as torch modules (rnnkit.interop.torch_modules) against torch's own
nn.LSTM / GRU / RNN: outputs, final states and the gradients of the input, hx and every
parameter, for every cell, both dtypes, stacked, bidirectional, batch-first, packed; seeds,
state dicts, dropout, a training loop, torch.compile, the custom ops and bad inputs."""
import pytest

torch = pytest.importorskip("torch")

from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from rnnkit.interop import torch_modules as rk  # noqa: E402

T, B, I, H = 5, 3, 4, 6
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}
# name -> (torch class, rnnkit class, constructor keywords)
CELLS = {
    "lstm": (torch.nn.LSTM, rk.LSTM, {}),
    "lstm_proj": (torch.nn.LSTM, rk.LSTM, {"proj_size": 4}),
    "gru": (torch.nn.GRU, rk.GRU, {}),
    "rnn_tanh": (torch.nn.RNN, rk.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, rk.RNN, {"nonlinearity": "relu"}),
}
LAYOUTS = {
    "plain": dict(num_layers=1),
    "no_bias": dict(num_layers=1, bias=False),
    "stacked_bidir_batch_first": dict(num_layers=2, bidirectional=True, batch_first=True),
    "three_layers": dict(num_layers=3),
}
# torch's LSTM warns that oneDNN has no projection and it falls back to its own kernels.
ONEDNN_PROJ = "ignore:LSTM with projections is not supported with oneDNN:UserWarning"


def _pair(cell, dtype, **kw):
    """(torch module, rnnkit module) of `cell` with torch's weights copied into rnnkit's."""
    ref_cls, rk_cls, extra = CELLS[cell]
    ref = ref_cls(I, H, dtype=dtype, **extra, **kw)
    mine = rk_cls(I, H, dtype=dtype, **extra, **kw)
    mine.load_state_dict(ref.state_dict())
    return ref, mine


def _states(cell, m, batch, dtype, gen):
    """A random hx of the right shapes for module m (a tuple for the LSTM)."""
    ld = m.num_layers * (2 if m.bidirectional else 1)
    h = torch.randn(ld, batch, m.proj_size or m.hidden_size, dtype=dtype, generator=gen)
    if cell.startswith("lstm"):
        return (h, torch.randn(ld, batch, m.hidden_size, dtype=dtype, generator=gen))
    return h


def _as_tuple(h):
    return h if isinstance(h, tuple) else (h,)


def _run(m, x, hx, weights):
    """Forward, a loss touching output and every final state with distinct weights, backward;
    returns output, final states, x.grad, hx grads and the parameter grads by name."""
    x = x.detach().clone().requires_grad_(True)
    hx_in = None
    if hx is not None:
        hx_in = tuple(h.detach().clone().requires_grad_(True) for h in _as_tuple(hx))
    m.zero_grad()
    arg = None if hx_in is None else (hx_in if len(hx_in) == 2 else hx_in[0])
    y, state = m(x, arg)
    states = _as_tuple(state)
    loss = (y * weights).sum() + sum((s * s).sum() * (k + 1) for k, s in enumerate(states))
    loss.backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    return y, states, x.grad, None if hx_in is None else [h.grad for h in hx_in], grads


def _assert_same(got, want, tol):
    y, states, dx, dhx, grads = got
    y_r, states_r, dx_r, dhx_r, grads_r = want
    torch.testing.assert_close(y, y_r, **tol)
    for a, b in zip(states, states_r, strict=True):
        torch.testing.assert_close(a, b, **tol)
    torch.testing.assert_close(dx, dx_r, **tol)
    if dhx_r is not None:
        for a, b in zip(dhx, dhx_r, strict=True):
            torch.testing.assert_close(a, b, **tol)
    assert list(grads) == list(grads_r)
    for name in grads_r:
        torch.testing.assert_close(grads[name], grads_r[name], **tol, msg=name)


@pytest.mark.filterwarnings(ONEDNN_PROJ)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("with_hx", [True, False], ids=["hx", "no_hx"])
def test_outputs_and_gradients_equal_torch(cell, layout, dtype, with_hx):
    ref, mine = _pair(cell, dtype, **LAYOUTS[layout])
    gen = torch.Generator().manual_seed(7)
    shape = (B, T, I) if ref.batch_first else (T, B, I)
    x = torch.randn(shape, dtype=dtype, generator=gen)
    hx = _states(cell, ref, B, dtype, gen) if with_hx else None
    y_shape = ref(x)[0].shape
    weights = torch.randn(y_shape, dtype=dtype, generator=gen)
    _assert_same(_run(mine, x, hx, weights), _run(ref, x, hx, weights), TOL[dtype])


@pytest.mark.filterwarnings(ONEDNN_PROJ)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_packed_sequence_equals_torch(cell, enforce_sorted, dtype):
    ref, mine = _pair(cell, dtype, num_layers=2, bidirectional=True)
    gen = torch.Generator().manual_seed(11)
    lengths = torch.tensor([5, 4, 2, 1] if enforce_sorted else [2, 5, 1, 4])
    x = torch.randn(T, 4, I, dtype=dtype, generator=gen)
    hx = _states(cell, ref, 4, dtype, gen)
    out_w = torch.randn(T, 4, 2 * (ref.proj_size or H), dtype=dtype, generator=gen)
    results = []
    for m in (mine, ref):
        xx = x.clone().requires_grad_(True)
        hh = tuple(h.clone().requires_grad_(True) for h in _as_tuple(hx))
        packed = pack_padded_sequence(xx, lengths, enforce_sorted=enforce_sorted)
        y, state = m(packed, hh if len(hh) == 2 else hh[0])
        assert isinstance(y, torch.nn.utils.rnn.PackedSequence)
        padded, out_lengths = pad_packed_sequence(y)
        assert out_lengths.tolist() == lengths.tolist()
        states = _as_tuple(state)
        loss = (padded * out_w[:padded.shape[0]]).sum() + sum((s * s).sum() for s in states)
        m.zero_grad()
        loss.backward()
        results.append((padded, states, xx.grad, [h.grad for h in hh],
                        {n: p.grad for n, p in m.named_parameters()}))
        if m is mine:   # the packed output keeps the input's order bookkeeping
            assert torch.equal(y.batch_sizes, packed.batch_sizes)
            for a, b in ((y.sorted_indices, packed.sorted_indices),
                         (y.unsorted_indices, packed.unsorted_indices)):
                assert (a is None and b is None) or torch.equal(a, b)
    _assert_same(results[0], results[1], TOL[dtype])


@pytest.mark.filterwarnings(ONEDNN_PROJ)
@pytest.mark.parametrize("cell", list(CELLS))
def test_same_seed_gives_torchs_initial_weights_and_state_dicts_move_both_ways(cell):
    ref_cls, rk_cls, extra = CELLS[cell]
    torch.manual_seed(123)
    ref = ref_cls(I, H, num_layers=2, bidirectional=True, **extra)
    torch.manual_seed(123)
    mine = rk_cls(I, H, num_layers=2, bidirectional=True, **extra)
    ref_sd, mine_sd = ref.state_dict(), mine.state_dict()
    assert list(mine_sd) == list(ref_sd)
    for k in ref_sd:
        assert torch.equal(mine_sd[k], ref_sd[k]), k
    # Other weights, loaded in each direction with strict key checking.
    other = ref_cls(I, H, num_layers=2, bidirectional=True, **extra)
    mine.load_state_dict(other.state_dict())
    back = ref_cls(I, H, num_layers=2, bidirectional=True, **extra)
    back.load_state_dict(mine.state_dict())
    for k, v in other.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    assert [w.shape for ws in mine.all_weights for w in ws] == \
        [w.shape for ws in ref.all_weights for w in ws]


def test_dropout_between_layers_is_torchs_for_the_same_seed():
    ref, mine = _pair("lstm", torch.float64, num_layers=3, dropout=0.5, bidirectional=True,
                      batch_first=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    weights = torch.randn(B, T, 2 * H, dtype=torch.float64)
    torch.manual_seed(99)
    got = _run(mine, x, None, weights)
    torch.manual_seed(99)
    want = _run(ref, x, None, weights)
    _assert_same(got, want, TOL[torch.float64])
    # Another seed draws other masks (the dropout is really applied) ...
    torch.manual_seed(100)
    assert not torch.allclose(mine(x)[0], got[0])
    # ... and eval mode applies none, as torch's.
    mine.eval()
    ref.eval()
    torch.testing.assert_close(mine(x)[0], ref(x)[0], **TOL[torch.float64])


def test_dropout_with_packed_input_is_torchs_for_the_same_seed():
    ref, mine = _pair("gru", torch.float64, num_layers=2, dropout=0.3)
    x = torch.randn(T, 4, I, dtype=torch.float64)
    lengths = torch.tensor([3, 5, 1, 4])
    out = []
    for m in (mine, ref):
        torch.manual_seed(5)
        y, h = m(pack_padded_sequence(x, lengths, enforce_sorted=False))
        out.append((pad_packed_sequence(y)[0], h))
    torch.testing.assert_close(out[0][0], out[1][0], **TOL[torch.float64])
    torch.testing.assert_close(out[0][1], out[1][1], **TOL[torch.float64])


def test_dropout_warning_and_value_checks_as_torch():
    with pytest.warns(UserWarning, match="num_layers > 1"):
        rk.GRU(I, H, dropout=0.2)
    with pytest.raises(ValueError, match="dropout"):
        rk.GRU(I, H, num_layers=2, dropout=1.5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_relu"])
def test_unbatched_input_as_torch(cell):
    ref, mine = _pair(cell, torch.float64, num_layers=2, bidirectional=True)
    x = torch.randn(T, I, dtype=torch.float64)
    hx = _states(cell, ref, 1, torch.float64, torch.Generator().manual_seed(1))
    hx = tuple(h[:, 0] for h in hx) if isinstance(hx, tuple) else hx[:, 0]
    weights = torch.randn(T, 2 * H, dtype=torch.float64)
    got, want = _run(mine, x, hx, weights), _run(ref, x, hx, weights)
    assert got[0].shape == (T, 2 * H) and got[1][0].shape == (4, H)
    _assert_same(got, want, TOL[torch.float64])


def test_inference_without_grad_equals_torch_and_keeps_no_graph():
    ref, mine = _pair("lstm", torch.float32, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(B, T, I)
    with torch.no_grad():
        y, (h, c) = mine(x)
        y_r, (h_r, c_r) = ref(x)
    assert y.grad_fn is None
    for a, b in ((y, y_r), (h, h_r), (c, c_r)):
        torch.testing.assert_close(a, b, **TOL[torch.float32])


def test_output_edited_in_place_before_backward_is_caught_by_autograd():
    _, mine = _pair("gru", torch.float32)
    y, _ = mine(torch.randn(T, B, I))
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def _classifier(rnn_cls, dtype):
    torch.manual_seed(0)
    return torch.nn.ModuleDict({"rnn": rnn_cls(I, H, num_layers=2, batch_first=True,
                                               dtype=dtype),
                                "head": torch.nn.Linear(H, 3, dtype=dtype)})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_training_loop_follows_torchs_loss_curve(dtype):
    """20 steps of Adam with gradient clipping on a 2-layer GRU classifier: swapping
    nn.GRU for rnnkit's GRU (same initial weights) gives the same loss at every step."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 8, I, dtype=dtype, generator=gen)
    target = torch.randint(0, 3, (16,), generator=gen)
    curves = {}
    ref_model = _classifier(torch.nn.GRU, dtype)
    for name, cls in (("torch", torch.nn.GRU), ("rnnkit", rk.GRU)):
        model = _classifier(cls, dtype)
        model.load_state_dict(ref_model.state_dict())
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(20):
            opt.zero_grad()
            y, _ = model["rnn"](x)
            loss = torch.nn.functional.cross_entropy(model["head"](y[:, -1]), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            losses.append(loss.item())
        curves[name] = (torch.tensor(losses, dtype=torch.float64), model)
    assert curves["torch"][0][-1] < 0.8 * curves["torch"][0][0]   # it does learn
    tight = dict(rtol=1e-5, atol=0) if dtype == torch.float32 else dict(rtol=1e-10, atol=0)
    torch.testing.assert_close(curves["rnnkit"][0], curves["torch"][0], **tight)
    for (n, p), (_, q) in zip(curves["rnnkit"][1].named_parameters(),
                              curves["torch"][1].named_parameters()):
        torch.testing.assert_close(p, q, **TOL[dtype], msg=n)


# Inductor's import of torch.utils.mkldnn defines TorchScript classes, which torch itself
# deprecates: the warning is torch's own, raised while torch.compile loads its backend.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_runs_forward_and_backward_without_graph_breaks():
    """fullgraph=True: the custom ops trace without a graph break; compiled equals eager."""
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"rnn": rk.LSTM(I, H, num_layers=2, bidirectional=True),
                                 "head": torch.nn.Linear(2 * H, 2)})

    def loss_fn(x, h0, c0):
        y, (h_n, c_n) = model["rnn"](x, (h0, c0))
        return model["head"](y).square().mean() + h_n.sum() + c_n.sum()

    compiled = torch.compile(loss_fn, fullgraph=True)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, generator=gen)
    h0, c0 = torch.randn(4, B, H, generator=gen), torch.randn(4, B, H, generator=gen)
    grads = []
    for fn in (compiled, loss_fn):
        model.zero_grad()
        xs = [t.clone().requires_grad_(True) for t in (x, h0, c0)]
        loss = fn(*xs)
        loss.backward()
        grads.append([loss.detach()] + [t.grad for t in xs]
                     + [p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, **TOL[torch.float32])


# ------------------------------------------------------------------ the custom ops
def _op_args(training=True, lengths=None, dtype=torch.float64):
    gen = torch.Generator().manual_seed(2)

    def r(*shape):
        return torch.randn(*shape, dtype=dtype, generator=gen).requires_grad_(True)

    return ("lstm", r(T, B, I), r(B, H), r(B, H), r(4 * H, I), r(4 * H, H), r(4 * H), None,
            None, lengths, True, training)


def test_custom_ops_pass_torch_library_opcheck():
    # Without lengths: with them the saved activations at padded steps are never written
    # (nor read), and opcheck compares every output element of two runs.
    torch.library.opcheck(rk.recurrent_forward, _op_args())
    args = [a.detach() if isinstance(a, torch.Tensor) else a for a in _op_args()]
    # (the inference form has no backward: its inputs need no gradient)
    torch.library.opcheck(rk.recurrent_forward, tuple(args[:-1]) + (False,))
    cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse, _ = args
    y, finals, saved = rk.recurrent_forward(*args)
    dy = torch.randn_like(y)
    torch.library.opcheck(rk.recurrent_backward, (cell, dy, finals[0], None, x, h0, c0, w_ih,
                                                  w_hh, b_ih, b_hh, w_hr, lengths, y, saved,
                                                  reverse))


def test_custom_op_gradcheck_with_lengths():
    args = _op_args(lengths=torch.tensor([5, 2, 0]))

    def fn(x, h0, c0, w_ih, w_hh, b_ih):
        y, (h_n, c_n), _ = rk.recurrent_forward("lstm", x, h0, c0, w_ih, w_hh, b_ih, None,
                                                None, args[9], True, True)
        return y, h_n, c_n

    assert torch.autograd.gradcheck(fn, tuple(a for a in args[1:7]))


def test_backward_of_an_inference_forward_raises():
    y, _, saved = rk.recurrent_forward(*_op_args(training=False))
    assert saved == []
    with pytest.raises(RuntimeError, match="training=False"):
        y.sum().backward()


def test_backward_op_checks_its_arguments():
    args = [a.detach() if isinstance(a, torch.Tensor) else a for a in _op_args()]
    cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse, _ = args
    y, finals, saved = rk.recurrent_forward(*args)
    with pytest.raises(ValueError, match="saved must hold"):
        rk.recurrent_backward(cell, y, None, None, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr,
                              lengths, y, saved[:1], reverse)
    with pytest.raises(ValueError, match=r"saved\[0\] has shape"):
        rk.recurrent_backward(cell, y, None, None, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr,
                              lengths, y, [saved[1], saved[1]], reverse)
    with pytest.raises(ValueError, match="cell must be one of"):
        rk.recurrent_forward("lstm_peephole", *args[1:])


# ------------------------------------------------------------------ bad inputs
def test_bad_inputs_raise_clear_errors():
    lstm = rk.LSTM(I, H, num_layers=2)
    x = torch.randn(T, B, I)
    with pytest.raises(TypeError, match="dtype torch.float64 but the module's parameters"):
        lstm(x.double())
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        lstm(x.numpy())
    with pytest.raises(ValueError, match="CPU"):
        lstm(torch.empty(T, B, I, device="meta"))
    with pytest.raises(ValueError, match=r"input must be 3-D \(T, B, input_size\)"):
        lstm(torch.randn(T, B, I, 1))
    with pytest.raises(ValueError, match="input_size=4"):
        lstm(torch.randn(T, B, I + 1))
    with pytest.raises(ValueError, match=r"hx\[0\] has shape \(1, 3, 6\), expected \(2, 3, 6\)"):
        lstm(x, (torch.zeros(1, B, H), torch.zeros(2, B, H)))
    with pytest.raises(ValueError, match=r"hx\[1\] has shape"):
        lstm(x, (torch.zeros(2, B, H), torch.zeros(2, B + 1, H)))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        lstm(x, torch.zeros(2, B, H))
    with pytest.raises(TypeError, match="hx has dtype torch.float64"):
        rk.GRU(I, H)(x, torch.zeros(1, B, H, dtype=torch.float64))
    with pytest.raises(TypeError, match="hx must be a tensor"):
        rk.GRU(I, H)(x, (torch.zeros(1, B, H),))
    with pytest.raises(TypeError, match="float32 or .*float64"):
        rk.GRU(I, H, dtype=torch.float16)
    with pytest.raises(ValueError, match="CPU only"):
        rk.GRU(I, H, device="meta")
    half = rk.GRU(I, H).half()
    with pytest.raises(TypeError, match="float32 or .*float64"):
        half(x.half())
    with pytest.raises(ValueError, match="proj_size has to be smaller"):
        rk.LSTM(I, H, proj_size=H)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        rk.RNN(I, H, nonlinearity="gelu")
    with pytest.raises(TypeError, match="hidden_size should be of type int"):
        rk.GRU(I, 2.5)
    with pytest.raises(ValueError, match=r"PackedSequence's data must be \(N, input_size=5\)"):
        rk.GRU(I + 1, H)(pack_padded_sequence(x, torch.tensor([5, 3, 1])))
    with pytest.raises(TypeError, match="lengths must be an integer tensor"):
        rk.recurrent_forward("gru", x, None, None, torch.zeros(3 * H, I),
                             torch.zeros(3 * H, H), None, None, None, torch.ones(B), False,
                             False)
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\]"):
        rk.recurrent_forward("gru", x, None, None, torch.zeros(3 * H, I),
                             torch.zeros(3 * H, H), None, None, None, torch.tensor([9, 1, 1]),
                             False, False)


def test_use_rnnkit_kernels_swaps_torch_layers_in_place_with_same_results():
    torch.manual_seed(4)
    model = torch.nn.ModuleDict({"enc": torch.nn.GRU(I, H, num_layers=2, batch_first=True),
                                 "inner": torch.nn.Sequential(torch.nn.Linear(H, H)),
                                 "dec": torch.nn.LSTM(H, H, proj_size=2)}).double().eval()
    x = torch.randn(B, T, I, dtype=torch.float64)

    def run(m):
        y, _ = m["enc"](x)
        return m["dec"](m["inner"](y))[0]

    want = run(model)
    assert rk.use_rnnkit_kernels(model) is model
    assert type(model["enc"]) is rk.GRU and type(model["dec"]) is rk.LSTM
    assert not model["enc"].training and model["dec"].proj_size == 2
    torch.testing.assert_close(run(model), want, **TOL[torch.float64])
    single = torch.nn.RNN(I, H, nonlinearity="relu")
    swapped = rk.use_rnnkit_kernels(single)
    assert type(swapped) is rk.RNN and swapped.nonlinearity == "relu"
    with pytest.raises(TypeError, match="needs a torch.nn.Module"):
        rk.use_rnnkit_kernels("GRU")
