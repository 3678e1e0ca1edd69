"""rnnkit.nn and rnnkit.losses against torch (skipped where torch is not installed): the same
weights (loaded from torch state dicts) give the same outputs, final states, input gradients
and parameter gradients, for multi-layer bidirectional stacks with padded lengths."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnkit.nn as nn  # noqa: E402
from helpers import TORCH_CELLS as MODES  # noqa: E402
from helpers import SPECS, pack_state, unpack_state  # noqa: E402
from rnnkit.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss  # noqa: E402
from rnnkit.nn.cells import make_cell  # noqa: E402
from rnnkit.nn.recurrent import make_layer  # noqa: E402
from torch_peers import check_like_torch, torch_cell, torch_layer  # noqa: E402


def pair(mode, I, H, L, *, bidirectional, batch_first, dtype, seed=0, **kw):
    """A torch layer and an rnnkit layer holding the torch layer's weights."""
    torch.manual_seed(seed)
    tdt = torch.float64 if dtype == "float64" else torch.float32
    t = torch_layer(mode, I, H, L, bidirectional=bidirectional, batch_first=batch_first, **kw)
    r = make_layer(SPECS[mode], I, H, L, bidirectional=bidirectional, batch_first=batch_first,
                   dtype=dtype, seed=123, **kw)
    t = t.to(tdt)
    r.load_state_dict(t.state_dict())          # torch tensors load directly
    return t, r


def t_forward(t, mode, x, hx, lengths, batch_first):
    xt = torch.tensor(x, requires_grad=True)
    hxt = [torch.tensor(h, requires_grad=True) for h in hx]
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                      batch_first=batch_first,
                                                      enforce_sorted=False)
    out, state = t(inp, pack_state(mode, hxt))
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first,
                                                        total_length=x.shape[1 if batch_first
                                                                             else 0])
    return xt, hxt, out, unpack_state(mode, state)


def check(actual, expected, rtol, atol, name):
    check_like_torch(actual, expected, rtol, atol, name, same_dtype=False)


