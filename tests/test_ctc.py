"""rnnkit.ctc: the CTC loss against brute-force enumeration of alignment paths and a plain
numpy forward-backward (tests/reference_ctc.py), central finite differences, thread-count
independence, argument checks (Python's and the compiled kernel's own), and the decoders
against hand-made inputs and the exhaustive distribution over label sequences."""
import numpy as np
import pytest

import rnnkit
from rnnkit import _core
from rnnkit.ctc import (CTCLoss, character_error_rate, edit_distance, greedy_decode,
                        prefix_beam_search)
from rnnkit.losses import CTCLoss as LossesCTCLoss
from reference_ctc import (brute_force_loss_grad, check, collapse, forward_backward_loss_grad,
                           label_distribution, log_softmax)


@pytest.fixture(autouse=True)
def _restore_threads():
    before = rnnkit.get_num_threads()
    yield
    rnnkit.set_num_threads(before)


def random_batch(rng, n, steps, classes, width, blank=0, dtype=np.float64, il=None, tl=None):
    """log_probs (T, N, C), padded targets (N, S) (padding -1), input and target lengths
    (random unless given), with targets drawn to contain repeats often (few classes)."""
    lp = log_softmax(rng.standard_normal((steps, n, classes)) * 1.5).astype(dtype)
    labels = [k for k in range(classes) if k != blank]
    tl = rng.integers(0, width + 1, n) if tl is None else np.asarray(tl)
    il = rng.integers(0, steps + 1, n) if il is None else np.asarray(il)
    targets = np.full((n, width), -1, np.int64)
    for i in range(n):
        targets[i, :tl[i]] = rng.choice(labels, tl[i])
    return lp, targets, il, tl


# Hand-picked samples of (T_n, target): repeats, empty targets, lengths 0 and 1, and four
# impossible alignments ([1, 1] needs 3 steps, [2] needs 1, [2, 2, 2] and [2, 1, 1, 2] 5).
EDGE_SAMPLES = [(4, [1, 1]), (3, [1, 1]), (2, [1, 1]), (4, []), (0, []), (0, [2]), (1, [2]),
                (1, []), (4, [2, 2, 2]), (4, [1, 2, 1]), (4, [2, 1, 1, 2]), (3, [1, 2])]


def edge_batch(rng, classes=3, blank=0, dtype=np.float64):
    steps, width = 4, 4
    n = len(EDGE_SAMPLES)
    lp = log_softmax(rng.standard_normal((steps, n, classes))).astype(dtype)
    relabel = [k for k in range(classes) if k != blank]  # labels 1, 2 -> non-blank classes
    targets = np.full((n, width), 7, np.int64)
    il = np.array([s[0] for s in EDGE_SAMPLES])
    tl = np.array([len(s[1]) for s in EDGE_SAMPLES])
    for i, (_, tgt) in enumerate(EDGE_SAMPLES):
        targets[i, :len(tgt)] = [relabel[v - 1] for v in tgt]
    return lp, targets, il, tl


def brute(lp, targets, il, tl, blank=0):
    """Per-sample losses (N,) and gradients (T, N, C) of reduction "none" by enumeration."""
    steps, n, classes = lp.shape
    losses, grad = np.zeros(n), np.zeros((steps, n, classes))
    for i in range(n):
        loss, g = brute_force_loss_grad(lp[:il[i], i].astype(np.float64),
                                        targets[i, :tl[i]], blank)
        losses[i] = loss
        grad[:il[i], i] = g
    return losses, grad


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-12, 1e-12),
                                               (np.float32, 2e-6, 2e-6)])
@pytest.mark.parametrize("blank", [0, 2])
def test_edge_cases_match_brute_force(dtype, rtol, atol, blank):
    lp, targets, il, tl = edge_batch(np.random.default_rng(1), blank=blank, dtype=dtype)
    fn = CTCLoss(blank=blank, reduction="none")
    per = fn(lp, targets, il, tl)
    grad = fn.backward()
    assert per.dtype == dtype and grad.dtype == dtype and grad.shape == lp.shape
    ref_loss, ref_grad = brute(lp, targets, il, tl, blank)
    assert np.isinf(ref_loss).sum() == 4  # the impossible ones really are in the batch
    check(per, ref_loss, rtol, atol, "loss")
    check(grad, ref_grad, rtol, atol, "grad")


