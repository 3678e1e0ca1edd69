"""rnnkit.nn layers without torch: gradients by finite differences (float64), forward values
against numpy or against independent runs (each padded sequence alone), and the Module
machinery (names, state dicts, modes, errors)."""

import numpy as np
import pytest

import rnnkit.nn as nn
from helpers import CELLS as MODES
from helpers import SPECS, pack_state, unpack_state
from rnnkit.nn.cells import make_cell as _make_cell
from rnnkit.nn.recurrent import make_layer


def make_rnn(mode, *args, **kw):
    return make_layer(SPECS[mode], *args, **kw)


def make_cell(mode, i, h, **kw):
    return _make_cell(SPECS[mode], i, h, **kw)


def close(actual, expected, rtol=1e-10, atol=1e-12, name="array"):
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, f"{name}: shape {a.shape} != {e.shape}"
    diff = np.abs(a - e)
    ok = diff <= atol + rtol * np.abs(e)
    if not ok.all():
        bad = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise AssertionError(f"{name}: max abs diff {diff.max():.3e}; first bad index {bad}: "
                             f"{a[bad]!r} vs {e[bad]!r}")


def directional_check(loss_fn, arrays, grads, rng, eps=1e-6, rtol=1e-6, atol=1e-9, names=None):
    """For each array a (mutated in place and restored) compare <grad, v> with the central
    difference of loss_fn along a random direction v."""
    for k, (a, g) in enumerate(zip(arrays, grads)):
        v = rng.standard_normal(a.shape)
        orig = a.copy()
        a[...] = orig + eps * v
        lp = loss_fn()
        a[...] = orig - eps * v
        lm = loss_fn()
        a[...] = orig
        fd = (lp - lm) / (2 * eps)
        an = float(np.sum(g * v))
        name = names[k] if names else str(k)
        assert abs(fd - an) <= atol + rtol * abs(fd), f"{name}: analytic {an!r} vs fd {fd!r}"


def run_layer(layer, mode, x, hx, lengths):
    y, state = layer(x, hx, lengths=lengths)
    return y, unpack_state(mode, state)


# ----------------------------------------------------------------- recurrent: gradients
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_recurrent_gradients_match_finite_differences(mode, batch_first):
    rng = np.random.default_rng(1)
    T, B, I, H, L = 5, 4, 3, 4, 2
    layer = make_rnn(mode, I, H, L, bidirectional=True, batch_first=batch_first,
                     dtype="float64", seed=3)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    n_states = len(SPECS[mode].states)
    hx = [rng.standard_normal((2 * L, B, H)) for _ in range(n_states)]
    lengths = np.array([5, 0, 3, 1])
    y, _ = run_layer(layer, mode, x, pack_state(mode, hx), lengths)
    dy = rng.standard_normal(y.shape)
    dstate = [rng.standard_normal((2 * L, B, H)) for _ in range(n_states)]

    def loss():
        yy, ss = run_layer(layer, mode, x, pack_state(mode, hx), lengths)
        return float(np.sum(yy * dy) + sum(np.sum(s * d) for s, d in zip(ss, dstate)))

    loss()
    dx, d0 = layer.backward(dy, pack_state(mode, dstate))
    dinit = unpack_state(mode, d0)
    assert len(dinit) == n_states
    names, params = zip(*layer.named_parameters())
    directional_check(loss, [x] + hx + [p.data for p in params],
                      [dx] + dinit + [p.grad for p in params], rng,
                      names=["x"] + list(SPECS[mode].state0_names) + list(names))
    # padded steps get no input gradient; length-0 sequence passes dh_n straight to h0
    tmask = (np.arange(T)[:, None] < lengths[None, :])
    tmask = tmask.T if batch_first else tmask
    assert np.all(dx[~tmask] == 0)
    close(dinit[0][:, 1], dstate[0][:, 1], name="dh0 of the length-0 sequence")


