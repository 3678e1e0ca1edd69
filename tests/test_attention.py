"""rnnkit.nn.Attention (Luong dot / general, Bahdanau additive) against the loop reference of
tests/reference_attention.py: values, central finite differences of every input and parameter
gradient, masked keys, accumulation, save/load, errors; and against torch where it is there."""
import json
import math

import numpy as np
import pytest

import rnnkit
from helpers import assert_close
from reference_attention import attention as ref_attention
from rnnkit import nn
from rnnkit.nn import attention as attention_module

# (test id, score, scale): the dot score plain and scaled, Luong's general, Bahdanau's additive.
KINDS = [("dot", "dot", False), ("dot_scaled", "dot", True), ("general", "general", False),
         ("additive", "additive", False)]
KIND_IDS = [k[0] for k in KINDS]
# Sizes that differ from one another, so a transposed axis cannot pass unnoticed.
B, TQ, TK, HQ, HK, HV, A = 3, 4, 5, 3, 4, 2, 6
LENGTHS = [5, 2, 0]          # full, partial, and a sequence with no key at all


def _layer(score, scale, dtype="float64", batch_first=False, hq=HQ, hk=HK, a=A, seed=0):
    if score == "dot":
        return nn.Attention(hq, score="dot", scale=scale, batch_first=batch_first,
                            dtype=dtype, seed=seed)
    return nn.Attention(hq, hk, score=score, batch_first=batch_first, dtype=dtype, seed=seed,
                        **({"attention_size": a} if score == "additive" else {}))


def _problem(score, seed=1, b=B, tq=TQ, tk=TK, hq=HQ, hk=HK, hv=HV):
    """Batch-major query (B, Tq, Hq), keys (B, Tk, Hk), values (B, Tk, Hv), float64."""
    rng = np.random.default_rng(seed)
    hk = hq if score == "dot" else hk
    return (rng.standard_normal((b, tq, hq)), rng.standard_normal((b, tk, hk)),
            rng.standard_normal((b, tk, hv)))


def _given(x, batch_first):
    """A batch-major array in the layer's layout (time-major unless batch_first)."""
    return x if batch_first else np.ascontiguousarray(x.swapaxes(0, 1))


def _batch_major(x, batch_first):
    return x if batch_first else x.swapaxes(0, 1)


def _params(layer):
    return {n: p.data.astype(np.float64) for n, p in layer.named_parameters()}


def _randomise(layer, seed=5):
    """Weights larger than the init, so that the scores are far from uniform (a softmax of
    near-equal scores would hide errors in its gradient)."""
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.data[...] = rng.uniform(-1.0, 1.0, p.shape)