@pytest.mark.parametrize("seed", range(4))
def test_random_batches_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    classes = 3 + seed % 2
    lp, targets, il, tl = random_batch(rng, 8, 5 - seed % 2, classes, 3, blank=seed % classes)
    fn = CTCLoss(blank=seed % classes, reduction="none")
    per = fn(lp, targets, il, tl)
    ref_loss, ref_grad = brute(lp, targets, il, tl, seed % classes)
    check(per, ref_loss, 1e-12, 1e-12, "loss")
    check(fn.backward(), ref_grad, 1e-12, 1e-12, "grad")


def test_hand_computed_values():
    lp = log_softmax(np.random.default_rng(2).standard_normal((3, 1, 3)))[:, 0]
    fn = CTCLoss(reduction="sum")
    # [1, 1] in 3 steps: the only path is 1 - 1.
    assert fn(lp, [1, 1], 3, 2) == pytest.approx(-(lp[0, 1] + lp[1, 0] + lp[2, 1]), rel=1e-14)
    # An empty target: blank at every step.
    assert fn(lp, [], 3, 0) == pytest.approx(-lp[:, 0].sum(), rel=1e-14)
    # One step, one label: that label.
    assert fn(lp, [2], 1, 1) == pytest.approx(-lp[0, 2], rel=1e-14)
    # No step: the empty path gives only the empty sequence.
    assert fn(lp, [], 0, 0) == 0.0
    assert fn(lp, [2], 0, 1) == np.inf
    assert fn(lp, [1, 1], 2, 2) == np.inf


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_reductions_and_upstream_gradient(reduction):
    rng = np.random.default_rng(3)
    lp, targets, il, tl = random_batch(rng, 6, 4, 3, 2)
    il[:] = 4  # every sample possible: no inf in the reductions
    tl[0] = 0   # "mean" clamps this length to 1
    ref_loss, ref_grad = brute(lp, targets, il, tl)
    fn = CTCLoss(reduction=reduction)
    value = fn(lp, targets, il, tl)
    if reduction == "none":
        up = rng.standard_normal(6)
        grad = fn.backward(up)
        check(value, ref_loss, 1e-12, 0, "loss")
        check(grad, ref_grad * up[None, :, None], 1e-12, 1e-14, "grad")
        return
    assert isinstance(value, float)
    scale = np.ones(6) if reduction == "sum" else 1.0 / np.maximum(tl, 1) / 6
    assert value == pytest.approx((ref_loss * scale).sum(), rel=1e-12)
    check(fn.backward(2.5), 2.5 * ref_grad * scale[None, :, None], 1e-12, 1e-14, "grad")


def test_forward_backward_reference_agrees_with_brute_force():
    rng = np.random.default_rng(4)
    for steps, target in [(4, [1, 1]), (4, [2, 1]), (3, [1, 1]), (2, [1, 1]), (4, []),
                          (1, [1]), (5, [2, 2])]:
        lp = log_softmax(rng.standard_normal((steps, 3)))
        loss_b, grad_b = brute_force_loss_grad(lp, target)
        loss_f, grad_f = forward_backward_loss_grad(lp, target)
        check(loss_f, loss_b, 1e-12, 0, f"reference loss {steps} {target}")
        check(grad_f, grad_b, 1e-10, 1e-12, f"reference grad {steps} {target}")


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-10, 1e-12),
                                               (np.float32, 1e-4, 1e-5)])
def test_longer_sequences_match_the_plain_forward_backward(dtype, rtol, atol):
    rng = np.random.default_rng(5)
    # The full sizes once, then random lengths (some of them impossible alignments).
    lp, targets, il, tl = random_batch(rng, 5, 30, 5, 12, blank=3, dtype=dtype,
                                       il=[30, 7, 25, 12, 30], tl=[12, 5, 9, 10, 0])
    fn = CTCLoss(blank=3, reduction="none")
    per = fn(lp, targets, il, tl)
    grad = fn.backward()
    ref_loss, ref_grad = np.zeros(5), np.zeros(lp.shape)
    for i in range(5):
        ref_loss[i], g = forward_backward_loss_grad(lp[:il[i], i], targets[i, :tl[i]], 3)
        ref_grad[:il[i], i] = g
    check(per, ref_loss, rtol, atol, "loss")
    check(grad, ref_grad, rtol, atol, "grad")