@pytest.mark.parametrize("mode", MODES)
def test_dropout_between_layers_gradients(mode):
    rng = np.random.default_rng(2)
    T, B, I, H = 4, 3, 2, 3
    layer = make_rnn(mode, I, H, 3, dropout=0.4, dtype="float64", seed=0)
    x = rng.standard_normal((T, B, I))

    def fwd():
        layer._rng = np.random.default_rng(99)   # the same masks for every evaluation
        return layer(x)[0]

    y = fwd()
    dy = rng.standard_normal(y.shape)
    loss = lambda: float(np.sum(fwd() * dy))  # noqa: E731
    loss()
    dx = layer.backward(dy)[0]
    params = list(layer.parameters())
    directional_check(loss, [x] + [p.data for p in params], [dx] + [p.grad for p in params],
                      rng)
    # dropout active: training output differs from eval output; eval is deterministic
    y_train = fwd()
    layer.eval()
    y_eval = layer(x)[0]
    assert not np.allclose(y_train, y_eval)
    close(layer(x)[0], y_eval)


def test_dropout_masks_reproducible_from_seed():
    x = np.random.default_rng(0).standard_normal((6, 5, 3))
    a = nn.GRU(3, 8, 2, dropout=0.5, seed=7)
    b = nn.GRU(3, 8, 2, dropout=0.5, seed=7)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    # dropout p=1 zeroes everything reaching the last layer: its output is what zero input gives
    c = nn.RNN(3, 4, 2, dropout=1.0, seed=1, dtype="float64")
    y = c(x)[0]
    ref = nn.RNN(4, 4, seed=0, dtype="float64")
    ref.load_state_dict({k[:-1] + "0": v for k, v in c.state_dict().items() if k.endswith("l1")})
    close(y, ref(np.zeros((6, 5, 4)))[0])


# ----------------------------------------------------------------- recurrent: semantics
@pytest.mark.parametrize("mode", MODES)
def test_lengths_match_each_sequence_run_alone(mode):
    """A padded batch with lengths gives, for each sequence, what running it alone gives."""
    rng = np.random.default_rng(3)
    T, B, I, H, L = 6, 4, 3, 5, 2
    layer = make_rnn(mode, I, H, L, bidirectional=True, dtype="float64", seed=5)
    layer.eval()
    x = rng.standard_normal((T, B, I))
    n_states = len(SPECS[mode].states)
    hx = [rng.standard_normal((2 * L, B, H)) for _ in range(n_states)]
    lengths = np.array([6, 2, 0, 4])
    y, states = run_layer(layer, mode, x, pack_state(mode, hx), lengths)
    assert y.shape == (T, B, 2 * H)
    for b, n in enumerate(lengths):
        assert np.all(y[n:, b] == 0), "outputs past the length must be 0"
        if n == 0:
            for s, h in zip(states, hx):
                close(s[:, b], h[:, b], name="final state of a length-0 sequence")
            continue
        hb = [h[:, b:b + 1] for h in hx]
        yb, sb = run_layer(layer, mode, x[:n, b:b + 1], pack_state(mode, hb), None)
        close(y[:n, b], yb[:, 0], name=f"y of sequence {b}")
        for s, s1 in zip(states, sb):
            close(s[:, b], s1[:, 0], name=f"final state of sequence {b}")


@pytest.mark.parametrize("mode", MODES)
def test_batch_first_and_unbatched_agree_with_time_major(mode):
    rng = np.random.default_rng(4)
    T, B, I, H = 5, 3, 4, 3
    tm = make_rnn(mode, I, H, 2, bidirectional=True, dtype="float64", seed=1)
    bf = make_rnn(mode, I, H, 2, bidirectional=True, batch_first=True, dtype="float64", seed=1)
    x = rng.standard_normal((T, B, I))
    lengths = np.array([5, 3, 1])
    y, s = run_layer(tm, mode, x, None, lengths)
    yb, sb = run_layer(bf, mode, x.transpose(1, 0, 2), None, lengths)
    close(yb, y.transpose(1, 0, 2))
    for a, b in zip(s, sb):
        close(b, a)   # states are (L*D, B, H) with batch_first too
    dy = rng.standard_normal(y.shape)
    dx = tm.backward(dy)[0]
    dxb = bf.backward(dy.transpose(1, 0, 2))[0]
    close(dxb, dx.transpose(1, 0, 2))
    # unbatched (T, I) is batch of one
    y1, s1 = run_layer(tm, mode, x[:, 0], None, None)
    y2, s2 = run_layer(tm, mode, x[:, :1], None, None)
    close(y1, y2[:, 0])
    for a, b in zip(s1, s2):
        assert a.shape == (4, H)
        close(a, b[:, 0])


