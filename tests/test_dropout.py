"""nn.Dropout applied more than once per forward (issue 16): each forward keeps its mask and
the backwards take them in reverse order, as torch's autograd does for a reused module.

References: numpy gradients built from the masks that the forwards reveal (y = x * m, so
m = y / x for an x without zeros), and a model with two separate Dropout layers that draw the
same masks.
"""

import numpy as np
import pytest

from rnnkit import nn


def _nonzero(shape, seed):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float64)


def test_reused_dropout_gradient_matches_numpy():
    # f(x) = sum(w * d(a * d(x) + 10)): the same module twice, an affine map between (the
    # + 10 keeps the second input free of zeros, so that its mask can be read off).
    d = nn.Dropout(0.4, seed=3)
    x, a, w = _nonzero((6, 5), 0), _nonzero((6, 5), 1), _nonzero((6, 5), 2)
    y1 = d(x)
    z = a * y1 + 10.0
    y2 = d(z)
    m1, m2 = y1 / x, y2 / z                  # the masks the two forwards used
    assert set(np.unique(np.round(m1, 12))) <= {0.0, round(1 / 0.6, 12)}
    assert not np.array_equal(m1, m2), "two forwards draw two masks"
    g_z = d.backward(w)                      # last forward first
    g_x = d.backward(g_z * a)
    np.testing.assert_allclose(g_z, w * m2, rtol=1e-15, atol=0)
    np.testing.assert_allclose(g_x, w * m2 * a * m1, rtol=1e-15, atol=0)
    with pytest.raises(RuntimeError, match="without a training-mode forward"):
        d.backward(w)                        # both masks are used up


def test_reused_dropout_in_sequential_equals_two_dropouts():
    # Sequential(L1, d, L2, d) against Sequential(L1, d_a, L2, d_b), where d_a draws the first
    # mask of seed 5 and d_b the second (its generator is advanced by one forward first).
    p, seed = 0.3, 5
    x = _nonzero((4, 3), 7)
    shape1, shape2 = (4, 6), (4, 2)
    d = nn.Dropout(p, seed=seed)
    reused = nn.Sequential(nn.Linear(3, 6, dtype="float64", seed=0), d,
                           nn.Linear(6, 2, dtype="float64", seed=1), d)
    d_a, d_b = nn.Dropout(p, seed=seed), nn.Dropout(p, seed=seed)
    d_b(np.zeros(shape1))
    d_b.train()                              # drops that mask; the generator stays advanced
    ref = nn.Sequential(nn.Linear(3, 6, dtype="float64", seed=0), d_a,
                        nn.Linear(6, 2, dtype="float64", seed=1), d_b)
    y, y_ref = reused(x), ref(x)
    np.testing.assert_array_equal(y, y_ref)
    dy = _nonzero(shape2, 8)
    np.testing.assert_array_equal(reused.backward(dy), ref.backward(dy))
    for (name, p1), (_, p2) in zip(reused.named_parameters(), ref.named_parameters()):
        np.testing.assert_array_equal(p1.grad, p2.grad, err_msg=name)


def test_rejected_dy_consumes_no_mask():
    d = nn.Dropout(0.5, seed=0)
    x1, x2 = _nonzero((3, 4), 0), _nonzero((2, 5), 1)
    y1, y2 = d(x1), d(x2)
    with pytest.raises(ValueError, match=r"dy has shape \(3, 4\), expected \(2, 5\)"):
        d.backward(np.ones((3, 4)))          # the latest forward's mask is (2, 5)
    np.testing.assert_allclose(d.backward(np.ones((2, 5))), y2 / x2, rtol=1e-15)
    np.testing.assert_allclose(d.backward(np.ones((3, 4))), y1 / x1, rtol=1e-15)


@pytest.mark.parametrize("drop", ["eval_forward", "mode_change"])
def test_pending_masks_are_dropped(drop):
    d = nn.Dropout(0.5, seed=0)
    x = _nonzero((3, 4), 0)
    d(x)
    d(x)
    if drop == "mode_change":
        d.eval()
        d.train()
    else:
        object.__setattr__(d, "training", False)    # eval mode without the mode hook
        d(x)
        object.__setattr__(d, "training", True)
    with pytest.raises(RuntimeError, match="without a training-mode forward"):
        d.backward(np.ones((3, 4)))