def test_gradient_matches_central_differences():
    rng = np.random.default_rng(6)
    steps, n, classes = 5, 4, 4
    lp = log_softmax(rng.standard_normal((steps, n, classes)))
    targets = np.array([[1, 1, 2], [3, 0, 0], [2, 3, 2], [1, 0, 0]])
    il, tl = np.array([5, 4, 5, 3]), np.array([3, 1, 3, 0])
    fn = CTCLoss(reduction="mean")
    fn(lp, targets, il, tl)
    grad = fn.backward()
    h = 1e-6
    fd = np.zeros_like(lp)
    for idx in np.ndindex(lp.shape):
        plus, minus = lp.copy(), lp.copy()
        plus[idx] += h
        minus[idx] -= h
        fd[idx] = (fn(plus, targets, il, tl) - fn(minus, targets, il, tl)) / (2 * h)
    check(grad, fd, 1e-6, 1e-8, "grad vs finite differences")
    assert (grad[4, 1] == 0).all() and (grad[3:, 3] == 0).all()  # steps past input_lengths


def test_zero_infinity():
    lp, targets, il, tl = edge_batch(np.random.default_rng(7))
    impossible = np.isinf(brute(lp, targets, il, tl)[0])
    plain, zeroed = CTCLoss(reduction="none"), CTCLoss(reduction="none", zero_infinity=True)
    per_plain, per_zero = plain(lp, targets, il, tl), zeroed(lp, targets, il, tl)
    g_plain, g_zero = plain.backward(), zeroed.backward()
    assert np.isinf(per_plain[impossible]).all() and (per_zero[impossible] == 0).all()
    assert (per_zero[~impossible] == per_plain[~impossible]).all()
    for n in np.flatnonzero(impossible):  # no gradient exists: nan, as torch; 0 past T_n
        assert np.isnan(g_plain[:il[n], n]).all() and (g_plain[il[n]:, n] == 0).all()
    assert (g_zero[:, impossible] == 0).all()
    assert np.array_equal(g_zero[:, ~impossible], g_plain[:, ~impossible])
    mean = CTCLoss(zero_infinity=True)(lp, targets, il, tl)
    finite = np.where(impossible, 0, per_plain)
    assert mean == pytest.approx((finite / np.maximum(tl, 1)).mean(), rel=1e-14)
    assert CTCLoss()(lp, targets, il, tl) == np.inf


def test_padded_and_concatenated_targets_agree_bitwise():
    rng = np.random.default_rng(8)
    lp, targets, il, tl = random_batch(rng, 7, 9, 5, 4)
    flat = np.concatenate([targets[i, :tl[i]] for i in range(7)])
    padded, concat = CTCLoss(reduction="none"), CTCLoss(reduction="none")
    a, b = padded(lp, targets, il, tl), concat(lp, flat, il, tl)
    assert np.array_equal(a, b) and np.array_equal(padded.backward(), concat.backward())
    # Lists and other integer dtypes are accepted alike.
    c = CTCLoss(reduction="none")(lp, targets.astype(np.int16).tolist(), il.tolist(),
                                   tuple(tl.astype(np.uint8)))
    assert np.array_equal(a, c)


def test_unbatched_input_is_a_batch_of_one():
    rng = np.random.default_rng(9)
    lp, targets, il, tl = random_batch(rng, 1, 6, 4, 3, il=[6], tl=[2])
    batched, single = CTCLoss(reduction="none"), CTCLoss(reduction="none")
    a = batched(lp, targets, il, tl)
    b = single(lp[:, 0], targets[0], il[0], tl[0])
    assert b.shape == () and b == a[0]
    assert np.array_equal(single.backward(np.float64(3.0)), 3.0 * batched.backward()[:, 0])