# ------------------------------------------------------------------------------ forward


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("separate_values", [False, True], ids=["values=keys", "values"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("kind, score, scale", KINDS, ids=KIND_IDS)
def test_forward_matches_reference(kind, score, scale, batch_first, separate_values, lengths,
                                   dtype):
    layer = _layer(score, scale, dtype, batch_first)
    _randomise(layer)
    q, k, v = _problem(score)
    if dtype == "float32":   # the reference sees exactly the float32 numbers the layer gets
        q, k, v = (a.astype(np.float32).astype(np.float64) for a in (q, k, v))
    vals = v if separate_values else None
    ctx, w = layer(_given(q, batch_first), _given(k, batch_first),
                   None if vals is None else _given(vals, batch_first), key_lengths=lengths)
    ref_ctx, ref_w = ref_attention(score, q, k, vals, _params(layer), lengths, scale)
    hv = HV if separate_values else k.shape[2]
    assert ctx.dtype == np.dtype(dtype) and w.dtype == np.dtype(dtype)
    assert ctx.shape == ((B, TQ, hv) if batch_first else (TQ, B, hv))
    assert w.shape == (B, TQ, TK)       # (B, Tq, Tk) in either layout
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    assert_close(_batch_major(ctx, batch_first), ref_ctx, name="context", **tol)
    assert_close(w, ref_w, name="weights", **tol)
    if lengths is not None:     # exactly 0, not merely small, where the mask says so
        for b, n in enumerate(lengths):
            assert np.all(w[b, :, n:] == 0), b
        assert np.all(_batch_major(ctx, batch_first)[2] == 0)   # key_lengths 0: context 0
    np.testing.assert_allclose(w.sum(axis=2)[:2] if lengths else w.sum(axis=2), 1.0,
                               rtol=1e-6)


def test_softmax_is_stable_for_large_scores():
    # Scores near 1e4: a softmax without the max shift would overflow exp to inf (NaN out).
    layer = nn.Attention(2, dtype="float64")
    q = np.array([[[100.0, 0.0]]])                  # (Tq=1, B=1, 2)
    k = np.array([[[100.0, 0.0]], [[99.9, 0.0]]])   # (Tk=2, B=1, 2): scores 1e4 and 9990
    _, w = layer(q, k)
    np.testing.assert_allclose(w[0, 0], [1 / (1 + math.exp(-10)), 1 / (1 + math.exp(10))],
                               rtol=1e-12)


# ------------------------------------------------------------------------------ gradients


def _fd_check(kind, score, scale, separate_values, with_dweights, lengths, batch_first):
    """Central differences of L = Σ dc·context (+ Σ dw·weights) through the reference, against
    the layer's backward, for the inputs and every parameter."""
    # Small sizes: every scalar is perturbed twice through the loop reference.
    b, tq, tk, hq, hk, hv, a = 3, 2, 3, 2, 3, 2, 3
    layer = _layer(score, scale, "float64", batch_first, hq=hq, hk=hk, a=a)
    _randomise(layer)
    q, k, v = _problem(score, seed=2, b=b, tq=tq, tk=tk, hq=hq, hk=hk, hv=hv)
    vals = v if separate_values else None
    rng = np.random.default_rng(9)
    dc = rng.standard_normal((b, tq, hv if separate_values else k.shape[2]))
    dw = rng.standard_normal((b, tq, tk)) if with_dweights else None
    params = _params(layer)

    def loss(q_, k_, v_, p_):
        c, w = ref_attention(score, q_, k_, v_, p_, lengths, scale)
        return float(np.sum(dc * c) + (0.0 if dw is None else np.sum(dw * w)))

    ctx, _ = layer(_given(q, batch_first), _given(k, batch_first),
                   None if vals is None else _given(vals, batch_first), key_lengths=lengths)
    dq, dk, dv = layer.backward(_given(dc, batch_first), dw)
    if vals is None:
        assert dv is None     # keys served as values: that gradient is inside dk
    arrays = {"query": (q, dq), "keys": (k, dk)}
    if vals is not None:
        arrays["values"] = (vals, dv)
    def central_differences(arr):
        """d loss / d arr, entry by entry, changing arr in place and restoring it."""
        eps, fd = 1e-6, np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = loss(q, k, vals, params)
            arr[idx] = old - eps
            down = loss(q, k, vals, params)
            arr[idx] = old
            fd[idx] = (up - down) / (2 * eps)
        return fd

    for name, (x, grad) in arrays.items():
        assert_close(_batch_major(grad, batch_first), central_differences(x), rtol=1e-6,
                     atol=1e-8, name="d" + name)
    for name, p in layer.named_parameters():
        assert_close(p.grad, central_differences(params[name]), rtol=1e-6, atol=1e-8,
                     name=f"d{name}")
    return dq, dk, dv


@pytest.mark.parametrize("lengths", [None, [3, 1, 0]], ids=["full", "lengths"])
@pytest.mark.parametrize("with_dweights", [False, True], ids=["dc", "dc+dweights"])
@pytest.mark.parametrize("separate_values", [False, True], ids=["values=keys", "values"])
@pytest.mark.parametrize("kind, score, scale", KINDS, ids=KIND_IDS)
def test_gradients_match_finite_differences(kind, score, scale, separate_values,
                                            with_dweights, lengths):
    _fd_check(kind, score, scale, separate_values, with_dweights, lengths, batch_first=False)


@pytest.mark.parametrize("kind, score, scale", KINDS, ids=KIND_IDS)
def test_gradients_batch_first(kind, score, scale):
    _fd_check(kind, score, scale, True, True, [3, 1, 0], batch_first=True)


# ------------------------------------------------------------------------------ masks


@pytest.mark.parametrize("separate_values", [False, True], ids=["values=keys", "values"])
@pytest.mark.parametrize("kind, score, scale", KINDS, ids=KIND_IDS)
def test_padded_keys_change_nothing_and_get_exactly_zero_gradient(kind, score, scale,
                                                                  separate_values):
    """Whatever the padded key and value steps hold (numbers, NaN, inf), outputs and every
    gradient are bitwise those of zero padding, and the padded steps' gradients are 0."""
    q, k, v = _problem(score)
    rng = np.random.default_rng(4)
    dc = rng.standard_normal((B, TQ, HV if separate_values else k.shape[2]))
    dw = rng.standard_normal((B, TQ, TK))

    def run(fill):
        kk, vv = k.copy(), v.copy()
        for b, n in enumerate(LENGTHS):
            kk[b, n:] = fill(kk[b, n:].shape)
            vv[b, n:] = fill(vv[b, n:].shape)
        layer = _layer(score, scale)
        _randomise(layer)
        out = layer(_given(q, False), _given(kk, False),
                    _given(vv, False) if separate_values else None, key_lengths=LENGTHS)
        grads = layer.backward(_given(dc, False), dw)
        return out, grads, [p.grad.copy() for p in layer.parameters()]

    clean = run(np.zeros)
    for fill in (lambda s: rng.standard_normal(s) * 1e3, lambda s: np.full(s, np.nan),
                 lambda s: np.where(rng.random(s) < 0.5, np.inf, -np.inf)):
        other = run(fill)
        for a, b in zip(clean[0] + tuple(g for g in clean[1] if g is not None) + tuple(clean[2]),
                        other[0] + tuple(g for g in other[1] if g is not None) + tuple(other[2])):
            np.testing.assert_array_equal(a, b)
    dq, dk, dv = clean[1]
    for b, n in enumerate(LENGTHS):
        assert np.all(dk.swapaxes(0, 1)[b, n:] == 0)
        if dv is not None:
            assert np.all(dv.swapaxes(0, 1)[b, n:] == 0)
    # The sequence with no key passes no gradient to its queries either.
    assert np.all(dq.swapaxes(0, 1)[2] == 0)
    assert np.all(np.isfinite(dq)) and np.all(np.isfinite(dk))


def test_zero_length_and_empty_shapes_give_no_nan():
    layer = nn.Attention(3, 2, score="additive", attention_size=4, dtype="float64", seed=0)
    q, k, _ = _problem("additive", hq=3, hk=2)
    ctx, w = layer(_given(q, False), _given(k, False), key_lengths=[0, 0, 0])
    assert np.all(ctx == 0) and np.all(w == 0)
    dq, dk, dv = layer.backward(np.ones_like(ctx), np.ones_like(w))
    assert np.all(dq == 0) and np.all(dk == 0) and dv is None
    assert all(np.all(p.grad == 0) for p in layer.parameters())
    # No key steps at all, and no query steps.
    ctx, w = layer(np.zeros((4, 2, 3)), np.zeros((0, 2, 2)))
    assert ctx.shape == (4, 2, 2) and w.shape == (2, 4, 0) and np.all(ctx == 0)
    dq, dk, _ = layer.backward(np.ones_like(ctx))
    assert dq.shape == (4, 2, 3) and dk.shape == (0, 2, 2) and np.all(dq == 0)
    ctx, w = layer(np.zeros((0, 2, 3)), np.ones((5, 2, 2)))
    assert ctx.shape == (0, 2, 2) and w.shape == (2, 0, 5)


def test_additive_blocks_over_query_steps_agree_with_one_block(monkeypatch):
    q, k, v = _problem("additive")
    dc = np.random.default_rng(3).standard_normal((TQ, B, HV))

    def run():
        layer = _layer("additive", False)
        _randomise(layer)
        out = layer(_given(q, False), _given(k, False), _given(v, False), key_lengths=LENGTHS)
        return out + layer.backward(dc) + tuple(p.grad.copy() for p in layer.parameters())

    whole = run()
    monkeypatch.setattr(attention_module, "_CHUNK_BYTES", 1)    # one query step per block
    assert len(_layer("additive", False)._blocks(B, TQ, TK)) == TQ
    blocked = run()
    for name, a, b in zip(["context", "weights", "dq", "dk", "dv", "dW_q", "dW_k", "db", "dv_"],
                          whole, blocked):
        assert_close(b, a, rtol=1e-13, atol=1e-14, name=name)


# ------------------------------------------------------------------------------ module


@pytest.mark.parametrize("kind, score, scale", KINDS[2:], ids=KIND_IDS[2:])
def test_backward_adds_into_grad_and_frozen_parameters_are_left_alone(kind, score, scale):
    layer = _layer(score, scale)
    q, k, v = _problem(score)
    dc = np.random.default_rng(3).standard_normal((TQ, B, HV))
    layer(_given(q, False), _given(k, False), _given(v, False), key_lengths=LENGTHS)
    once = layer.backward(dc)
    first = [p.grad.copy() for p in layer.parameters()]
    assert all(np.any(g != 0) for g in first)
    layer(_given(q, False), _given(k, False), _given(v, False), key_lengths=LENGTHS)
    twice = layer.backward(dc)
    for g, p in zip(first, layer.parameters()):
        np.testing.assert_array_equal(p.grad, 2 * g)      # g + g is exact
    for a, b in zip(once, twice):
        np.testing.assert_array_equal(a, b)               # input gradients are not summed
    layer.zero_grad()
    assert all(np.all(p.grad == 0) for p in layer.parameters())
    frozen = next(iter(layer.parameters()))
    frozen.requires_grad = False
    frozen.grad = None
    layer(_given(q, False), _given(k, False), _given(v, False), key_lengths=LENGTHS)
    layer.backward(dc)
    assert frozen.grad is None
    assert all(np.any(p.grad != 0) for p in list(layer.parameters())[1:])


def test_backward_needs_a_training_forward_and_eval_keeps_no_cache():
    layer = _layer("general", False)
    q, k, _ = _problem("general")
    dc = np.ones((TQ, B, HK))
    with pytest.raises(RuntimeError, match="without a training-mode forward"):
        layer.backward(dc)
    layer.eval()
    ctx, _ = layer(_given(q, False), _given(k, False))
    with pytest.raises(RuntimeError, match="without a training-mode forward"):
        layer.backward(dc)
    layer.train()
    layer(_given(q, False), _given(k, False))
    with pytest.raises(ValueError, match=r"dcontext has shape \(4, 3, 2\), expected \(4, 3, 4\)"):
        layer.backward(np.ones((TQ, B, 2)))
    with pytest.raises(ValueError, match=r"dweights has shape \(3, 4\), expected \(3, 4, 5\)"):
        layer.backward(dc, np.ones((B, TQ)))
    layer.backward(dc)                           # a rejected argument consumed nothing
    with pytest.raises(RuntimeError, match="one backward only"):
        layer.backward(dc)


def test_inputs_changed_after_forward_do_not_change_backward():
    layer = _layer("additive", False, batch_first=True)
    q, k, v = _problem("additive")
    dc = np.random.default_rng(3).standard_normal((B, TQ, HV))
    layer(q.copy(), k.copy(), v.copy())
    expect = layer.backward(dc)
    qq, kk, vv = q.copy(), k.copy(), v.copy()
    _, w = layer(qq, kk, vv)
    qq[...], kk[...], vv[...], w[...] = 7.0, -3.0, 2.0, 0.5
    for a, b in zip(layer.backward(dc), expect):
        np.testing.assert_array_equal(a, b)


def test_unbatched_input_matches_a_batch_of_one():
    layer = _layer("additive", False)
    _randomise(layer)
    q, k, v = _problem("additive", b=1)
    dc = np.random.default_rng(3).standard_normal((TQ, HV))
    dw = np.random.default_rng(4).standard_normal((TQ, TK))
    ctx, w = layer(q[0], k[0], v[0])
    assert ctx.shape == (TQ, HV) and w.shape == (TQ, TK)
    grads = layer.backward(dc, dw)
    ctx1, w1 = layer(_given(q, False), _given(k, False), _given(v, False))
    grads1 = layer.backward(dc[:, None], dw[None])
    np.testing.assert_array_equal(ctx, ctx1[:, 0])
    np.testing.assert_array_equal(w, w1[0])
    for g, g1 in zip(grads, grads1):
        np.testing.assert_array_equal(g, g1[:, 0])


def test_parameters_init_seed_dtype_and_repr():
    a = nn.Attention(3, 4, score="additive", attention_size=5, seed=7)
    assert [(n, p.shape) for n, p in a.named_parameters()] == [
        ("weight_query", (5, 3)), ("weight_key", (5, 4)), ("bias", (5,)), ("v", (5,))]
    assert all(p.dtype == np.float32 for p in a.parameters())
    # torch's Linear rule, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), on a layer wide enough for the
    # statistics: 6000 / 8000 / 2000 / 2000 draws.
    big = nn.Attention(3, 4, score="additive", attention_size=2000, dtype="float64", seed=0)
    bounds = {"weight_query": 1 / math.sqrt(3), "weight_key": 1 / math.sqrt(4),
              "bias": 1 / math.sqrt(4), "v": 1 / math.sqrt(2000)}
    for n, p in big.named_parameters():
        w, bound = p.data, bounds[n]
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound, n
        assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound, n   # uniform: std b/√3
        assert abs(w.mean()) < 0.05 * bound, n
    same, other = (nn.Attention(3, 4, score="additive", attention_size=5, seed=s) for s in (7, 8))
    for p, s, o in zip(a.parameters(), same.parameters(), other.parameters()):
        np.testing.assert_array_equal(p.data, s.data)
        assert not np.array_equal(p.data, o.data)
    g = nn.Attention(3, 4, score="general", seed=1, dtype="float64")
    assert [(n, p.shape, p.dtype) for n, p in g.named_parameters()] == [
        ("weight", (3, 4), np.float64)]
    assert np.all(np.abs(g.weight.data) <= 1 / math.sqrt(4))
    d = nn.Attention(6)
    assert list(d.parameters()) == [] and d.key_size == 6
    assert repr(d) == "Attention(query_size=6, key_size=6, score='dot', dtype=float32)"
    assert repr(a) == ("Attention(query_size=3, key_size=4, score='additive', attention_size=5, "
                       "dtype=float32)")
    assert rnnkit.Attention is nn.Attention
    # float64 input to a float32 layer gives float32; ints are converted too.
    ctx, w = d(np.ones((2, 1, 6)), np.arange(18).reshape(3, 1, 6))
    assert ctx.dtype == w.dtype == np.float32
    d.double()
    assert d(np.ones((2, 1, 6)), np.ones((3, 1, 6)))[0].dtype == np.float64


def test_state_dict_round_trip_and_errors():
    a, b = (nn.Attention(3, 4, score="additive", seed=s, dtype="float64") for s in (1, 2))
    b.load_state_dict(a.state_dict())
    for p, o in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, o.data)
    with pytest.raises(KeyError, match="missing key.*'v'"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "v"})
    with pytest.raises(ValueError, match=r"state_dict\['bias'\] has shape"):
        b.load_state_dict({**a.state_dict(), "bias": np.zeros(2)})