def test_recurrent_output_shapes_and_dtype():
    x = np.zeros((7, 2, 3), np.float64)
    lstm = nn.LSTM(3, 5, num_layers=3, bidirectional=True)
    y, (h, c) = lstm(x)
    assert y.shape == (7, 2, 10) and h.shape == (6, 2, 5) and c.shape == (6, 2, 5)
    assert y.dtype == np.float32 and h.dtype == np.float32   # the layer's dtype, not x's
    g = nn.GRU(3, 4, batch_first=True, dtype="float64")
    y, h = g(np.zeros((2, 7, 3), np.float32))
    assert y.shape == (2, 7, 4) and h.shape == (1, 2, 4) and y.dtype == np.float64
    r = nn.RNN(3, 4, 1, "relu", False)       # torch's positional order
    assert r.nonlinearity == "relu" and not r.bias
    assert [n for n, _ in r.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    y, h = r(np.ones((2, 1, 3)))
    assert y.shape == (2, 1, 4)


def test_parameter_names_order_init_and_seed():
    lstm = nn.LSTM(3, 16, num_layers=2, bidirectional=True, seed=0)
    names = [n for n, _ in lstm.named_parameters()]
    expected = []
    for k in range(2):
        for sfx in ("", "_reverse"):
            expected += [f"weight_ih_l{k}{sfx}", f"weight_hh_l{k}{sfx}", f"bias_ih_l{k}{sfx}",
                         f"bias_hh_l{k}{sfx}"]
    assert names == expected
    shapes = dict((n, p.shape) for n, p in lstm.named_parameters())
    assert shapes["weight_ih_l0"] == (64, 3) and shapes["weight_ih_l1_reverse"] == (64, 32)
    assert shapes["weight_hh_l1"] == (64, 16) and shapes["bias_hh_l0"] == (64,)
    allw = np.concatenate([p.data.ravel() for p in lstm.parameters()])
    bound = 1 / np.sqrt(16)
    assert np.all(np.abs(allw) <= bound)
    # uniform on [-b, b]: std b/sqrt(3)
    assert abs(allw.std() - bound / np.sqrt(3)) < 0.05 * bound
    assert abs(allw.mean()) < 0.05 * bound
    again = nn.LSTM(3, 16, num_layers=2, bidirectional=True, seed=0)
    other = nn.LSTM(3, 16, num_layers=2, bidirectional=True, seed=1)
    for (_, a), (_, b), (_, c) in zip(lstm.named_parameters(), again.named_parameters(),
                                      other.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data)
        assert not np.array_equal(a.data, c.data)
        assert np.all(a.grad == 0) and a.grad.shape == a.data.shape


def test_backward_adds_into_grad_and_zero_grad_clears():
    rng = np.random.default_rng(0)
    layer = nn.GRU(2, 3, dtype="float64", seed=0)
    x = rng.standard_normal((4, 2, 2))
    dy = rng.standard_normal((4, 2, 3))
    layer(x)
    layer.backward(dy)
    first = [p.grad.copy() for p in layer.parameters()]
    layer(x)
    layer.backward(dy)
    for p, g in zip(layer.parameters(), first):
        close(p.grad, 2 * g)
    layer.zero_grad()
    assert all(np.all(p.grad == 0) for p in layer.parameters())


# ----------------------------------------------------------------- cells
@pytest.mark.parametrize("mode", MODES)
def test_cell_gradients_and_custom_loop_matches_layer(mode):
    rng = np.random.default_rng(5)
    T, B, I, H = 4, 3, 2, 5
    cell = make_cell(mode, I, H, dtype="float64", seed=2)
    layer = make_rnn(mode, I, H, dtype="float64", seed=9)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = rng.standard_normal((T, B, I))
    n_states = len(SPECS[mode].states)
    state = [rng.standard_normal((B, H)) for _ in range(n_states)]
    hx = pack_state(mode, [s[None] for s in state])
    y_ref, s_ref = run_layer(layer, mode, x, hx, None)
    dy = rng.standard_normal((T, B, H))
    dlast = rng.standard_normal((B, H))
    # the gradient reaches h_n only (dh_n = dlast); the other final states get None
    dx_ref, d0_ref = layer.backward(dy, pack_state(mode, [dlast[None]] + [None] * (n_states - 1)))
    d0_ref = unpack_state(mode, d0_ref)
    # T steps forward with the cell, then T backward calls in reverse (the cache stack)
    s = pack_state(mode, state)
    for t in range(T):
        s = cell(x[t], s)
        close(unpack_state(mode, s)[0], y_ref[t], name=f"h at step {t}")
    ds = [dlast] + [None] * (n_states - 1)
    dxs = []
    for t in reversed(range(T)):
        dxt, d = cell.backward(ds[0] + dy[t], *ds[1:])
        ds = unpack_state(mode, d)
        dxs.append(dxt)
    close(np.stack(dxs[::-1]), dx_ref, name="dx")
    for name, a, e in zip(SPECS[mode].state0_names, ds, d0_ref):
        close(a, e[0], name="d" + name)
    for name, p in cell.named_parameters():
        close(p.grad, layer._parameters[name + "_l0"].grad, name=name)
    with pytest.raises(RuntimeError, match="training-mode forward"):
        cell.backward(*ds)


@pytest.mark.parametrize("mode", MODES)
def test_cell_finite_differences_and_unbatched(mode):
    rng = np.random.default_rng(6)
    B, I, H = 3, 4, 2
    cell = make_cell(mode, I, H, dtype="float64", seed=2)
    n_states = len(SPECS[mode].states)
    x = rng.standard_normal((B, I))
    hx = [rng.standard_normal((B, H)) for _ in range(n_states)]
    douts = [rng.standard_normal((B, H)) for _ in range(n_states)]

    def loss():
        out = unpack_state(mode, cell(x, pack_state(mode, hx)))
        return float(sum(np.sum(o * d) for o, d in zip(out, douts)))

    loss()
    dx, d0 = cell.backward(*douts)
    dstates = unpack_state(mode, d0)
    assert len(dstates) == n_states
    # The FD forwards stay in training mode: they perturb the parameters in place, which an
    # eval-mode cell forbids while it serves from a packed copy (see test_cell_fast_path.py).
    params = list(cell.parameters())
    directional_check(loss, [x] + hx + [p.data for p in params],
                      [dx] + dstates + [p.grad for p in params], rng)
    # unbatched x (I,) with state (H,)
    out1 = unpack_state(mode, cell(x[1], pack_state(mode, [h[1] for h in hx])))
    outb = unpack_state(mode, cell(x[1:2], pack_state(mode, [h[1:2] for h in hx])))
    for a, b in zip(out1, outb):
        assert a.shape == (H,)
        close(a, b[0])
    # hx None means zeros
    z = unpack_state(mode, cell(x))
    zz = unpack_state(mode, cell(x, pack_state(mode, [np.zeros((B, H))] * n_states)))
    for a, b in zip(z, zz):
        close(a, b)


# ----------------------------------------------------------------- other layers
def test_linear_values_and_gradients():
    rng = np.random.default_rng(7)
    lin = nn.Linear(4, 3, dtype="float64", seed=0)
    assert lin.weight.shape == (3, 4) and lin.bias.shape == (3,)
    assert np.all(np.abs(lin.weight.data) <= 0.5) and np.all(np.abs(lin.bias.data) <= 0.5)
    x = rng.standard_normal((2, 5, 4))
    y = lin(x)
    close(y, np.einsum("bti,oi->bto", x, lin.weight.data) + lin.bias.data)
    dy = rng.standard_normal(y.shape)
    dx = lin.backward(dy)
    lin.eval()
    loss = lambda: float(np.sum(lin(x) * dy))  # noqa: E731
    directional_check(loss, [x, lin.weight.data, lin.bias.data],
                      [dx, lin.weight.grad, lin.bias.grad], rng)
    nb = nn.Linear(4, 3, bias=False)
    assert nb.bias is None and [n for n, _ in nb.named_parameters()] == ["weight"]
    assert nb(x).dtype == np.float32


def test_embedding_lookup_padding_and_gradient():
    rng = np.random.default_rng(8)
    emb = nn.Embedding(6, 3, padding_idx=2, dtype="float64", seed=0)
    assert np.all(emb.weight.data[2] == 0)
    idx = np.array([[0, 2, 5], [5, 5, 1]])
    y = emb(idx)
    assert y.shape == (2, 3, 3)
    close(y, emb.weight.data[idx])
    dy = rng.standard_normal(y.shape)
    assert emb.backward(dy) is None
    # expected gradient via one-hot products (independent of np.add.at)
    onehot = np.eye(6)[idx.ravel()]                        # (6 lookups, 6 rows)
    expected = onehot.T @ dy.reshape(-1, 3)
    expected[2] = 0                                        # the padding row gets nothing
    close(emb.weight.grad, expected)
    with pytest.raises(ValueError, match="out of range"):
        emb(np.array([6]))
    with pytest.raises(TypeError, match="integer"):
        emb(np.array([1.0]))
    big = nn.Embedding(1000, 50, seed=0)
    assert abs(big.weight.data.std() - 1.0) < 0.02 and abs(big.weight.data.mean()) < 0.02
    assert nn.Embedding(4, 2, padding_idx=-1).padding_idx == 3


def test_dropout_layer():
    x = np.ones((200, 100), np.float32)
    d = nn.Dropout(0.3, seed=0)
    y = d(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    dy = np.full_like(x, 2.0)
    np.testing.assert_array_equal(d.backward(dy), np.where(kept, 2 / 0.7, 0).astype(np.float32))
    np.testing.assert_array_equal(nn.Dropout(0.3, seed=0)(x), y)
    d.eval()
    assert d(x) is x or np.array_equal(d(x), x)
    d.train()
    assert np.all(nn.Dropout(1.0)(x) == 0)
    assert np.array_equal(nn.Dropout(0.0)(x), x)


@pytest.mark.parametrize("batch_first", [False, True])
def test_last_values_and_backward(batch_first):
    rng = np.random.default_rng(9)
    T, B, F = 5, 4, 3
    x = rng.standard_normal((T, B, F))
    lengths = np.array([5, 1, 0, 3])
    last = nn.Last(batch_first=batch_first)
    xin = x.transpose(1, 0, 2) if batch_first else x
    y = last(xin, lengths)
    expected = np.stack([x[4, 0], x[0, 1], np.zeros(F), x[2, 3]])
    close(y, expected)
    dy = rng.standard_normal((B, F))
    dx = last.backward(dy)
    exp_dx = np.zeros((T, B, F))
    exp_dx[4, 0], exp_dx[0, 1], exp_dx[2, 3] = dy[0], dy[1], dy[3]
    close(dx, exp_dx.transpose(1, 0, 2) if batch_first else exp_dx)
    close(last(xin), x[-1])


def test_sequential_names_forward_backward_and_gradients():
    rng = np.random.default_rng(10)
    T, B, V, E, H, C = 5, 3, 7, 4, 3, 2
    model = nn.Sequential(nn.Embedding(V, E, dtype="float64", seed=0),
                          nn.LSTM(E, H, bidirectional=True, dtype="float64", seed=1),
                          nn.Dropout(0.0), nn.Last(),
                          nn.Linear(2 * H, C, dtype="float64", seed=2))
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["0.weight", "1.weight_ih_l0"] and names[-2:] == ["4.weight", "4.bias"]
    assert list(model.state_dict()) == names
    tokens = rng.integers(0, V, (T, B))
    lengths = np.array([5, 2, 4])
    out = model(tokens, lengths=lengths)
    # the same by hand
    e = model[0](tokens)
    y, _ = model[1](e, lengths=lengths)
    close(out, model[4](model[3](y, lengths)))
    dout = rng.standard_normal(out.shape)
    model(tokens, lengths=lengths)
    assert model.backward(dout) is None      # Embedding first: no input gradient
    params = [p for _, p in model.named_parameters()]
    loss = lambda: float(np.sum(model(tokens, lengths=lengths) * dout))  # noqa: E731
    directional_check(loss, [p.data for p in params], [p.grad for p in params], rng,
                      names=names)


# ----------------------------------------------------------------- Module machinery
def test_state_dict_roundtrip_and_errors_name_the_key():
    a = nn.Sequential(nn.GRU(3, 4, 2, seed=0), nn.Linear(4, 2, seed=1))
    b = nn.Sequential(nn.GRU(3, 4, 2, seed=5), nn.Linear(4, 2, seed=6))
    sd = a.state_dict()
    sd["0.weight_hh_l1"][0, 0] = 123.0          # a copy: the module is unchanged
    assert a[0].weight_hh_l1.data[0, 0] != 123.0
    # float64 arrays and nested lists are converted to the layer dtype
    b.load_state_dict({k: (v.astype(np.float64) if k != "1.bias" else v.tolist())
                       for k, v in sd.items()})
    assert b[0].weight_hh_l1.data.dtype == np.float32 and b[0].weight_hh_l1.data[0, 0] == 123.0
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    sd_b = b.state_dict()
    before = {k: v.copy() for k, v in sd_b.items()}
    missing = dict(sd_b)
    del missing["0.bias_ih_l0"]
    with pytest.raises(KeyError, match="0.bias_ih_l0"):
        b.load_state_dict(missing)
    b.load_state_dict(missing, strict=False)
    with pytest.raises(KeyError, match="1.extra"):
        b.load_state_dict(dict(sd_b, **{"1.extra": np.zeros(2)}))
    bad = {k: v.copy() for k, v in sd_b.items()}
    bad["1.weight"] = np.zeros((5, 4))
    bad["0.weight_ih_l0"] = np.full_like(bad["0.weight_ih_l0"], 7.0)
    with pytest.raises(ValueError, match=r"1\.weight.*\(5, 4\).*\(2, 4\)"):
        b.load_state_dict(bad)
    for k, v in b.state_dict().items():      # nothing copied by a failed load
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(TypeError, match="0.weight_ih_l0"):
        b.load_state_dict(dict(sd_b, **{"0.weight_ih_l0": np.array([["a"] * 3] * 12)}))
    c = nn.Sequential(nn.GRU(3, 4, 2), nn.Linear(4, 2))
    c.load_state_dict(sd_b)
    np.testing.assert_array_equal(c(x), b(x))


@pytest.mark.parametrize("make", [
    lambda: (nn.LSTM(2, 3), np.zeros((3, 1, 2)), np.zeros((3, 1, 3))),
    lambda: (nn.GRU(2, 3), np.zeros((3, 1, 2)), np.zeros((3, 1, 3))),
    lambda: (nn.RNN(2, 3), np.zeros((3, 1, 2)), np.zeros((3, 1, 3))),
    lambda: (nn.GRUCell(2, 3), np.zeros((1, 2)), np.zeros((1, 3))),
    lambda: (nn.Linear(2, 3), np.zeros((1, 2)), np.zeros((1, 3))),
    lambda: (nn.Embedding(4, 3), np.zeros((1, 2), int), np.zeros((1, 2, 3))),
    lambda: (nn.Dropout(0.5), np.zeros((1, 2)), np.zeros((1, 2))),
    lambda: (nn.Last(), np.zeros((3, 1, 2)), np.zeros((1, 2))),
])
def test_backward_without_training_forward_raises(make):
    layer, x, dy = make()
    with pytest.raises(RuntimeError, match="training-mode forward"):
        layer.backward(dy)
    layer.eval()
    assert not layer.training
    layer(x)
    with pytest.raises(RuntimeError, match="training-mode forward"):
        layer.backward(dy)
    layer.train()
    layer(x)
    layer.backward(dy)
    with pytest.raises(RuntimeError, match="training-mode forward"):
        layer.backward(dy)   # the cache serves one backward


def test_eval_and_train_propagate_through_sequential():
    m = nn.Sequential(nn.LSTM(2, 3), nn.Dropout(0.5))
    assert m.eval() is m and not m[0].training and not m[1].training
    m.train()
    assert m.training and m[0].training and m[1].training


def test_bad_arguments_raise_clear_errors():
    lstm = nn.LSTM(3, 4, 2)
    with pytest.raises(ValueError, match=r"x has shape \(5, 2, 2\).*input_size=3"):
        lstm(np.zeros((5, 2, 2)))
    with pytest.raises(ValueError, match="x must be 3-D"):
        lstm(np.zeros((5, 2, 2, 3)))
    with pytest.raises(ValueError, match=r"h0.*\(1, 2, 4\).*\(2, 2, 4\)"):
        lstm(np.zeros((5, 2, 3)), (np.zeros((1, 2, 4)), np.zeros((2, 2, 4))))
    with pytest.raises(TypeError, match=r"\(h0, c0\)"):
        lstm(np.zeros((5, 2, 3)), np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="lengths"):
        lstm(np.zeros((5, 2, 3)), lengths=np.array([6, 1]))
    lstm(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"dy has shape \(5, 2, 3\)"):
        lstm.backward(np.zeros((5, 2, 3)))
    with pytest.raises(TypeError, match="dtype"):
        nn.GRU(3, 4, dtype="int32")
    with pytest.raises(ValueError, match="hidden_size"):
        nn.GRU(3, 0)
    with pytest.raises(ValueError, match="dropout"):
        nn.GRU(3, 4, 2, dropout=1.5)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.LSTM(3, 4, dropout=0.5)
    with pytest.raises(ValueError, match=r"x has shape"):
        nn.LSTMCell(3, 4)(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"hx\[1\] \(c\)"):
        nn.LSTMCell(3, 4)(np.zeros((2, 3)), (np.zeros((2, 4)), np.zeros((3, 4))))


# ----------------------------------------------------------------- generation
def test_sample_distribution_temperature_and_top_k():
    """A head whose logits are a fixed bias: sampled frequencies follow softmax(bias / T)."""
    from rnnkit.generate import sample
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    emb, rnn, head = nn.Embedding(4, 2, seed=0), nn.RNN(2, 3, seed=1), nn.Linear(3, 4, seed=2)
    head.weight.data[...] = 0
    head.bias.data[...] = np.log(probs)
    prime = np.zeros((4000, 2), np.int64)
    toks = sample(emb, rnn, head, prime, 5, seed=0)
    assert toks.shape == (4000, 5) and toks.dtype == np.int64
    freq = np.bincount(toks.ravel(), minlength=4) / toks.size
    np.testing.assert_allclose(freq, probs, atol=0.015)
    hot = probs ** 0.5 / np.sum(probs ** 0.5)
    freq = np.bincount(sample(emb, rnn, head, prime, 5, temperature=2.0, seed=1).ravel(),
                       minlength=4) / toks.size
    np.testing.assert_allclose(freq, hot, atol=0.015)
    freq = np.bincount(sample(emb, rnn, head, prime, 5, top_k=2, seed=2).ravel(),
                       minlength=4) / toks.size
    np.testing.assert_allclose(freq, [0.5 / 0.8, 0.3 / 0.8, 0, 0], atol=0.015)
    assert np.all(sample(emb, rnn, head, prime[:3], 4, temperature=0.0) == 0)
    assert sample(emb, rnn, head, np.array([1, 2]), 0).shape == (0,)
    with pytest.raises(ValueError, match="bidirectional"):
        sample(emb, nn.RNN(2, 3, bidirectional=True), nn.Linear(6, 4), np.array([1]), 3)
    with pytest.raises(TypeError, match="integer"):
        sample(emb, rnn, head, np.array([1.0]), 3)
