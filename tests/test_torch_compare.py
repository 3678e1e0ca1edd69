"""rnnkit.ops against torch.nn.LSTM / GRU / RNN (single layer), float32 and float64: outputs,
final states and every gradient, with lengths (packed sequences) and reverse (the reverse half
of a bidirectional torch module).  The numpy reference is held to torch here too, so all three
agree on the semantics.  Run with -s to see the max errors per cell and dtype."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import reference as ref  # noqa: E402
from helpers import TORCH_CELLS, SPECS, assert_close, backward, forward, grad_fields, make_problem, \
    max_errors, output_names, pack_state, scaled, unpack_state  # noqa: E402
from torch_peers import torch_layer  # noqa: E402

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
# rnnkit vs torch: both are float32 with their own rounding (a few ulp per op, sums over T*B
# for weight gradients), so allow ~1e-5 relative; float64 agrees to rounding.
TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-10, 1e-12)}

_errors = {}  # (impl, cell, dtype) -> [max abs, max rel]


@pytest.fixture(scope="module", autouse=True)
def _print_error_summary():
    yield
    print("\n\nmax difference to torch over outputs, final states and gradients "
          "(rel: where |expected| > 1e-3 * max |expected|):")
    for (impl, cell, dtype), (a, r) in sorted(_errors.items()):
        print(f"  {impl:9s} {cell:9s} {dtype:8s} max abs {a:.2e}  max rel {r:.2e}")


def _record(impl, cell, dtype, actual, expected):
    a, r = max_errors(actual, expected)
    e = _errors.setdefault((impl, cell, np.dtype(dtype).name), [0.0, 0.0])
    e[0], e[1] = max(e[0], a), max(e[1], r)


def torch_run(p, reverse):
    """Outputs and gradients of torch for problem p, in rnnkit's layout: dict with y, h_n,
    (c_n,) and the gradient fields.  Sequences of length 0 (which pack_padded_sequence
    rejects) are left out of the torch batch and filled in from the semantics: zero output,
    final state = initial state, dh0 = dh_n, dx = 0."""
    cell = p["cell"]
    spec = SPECS[cell]
    dtype = p["x"].dtype.type
    tdt = TORCH_DTYPE[dtype]
    T, B, I = p["x"].shape
    H = p["w_hh"].shape[1]
    bias = p["b_ih"] is not None
    lengths = p["lengths"]
    keep = np.arange(B) if lengths is None else np.flatnonzero(lengths > 0)
    Bk = len(keep)
    D = 2 if reverse else 1

    mod = torch_layer(cell, I, H, num_layers=1, bias=bias, bidirectional=reverse, dtype=tdt)
    sfx = "_reverse" if reverse else ""
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            if p[name] is not None:
                tname = {"w": "weight", "b": "bias"}[name[0]] + name[1:] + "_l0" + sfx
                getattr(mod, tname).copy_(torch.from_numpy(p[name]))

    def state(s):
        # (D, Bk, H); the forward half of a bidirectional module gets zeros (its output is
        # ignored and it does not touch the reverse half).
        full = np.zeros((D, Bk, H), dtype=dtype)
        if s is not None:
            full[-1] = s[keep]
        return torch.tensor(full, dtype=tdt, requires_grad=True)

    x = torch.tensor(p["x"][:, keep], dtype=tdt, requires_grad=True)
    s0 = [state(p[n]) for n in spec.state0_names]
    hx = pack_state(cell, s0)
    if lengths is None:
        out, hn = mod(x, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.from_numpy(lengths[keep]), enforce_sorted=False)
        out, hn = mod(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    y = out[..., (D - 1) * H:]
    outs = {"y": y}
    hn = unpack_state(cell, hn)
    assert len(hn) == len(spec.states)
    for o, s in zip(spec.state_n_names, hn):
        outs[o] = s[-1]

    tensors = [y]
    grads = [torch.from_numpy(p["dy"][:, keep])]
    for o in spec.state_n_names:
        if p["d" + o] is not None:
            tensors.append(outs[o])
            grads.append(torch.from_numpy(p["d" + o][keep]))
    torch.autograd.backward(tensors, grads)

    res = {}
    y_full = np.zeros((T, B, H), dtype=dtype)
    y_full[:, keep] = y.detach().numpy()
    res["y"] = y_full
    for o, s in zip(spec.state_n_names, spec.state0_names):
        full = np.zeros((B, H), dtype=dtype) if p[s] is None else p[s].copy()
        full[keep] = outs[o].detach().numpy()
        res[o] = full
    dx = np.zeros((T, B, I), dtype=dtype)
    dx[:, keep] = x.grad.numpy()
    res["dx"] = dx
    for n0, s, o in zip(spec.state0_names, s0, spec.state_n_names):
        d = "d" + o
        full = np.zeros((B, H), dtype=dtype) if p[d] is None else p[d].copy()
        full[keep] = s.grad[-1].numpy()
        res["d" + n0] = full
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
        tname = {"w": "weight", "b": "bias"}[name[0]] + name[1:] + "_l0" + sfx
        t = getattr(mod, tname, None)
        res["d" + name] = None if t is None else t.grad.numpy().copy()
    return res


def compare(impl_name, impl, p, reverse, rtol, atol):
    cell = p["cell"]
    want = torch_run(p, reverse)
    outs, cache = forward(impl, p, reverse=reverse)
    got = dict(zip(output_names(cell), outs))
    g = backward(impl, p, cache)
    for f in grad_fields(cell):
        got[f] = getattr(g, f)
    for k, expected in want.items():
        actual = got[k]
        if expected is None:
            assert actual is None, f"{k} should be None (no bias)"
            continue
        _record(impl_name, cell, p["x"].dtype, actual, expected)
        assert_close(actual, expected, rtol, scaled(atol, expected), f"{cell} {k}")


CASES = [
    # cell, T, B, I, H, lengths
    (cell, *shape) for cell in TORCH_CELLS for shape in ((6, 5, 7, 9, None), (7, 6, 5, 17, "mixed"))
]


def _case_id(c):
    return f"{c[0]}-T{c[1]}B{c[2]}I{c[3]}H{c[4]}-{'lengths' if c[5] else 'full'}"


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_reference_matches_torch(case, reverse):
    cell, T, B, I, H, lengths = case
    p = make_problem(cell, T, B, I, H, dtype=np.float64, seed=21, lengths=lengths)
    compare("reference", ref, p, reverse, 1e-10, 1e-12)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rnnkit_matches_torch(case, dtype, reverse):
    import rnnkit.ops as ops
    cell, T, B, I, H, lengths = case
    p = make_problem(cell, T, B, I, H, dtype=dtype, seed=22, lengths=lengths)
    compare("rnnkit", ops, p, reverse, *TOL[dtype])


@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_rnnkit_matches_torch_without_bias_and_state(cell):
    import rnnkit.ops as ops
    p = make_problem(cell, 5, 4, 3, 6, dtype=np.float64, seed=23, lengths="mixed", h0=False,
                     c0=False, bias=False, dh_n=False, dc_n=False)
    compare("rnnkit", ops, p, True, *TOL[np.float64])