@pytest.mark.parametrize("kind, score, scale", KINDS, ids=KIND_IDS)
def test_save_load_round_trip(tmp_path, kind, score, scale):
    layer = _layer(score, scale, "float32", batch_first=True, seed=3)
    rnnkit.save(layer, tmp_path / "a.rnnkit")
    back = rnnkit.load(tmp_path / "a.rnnkit")
    assert type(back) is nn.Attention and repr(back) == repr(layer)
    assert back.get_config() == layer.get_config()
    q, k, v = (x.astype(np.float32) for x in _problem(score))
    for x, y in zip(layer(q, k, v, key_lengths=LENGTHS), back(q, k, v, key_lengths=LENGTHS)):
        np.testing.assert_array_equal(x, y)
    dc = np.ones((B, TQ, HV), np.float32)
    for x, y in zip(layer.backward(dc), back.backward(dc)):
        np.testing.assert_array_equal(x, y)


def test_a_file_cannot_make_attention_allocate_more_than_it_holds(tmp_path):
    # A hostile file names a huge general Attention but holds no weight: refused from the
    # metadata, before the layer (about 8 TB of weight) is built.
    meta = {"format": "rnnkit", "format_version": 1, "kind": "model",
            "model": {"architecture": {"class": "Attention", "config": {
                "query_size": 10 ** 6, "key_size": 10 ** 6, "score": "general"}}, "rng": {}}}
    path = tmp_path / "f.rnnkit"
    with open(path, "wb") as f:
        np.savez(f, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ValueError, match="needs the parameter 'weight'"):
        rnnkit.load(path)