def test_float32_keeps_its_dtype_and_agrees_with_float64():
    rng = np.random.default_rng(10)
    lp, targets, il, tl = random_batch(rng, 6, 20, 6, 8)
    il[:] = 20
    f64, f32 = CTCLoss(reduction="sum"), CTCLoss(reduction="sum")
    v64, v32 = f64(lp, targets, il, tl), f32(lp.astype(np.float32), targets, il, tl)
    assert isinstance(v32, float) and v32 == pytest.approx(v64, rel=1e-5)
    g32 = f32.backward()
    assert g32.dtype == np.float32
    check(g32, f64.backward(), 1e-4, 1e-5, "float32 grad")


def test_empty_batch_follows_the_losses_convention():
    lp = np.zeros((3, 0, 4))
    empty = np.zeros((0, 2), np.int64)
    assert np.isnan(CTCLoss()(lp, empty, [], []))
    fn = CTCLoss(reduction="sum")
    assert fn(lp, empty, [], []) == 0.0
    assert fn.backward().shape == (3, 0, 4)
    assert CTCLoss(reduction="none")(lp, empty, [], []).shape == (0,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_a_bit(dtype):
    rng = np.random.default_rng(11)
    il = np.r_[rng.integers(90, 121, 21), 10, 0, 3]  # the last three are impossible
    lp, targets, il, tl = random_batch(rng, 24, 120, 20, 40, dtype=dtype, il=il,
                                       tl=np.r_[rng.integers(0, 41, 21), 20, 1, 4])
    # Large enough that the thread policy takes two threads: it estimates 40 flops per (t, s)
    # cell (cpp/losses/ctc.cpp) and wants 2e6 per thread (cpp/runtime/threads.cpp).
    assert (il * (2 * tl + 1)).sum() * 40 > 2 * 2e6
    out = []
    for threads in (1, 2):
        rnnkit.set_num_threads(threads)
        fn = CTCLoss(reduction="none")
        out.append((fn(lp, targets, il, tl), fn.backward(np.linspace(0.5, 2, 24))))
    assert np.isinf(out[0][0]).any()  # impossible samples too: their nan gradients alike
    assert out[0][0].tobytes() == out[1][0].tobytes()
    assert out[0][1].tobytes() == out[1][1].tobytes()


def test_backward_needs_a_forward_and_is_used_once():
    fn = CTCLoss()
    with pytest.raises(RuntimeError, match="CTCLoss.backward called before"):
        fn.backward()
    lp = log_softmax(np.zeros((3, 2, 3)))
    fn(lp, [[1], [2]], [3, 3], [1, 1])
    fn.backward()
    with pytest.raises(RuntimeError, match="before the loss was computed"):
        fn.backward()
    none = CTCLoss(reduction="none")
    none(lp, [[1], [2]], [3, 3], [1, 1])
    with pytest.raises(ValueError, match=r"dloss has shape \(3,\), expected \(2,\)"):
        none.backward(np.ones(3))


def test_config_and_public_names():
    fn = CTCLoss(blank=3, reduction="sum", zero_infinity=True)
    assert fn.get_config() == {"blank": 3, "reduction": "sum", "zero_infinity": True}
    assert CTCLoss(**fn.get_config()).get_config() == fn.get_config()
    assert LossesCTCLoss is CTCLoss and "CTCLoss" in rnnkit.losses.__all__
    with pytest.raises(ValueError, match="reduction must be"):
        CTCLoss(reduction="avg")
    with pytest.raises(ValueError, match="blank must be >= 0"):
        CTCLoss(blank=-1)
    with pytest.raises(TypeError, match="blank must be an integer"):
        CTCLoss(blank=1.0)
    with pytest.raises(TypeError, match="zero_infinity must be a bool"):
        CTCLoss(zero_infinity=1)


GOOD = dict(log_probs=np.zeros((4, 2, 3)), targets=np.array([[1, 2], [2, 0]]),
            input_lengths=np.array([4, 3]), target_lengths=np.array([2, 1]))


@pytest.mark.parametrize("change, error, match", [
    ({"log_probs": np.zeros((4, 2, 3), np.int64)}, TypeError, "log_probs must have dtype"),
    ({"log_probs": np.zeros((4, 2, 3), np.float16)}, TypeError, "log_probs must have dtype"),
    ({"log_probs": np.zeros((4, 2, 3, 1))}, ValueError, r"log_probs must be \(T, N, C\).*"
     r"got shape \(4, 2, 3, 1\)"),
    ({"log_probs": np.zeros((4, 2, 0))}, ValueError, "expected C >= 1"),
    ({"input_lengths": np.array([5, 3])}, ValueError,
     r"input_lengths\[0\] = 5, expected a value in \[0, T=4\]"),
    ({"input_lengths": np.array([4, -1])}, ValueError, r"input_lengths\[1\] = -1"),
    ({"input_lengths": np.array([4, 3, 2])}, ValueError,
     r"input_lengths has shape \(3,\), expected \(2,\)"),
    ({"input_lengths": np.array([4.0, 3.0])}, TypeError, "input_lengths must be integers"),
    ({"target_lengths": np.array([3, 1])}, ValueError,
     r"target_lengths\[0\] = 3 exceeds the width S=2"),
    ({"target_lengths": np.array([-1, 1])}, ValueError, r"target_lengths\[0\] = -1"),
    ({"target_lengths": np.array([True, True])}, TypeError, "target_lengths must be integers"),
    ({"targets": np.array([[1, 3], [2, 0]])}, ValueError,
     r"targets hold label 3, expected labels in \[0, C=3\) other than blank=0"),
    ({"targets": np.array([[1, 0], [2, 0]])}, ValueError, "targets hold label 0"),
    ({"targets": np.array([[1, -2], [2, 0]])}, ValueError, "targets hold label -2"),
    ({"targets": np.array([[1.0, 2.0], [2.0, 0.0]])}, TypeError, "targets must be an integer"),
    ({"targets": np.array([1, 2, 2, 1])}, ValueError,
     r"targets has shape \(4,\), expected \(3,\) = \(sum\(target_lengths\),\)"),
    ({"targets": np.array([[1, 2]])}, ValueError, r"targets has shape \(1, 2\), expected \(2, S\)"),
    ({"targets": np.zeros((2, 2, 1), np.int64)}, ValueError, "targets must be"),
])
def test_bad_inputs_are_named(change, error, match):
    args = {**GOOD, **change}
    with pytest.raises(error, match=match):
        CTCLoss()(args["log_probs"], args["targets"], args["input_lengths"],
                  args["target_lengths"])


def test_blank_outside_the_classes():
    with pytest.raises(ValueError, match=r"blank=3 is not a class.*\[0, C=3\)"):
        CTCLoss(blank=3)(*GOOD.values())
    with pytest.raises(ValueError, match="blank=5"):
        greedy_decode(np.zeros((2, 3)), blank=5)


def _core_args(**change):
    args = dict(log_probs=np.zeros((4, 2, 3)), targets=np.array([[1, 2], [2, 1]]),
                input_lengths=np.array([4, 3]), target_lengths=np.array([2, 1]), blank=0)
    args.update(change)
    return args


@pytest.mark.parametrize("change, error, match", [
    ({"input_lengths": np.array([5, 3])}, ValueError, r"input_lengths\[0\] = 5.*\[0, T=4\]"),
    ({"input_lengths": np.array([4, -3])}, ValueError, r"input_lengths\[1\] = -3"),
    ({"input_lengths": np.array([4, 3], np.int32)}, TypeError, "input_lengths must have dtype"),
    ({"input_lengths": np.array([4])}, ValueError, r"input_lengths has shape \(1,\), expected "
     r"\(2,\)"),
    ({"target_lengths": np.array([3, 1])}, ValueError, r"target_lengths\[0\] = 3 exceeds"),
    ({"target_lengths": np.array([-1, 1])}, ValueError, r"target_lengths\[0\] = -1"),
    ({"targets": np.array([[1, 9], [2, 1]])}, ValueError, r"targets: label 9 of sample 0"),
    ({"targets": np.array([[1, 2], [0, 1]])}, ValueError, r"label 0 of sample 1.*blank=0"),
    ({"targets": np.array([[1, -1], [2, 1]])}, ValueError, r"label -1"),
    ({"targets": np.array([1, 2])}, ValueError, r"targets has shape \(2,\), shorter than"),
    ({"targets": np.array([1, 2, 2, 2])}, ValueError, r"expected \(3,\)"),
    ({"targets": np.array([[1, 2], [2, 1]])[:, ::-1]}, ValueError, "C-contiguous"),
    ({"targets": np.zeros((2, 2, 2), np.int64)}, ValueError, "targets must be 2-D"),
    ({"blank": 3}, ValueError, r"blank must lie in \[0, C=3\), got 3"),
    ({"blank": -1}, ValueError, "blank must lie"),
    ({"log_probs": np.zeros((4, 2))}, ValueError, r"log_probs must be 3-D \(T, N, C\)"),
    ({"log_probs": np.zeros((4, 2, 3), np.float16)}, TypeError, "float32 or float64"),
])
def test_the_compiled_kernel_defends_itself(change, error, match):
    # Straight to _core, past the Python checks: a bad length must never reach the kernel.
    with pytest.raises(error, match=match):
        _core.ctc_loss_forward(**_core_args(**change))


def test_the_compiled_backward_checks_its_cache():
    args = _core_args()
    nll, alpha = _core.ctc_loss_forward(**args)
    dnll = np.ones(2)
    grad = _core.ctc_loss_backward(dnll, args["log_probs"], args["targets"],
                                   args["input_lengths"], args["target_lengths"], nll, alpha,
                                   0, False)
    assert grad.shape == (4, 2, 3)
    with pytest.raises(ValueError, match=r"log_alpha has shape \(2, 4, 3\), expected "
                                         r"\(2, 4, 5\)"):
        _core.ctc_loss_backward(dnll, args["log_probs"], args["targets"], args["input_lengths"],
                                args["target_lengths"], nll, alpha[:, :, :3].copy(), 0, False)
    with pytest.raises(TypeError, match="dnll must have dtype float64"):
        _core.ctc_loss_backward(dnll.astype(np.float32), args["log_probs"], args["targets"],
                                args["input_lengths"], args["target_lengths"], nll, alpha, 0,
                                False)
    with pytest.raises(ValueError, match=r"input_lengths\[0\] = 9"):
        _core.ctc_loss_backward(dnll, args["log_probs"], args["targets"], np.array([9, 1]),
                                args["target_lengths"], nll, alpha, 0, False)


# ------------------------------------------------------------------------------- decoders
def one_hot_log_probs(path, classes, peak=0.9):
    """(T, C) log-probabilities whose argmax at step t is path[t]."""
    p = np.full((len(path), classes), (1 - peak) / (classes - 1))
    p[np.arange(len(path)), path] = peak
    return np.log(p)


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    lp = one_hot_log_probs([1, 1, 0, 1, 2, 2, 0, 0, 3], 4)
    assert greedy_decode(lp) == [[1, 1, 2, 3]]
    # A batch, with lengths (the tail of the second sequence is ignored) and blank=3.
    batch = np.stack([one_hot_log_probs([3, 0, 0, 3, 0, 1, 1], 4),
                      one_hot_log_probs([2, 3, 2, 2, 1, 1, 0], 4)], axis=1)
    assert greedy_decode(batch, [7, 4], blank=3) == [[0, 0, 1], [2, 2]]
    assert greedy_decode(batch, [0, 1], blank=3) == [[], [2]]
    assert greedy_decode(np.zeros((0, 2, 3))) == [[], []]


def test_prefix_beam_search_beats_the_best_path():
    # Two steps, p(blank) = 0.6, p(a) = 0.4: the best path is "- -" (0.36), but "a" has the
    # paths "a a", "a -", "- a": 0.16 + 0.24 + 0.24 = 0.64.
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert greedy_decode(lp) == [[]]
    assert prefix_beam_search(lp) == [[1]]
    (best, score), (second, score2) = prefix_beam_search(lp, top_k=2)[0]
    assert best == [1] and score == pytest.approx(np.log(0.64), rel=1e-12)
    assert second == [] and score2 == pytest.approx(np.log(0.36), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_is_the_exhaustive_argmax(seed):
    rng = np.random.default_rng(20 + seed)
    steps, classes = 4 + seed % 2, 3 + (seed % 3 == 0)
    blank = seed % classes
    lp = log_softmax(rng.standard_normal((steps, 2, classes)) * 2)
    il = np.array([steps, steps - 1])
    top = prefix_beam_search(lp, il, beam_width=200, blank=blank, top_k=5)
    best = prefix_beam_search(lp, il, beam_width=200, blank=blank)
    for n in range(2):
        dist = label_distribution(lp[:il[n], n], blank)
        ranked = sorted(dist.items(), key=lambda kv: -kv[1])
        assert tuple(best[n]) == ranked[0][0]
        assert [tuple(h) for h, _ in top[n]] == [seq for seq, _ in ranked[:5]]
        check([s for _, s in top[n]], np.log([p for _, p in ranked[:5]]), 1e-10, 1e-12,
              "beam scores")


def test_narrow_beams_stay_valid():
    rng = np.random.default_rng(30)
    lp = log_softmax(rng.standard_normal((12, 3, 5)))
    for width in (1, 2, 3):
        hyps = prefix_beam_search(lp, beam_width=width, top_k=10)
        for n in range(3):
            assert 1 <= len(hyps[n]) <= width
            seqs = [tuple(h) for h, _ in hyps[n]]
            assert len(set(seqs)) == len(seqs)  # no prefix twice
            scores = [s for _, s in hyps[n]]
            assert scores == sorted(scores, reverse=True)
            for seq, score in hyps[n]:  # a beam's score never exceeds the exact probability
                exact = -CTCLoss(reduction="sum")(lp[:, n], seq, 12, len(seq))
                assert score <= exact + 1e-9


def test_beam_of_one_equals_greedy_where_the_best_path_dominates():
    # Each step has one class at 0.97: the best path carries nearly all the probability of
    # its label sequence and beats every other sequence, so both decoders agree.
    paths = [[1, 1, 0, 2, 2, 0, 1], [0, 0, 3, 0, 3, 3, 0], [2, 1, 2, 1, 0, 0, 0]]
    lp = np.stack([one_hot_log_probs(p, 4, 0.97) for p in paths], axis=1)
    assert prefix_beam_search(lp, beam_width=1) == greedy_decode(lp)
    assert greedy_decode(lp) == [list(collapse(p)) for p in paths]


def test_decoder_arguments_are_checked():
    lp = np.zeros((3, 2, 4))
    with pytest.raises(ValueError, match="beam_width must be >= 1"):
        prefix_beam_search(lp, beam_width=0)
    with pytest.raises(TypeError, match="top_k must be an integer"):
        prefix_beam_search(lp, top_k=1.5)
    with pytest.raises(ValueError, match=r"input_lengths\[1\] = 4"):
        greedy_decode(lp, [1, 4])
    with pytest.raises(ValueError, match=r"log_probs must be \(T, N, C\)"):
        prefix_beam_search(np.zeros(3))


# -------------------------------------------------------------------------------- metrics
def plain_levenshtein(a, b):
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("intention", "execution") == 5
    assert edit_distance("", "abc") == 3 and edit_distance([1, 2], []) == 2
    assert edit_distance("abc", "abc") == 0
    assert edit_distance([1, 2, 3], np.array([1, 3])) == 1
    assert edit_distance("ab", [1, 2]) == 2  # nothing in common
    rng = np.random.default_rng(40)
    for _ in range(50):
        a = rng.integers(0, 3, rng.integers(0, 9)).tolist()
        b = rng.integers(0, 3, rng.integers(0, 9)).tolist()
        assert edit_distance(a, b) == plain_levenshtein(a, b) == edit_distance(b, a)


def test_character_error_rate():
    assert character_error_rate(["kitten", "abc"], ["sitting", "abc"]) == pytest.approx(3 / 10)
    assert character_error_rate([[1, 2]], [[1, 2, 3, 4]]) == 0.5
    assert character_error_rate([""], [""]) == 0.0
    assert character_error_rate(["a"], [""]) == np.inf
    with pytest.raises(ValueError, match="2 hypotheses and 1 references"):
        character_error_rate(["a", "b"], ["a"])