def compare(mode, *, bidirectional, batch_first, lengths, dtype, rtol, atol, L=2, seed=0):
    rng = np.random.default_rng(seed)
    T, B, I, H = 6, 4, 5, 7
    t, r = pair(mode, I, H, L, bidirectional=bidirectional, batch_first=batch_first,
                dtype=dtype, seed=seed)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    spec = SPECS[mode]
    n_states = len(spec.states)
    hx = [rng.standard_normal((L * D, B, H)).astype(dtype) for _ in range(n_states)]
    xt, hxt, out, states = t_forward(t, mode, x, hx, lengths, batch_first)
    y, s = r(x, pack_state(mode, hx), lengths=lengths)
    check(y, out, rtol, atol, "y")
    s = unpack_state(mode, s)
    assert len(s) == len(states) == n_states
    for name, a, e in zip(spec.state_n_names, s, states):
        check(a, e, rtol, atol, name)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ds = [rng.standard_normal((L * D, B, H)).astype(dtype) for _ in range(n_states)]
    loss = (out * torch.tensor(dy)).sum() + sum((a * torch.tensor(b)).sum()
                                                for a, b in zip(states, ds))
    loss.backward()
    dx, d0 = r.backward(dy, pack_state(mode, ds))
    dinit = unpack_state(mode, d0)
    assert len(dinit) == n_states
    check(dx, xt.grad, rtol, atol, "dx")
    for name, a, e in zip(("d" + n for n in spec.state0_names), dinit, hxt):
        check(a, e.grad, rtol, atol, name)
    tparams = dict(t.named_parameters())
    names = [n for n, _ in r.named_parameters()]
    assert names == list(tparams), "parameter names and order as torch"
    for name, p in r.named_parameters():
        check(p.grad, tparams[name].grad, rtol, atol, f"grad of {name}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_stack_with_lengths_matches_torch_float64(mode, bidirectional, batch_first):
    compare(mode, bidirectional=bidirectional, batch_first=batch_first,
            lengths=np.array([6, 2, 5, 1]), dtype="float64", rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("mode", MODES)
def test_three_layers_without_lengths_matches_torch_float64(mode):
    compare(mode, bidirectional=True, batch_first=False, lengths=None, dtype="float64",
            rtol=1e-9, atol=1e-11, L=3, seed=1)


@pytest.mark.parametrize("mode", MODES)
def test_float32_matches_torch(mode):
    # float32 kernels vs torch float32: differing summation orders, so ~1e-5 relative.
    compare(mode, bidirectional=True, batch_first=True, lengths=np.array([6, 3, 4, 1]),
            dtype="float32", rtol=2e-4, atol=2e-5, seed=2)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_and_no_bias_match_torch(mode):
    rng = np.random.default_rng(3)
    t, r = pair(mode, 3, 4, 2, bidirectional=True, batch_first=False, dtype="float64",
                bias=False)
    assert not any("bias" in n for n, _ in r.named_parameters())
    x = rng.standard_normal((5, 3))
    out, state = t(torch.tensor(x))
    y, s = r(x)
    check(y, out, 1e-10, 1e-12, "y")
    s, state = unpack_state(mode, s), unpack_state(mode, state)
    assert len(s) == len(state) == len(SPECS[mode].states)
    for a, e in zip(s, state):
        check(a, e, 1e-10, 1e-12, "state")


def test_rnnkit_state_dict_loads_into_torch_and_eval_dropout():
    rng = np.random.default_rng(4)
    r = nn.GRU(3, 5, 3, dropout=0.3, bidirectional=True, dtype="float64", seed=11)
    t = torch.nn.GRU(3, 5, 3, dropout=0.3, bidirectional=True).double()
    t.load_state_dict({k: torch.from_numpy(v) for k, v in r.state_dict().items()})
    r.eval()
    t.eval()   # eval: no dropout in either
    x = rng.standard_normal((4, 2, 3))
    y, h = r(x)
    out, ht = t(torch.tensor(x))
    check(y, out, 1e-10, 1e-12, "y")
    check(h, ht, 1e-10, 1e-12, "h_n")


@pytest.mark.parametrize("mode", MODES)
def test_cells_match_torch(mode):
    rng = np.random.default_rng(5)
    torch.manual_seed(0)
    B, I, H = 3, 4, 5
    t = torch_cell(mode, I, H).double()
    r = make_cell(SPECS[mode], I, H, dtype="float64")
    r.load_state_dict(t.state_dict())
    n_states = len(SPECS[mode].states)
    x = rng.standard_normal((B, I))
    hx = [rng.standard_normal((B, H)) for _ in range(n_states)]
    xt = torch.tensor(x, requires_grad=True)
    hxt = [torch.tensor(h, requires_grad=True) for h in hx]
    outs_t = unpack_state(mode, t(xt, pack_state(mode, hxt)))
    outs = unpack_state(mode, r(x, pack_state(mode, hx)))
    assert len(outs) == len(outs_t) == n_states
    douts = [rng.standard_normal((B, H)) for _ in outs]
    for a, e in zip(outs, outs_t):
        check(a, e, 1e-10, 1e-12, "cell output")
    sum((o * torch.tensor(d)).sum() for o, d in zip(outs_t, douts)).backward()
    dx, d0 = r.backward(*douts)
    dstates = unpack_state(mode, d0)
    assert len(dstates) == n_states
    check(dx, xt.grad, 1e-10, 1e-12, "dx")
    for a, e in zip(dstates, hxt):
        check(a, e.grad, 1e-10, 1e-12, "dstate")
    tp = dict(t.named_parameters())
    for name, p in r.named_parameters():
        check(p.grad, tp[name].grad, 1e-10, 1e-12, f"grad of {name}")


def test_embedding_linear_match_torch():
    rng = np.random.default_rng(6)
    torch.manual_seed(0)
    te = torch.nn.Embedding(7, 3, padding_idx=1).double()
    tl = torch.nn.Linear(3, 4).double()
    re_ = nn.Embedding(7, 3, padding_idx=1, dtype="float64")
    rl = nn.Linear(3, 4, dtype="float64")
    re_.load_state_dict(te.state_dict())
    rl.load_state_dict(tl.state_dict())
    idx = np.array([[1, 2, 2], [6, 1, 0]])
    out_t = tl(te(torch.tensor(idx)))
    out = rl(re_(idx))
    check(out, out_t, 1e-12, 1e-14, "Linear(Embedding(idx))")
    dy = rng.standard_normal(out.shape)
    (out_t * torch.tensor(dy)).sum().backward()
    assert re_.backward(rl.backward(dy)) is None
    check(rl.weight.grad, tl.weight.grad, 1e-12, 1e-14, "Linear weight grad")
    check(rl.bias.grad, tl.bias.grad, 1e-12, 1e-14, "Linear bias grad")
    check(re_.weight.grad, te.weight.grad, 1e-12, 1e-14, "Embedding weight grad")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_match_torch(reduction):
    rng = np.random.default_rng(7)
    z = rng.standard_normal((3, 5, 4)) * 4
    t = rng.integers(0, 4, (3, 5))
    t[0, 1] = t[2, 4] = -100
    zt = torch.tensor(z, requires_grad=True)
    # torch wants classes on axis 1: (B, C, T)
    lt = torch.nn.functional.cross_entropy(zt.permute(0, 2, 1), torch.tensor(t),
                                           ignore_index=-100, reduction=reduction)
    fn = CrossEntropyLoss(reduction=reduction)
    loss = fn(z, t)
    check(np.asarray(loss), lt, 1e-12, 1e-14, "cross-entropy")
    up = rng.standard_normal(t.shape) if reduction == "none" else 1.0
    (lt * torch.tensor(up)).sum().backward()
    check(fn.backward(up if reduction == "none" else None), zt.grad, 1e-12, 1e-14,
          "cross-entropy grad")

    p, y = rng.standard_normal((4, 3)), rng.random((4, 3))
    pw = [1.0, 2.0, 0.5]
    bce_t = torch.nn.BCEWithLogitsLoss(reduction=reduction,
                                       pos_weight=torch.tensor(pw, dtype=torch.float64))
    for ours, theirs in ((MSELoss(reduction), torch.nn.MSELoss(reduction=reduction)),
                         (BCEWithLogitsLoss(reduction, pos_weight=pw), bce_t)):
        pt = torch.tensor(p, requires_grad=True)
        lt = theirs(pt, torch.tensor(y))
        check(np.asarray(ours(p, y)), lt, 1e-12, 1e-14, type(ours).__name__)
        up = rng.standard_normal(p.shape) if reduction == "none" else 1.0
        (lt * torch.tensor(up)).sum().backward()
        check(ours.backward(up if reduction == "none" else None), pt.grad, 1e-12, 1e-14,
              type(ours).__name__ + " grad")