# ------------------------------------------------------------------------------ errors


def _bad_calls():
    g = nn.Attention(3, 4, score="general")
    bf = nn.Attention(3, 4, score="general", batch_first=True)
    q, k, v = np.zeros((4, 2, 3)), np.zeros((5, 2, 4)), np.zeros((5, 2, 6))
    return [
        ("rank", lambda: g(np.zeros(3), k), ValueError,
         r"query must be 3-D \(Tq, B, Hq\) or 2-D \(Tq, Hq\) unbatched, got shape \(3,\)"),
        ("rank_bf", lambda: bf(np.zeros((1, 2, 3, 4)), k), ValueError,
         r"query must be 3-D \(B, Tq, Hq\)"),
        ("keys_rank", lambda: g(q, np.zeros((5, 4))), ValueError,
         r"keys must be 3-D \(Tk, B, Hk\), batched as query is, got shape \(5, 4\)"),
        ("values_rank", lambda: g(q[:, 0], k[:, 0], v), ValueError,
         r"values must be 2-D \(Tk, Hv\), unbatched as query is, got shape \(5, 2, 6\)"),
        ("query_size", lambda: g(np.zeros((4, 2, 5)), k), ValueError,
         r"query has shape \(4, 2, 5\), expected last axis query_size=3"),
        ("key_size", lambda: g(q, np.zeros((5, 2, 3))), ValueError,
         r"keys has shape \(5, 2, 3\), expected last axis key_size=4"),
        ("keys_batch", lambda: g(q, np.zeros((5, 3, 4))), ValueError,
         r"keys has shape \(5, 3, 4\), expected batch 2 on axis 1"),
        ("values_batch", lambda: g(q, k, np.zeros((5, 1, 6))), ValueError,
         r"values has shape \(5, 1, 6\), expected batch 2 on axis 1"),
        ("values_steps", lambda: g(q, k, np.zeros((6, 2, 6))), ValueError,
         r"values has shape \(6, 2, 6\), expected 5 steps on axis 0 \(Tk of keys"),
        ("values_steps_bf", lambda: bf(q, np.zeros((4, 5, 4)), np.zeros((4, 2, 6))), ValueError,
         r"values has shape \(4, 2, 6\), expected 5 steps on axis 1"),
        ("not_numeric", lambda: g(np.array([["a"]]), k), TypeError,
         "query must be a numeric array"),
        ("lengths_shape", lambda: g(q, k, key_lengths=[1, 2, 3]), ValueError,
         r"key_lengths has shape \(3,\), expected \(2,\)"),
        ("lengths_range", lambda: g(q, k, key_lengths=[1, 6]), ValueError,
         r"key_lengths must lie in \[0, Tk=5\], got 6"),
        ("lengths_negative", lambda: g(q, k, key_lengths=[-1, 2]), ValueError,
         "key_lengths must lie"),
        ("lengths_float", lambda: g(q, k, key_lengths=[1.0, 2.0]), TypeError,
         "key_lengths must be an integer array"),
        ("lengths_unbatched", lambda: g(q[:, 0], k[:, 0], key_lengths=[2]), ValueError,
         "key_lengths needs batched input"),
        ("dot_sizes", lambda: nn.Attention(3, 4), ValueError,
         "score='dot' needs key_size == query_size, got key_size=4 and query_size=3"),
        ("score", lambda: nn.Attention(3, score="concat"), ValueError,
         "score must be one of 'dot', 'general', 'additive', got 'concat'"),
        ("attention_size", lambda: nn.Attention(3, attention_size=4), ValueError,
         "attention_size is the additive score's"),
        ("scale", lambda: nn.Attention(3, score="general", scale=True), ValueError,
         "scale=True scales the dot score"),
        ("query_size_0", lambda: nn.Attention(0), ValueError, "query_size must be >= 1"),
        ("key_size_type", lambda: nn.Attention(3, 2.5, score="general"), TypeError,
         "key_size must be an int"),
        ("dtype", lambda: nn.Attention(3, dtype="int32"), TypeError, "dtype must be"),
    ]


BAD = _bad_calls()


@pytest.mark.parametrize("name, call, exc, match", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_name_the_argument_and_shapes(name, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------ torch


@pytest.mark.parametrize("score, scale", [("dot", True), ("dot", False), ("general", False)])
def test_dot_and_general_match_torch_scaled_dot_product_attention(score, scale):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    layer = _layer(score, scale, batch_first=True)
    _randomise(layer)
    q, k, v = _problem(score)
    lengths = [5, 2, 1]         # torch gives NaN for a row with no key: none here
    dc = np.random.default_rng(3).standard_normal((B, TQ, HV))
    ctx, _ = layer(q, k, v, key_lengths=lengths)
    dq, dk, dv = layer.backward(dc)
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    mask = torch.arange(TK)[None, None, :] < torch.tensor(lengths)[:, None, None]  # attend
    qs = qt
    if score == "general":
        wt = torch.tensor(layer.weight.data, requires_grad=True)
        qs = qt @ wt
    out = F.scaled_dot_product_attention(qs, kt, vt, attn_mask=mask,
                                         scale=None if scale else 1.0)
    out.backward(torch.tensor(dc))
    assert_close(ctx, out.detach().numpy(), rtol=1e-12, atol=1e-13, name="context")
    for name, a, t in (("dq", dq, qt), ("dk", dk, kt), ("dv", dv, vt)):
        assert_close(a, t.grad.numpy(), rtol=1e-10, atol=1e-12, name=name)
    if score == "general":
        assert_close(layer.weight.grad, wt.grad.numpy(), rtol=1e-10, atol=1e-12, name="dW")
