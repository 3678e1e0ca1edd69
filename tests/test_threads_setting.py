"""rnnkit.set_num_threads takes any integer type (numpy's too) and names what it rejects."""
import numpy as np
import pytest

import rnnkit


@pytest.fixture(autouse=True)
def _restore_threads():
    before = rnnkit.get_num_threads()
    yield
    rnnkit.set_num_threads(before)


@pytest.mark.parametrize("n", [np.int64(2), np.int32(1), np.uint8(2)])
def test_numpy_integers_accepted(n):
    rnnkit.set_num_threads(n)
    assert rnnkit.get_num_threads() == int(n)


@pytest.mark.parametrize("bad, error", [(2.0, TypeError), ("2", TypeError), (None, TypeError),
                                        (np.float64(2), TypeError), (True, TypeError),
                                        (np.bool_(True), TypeError),
                                        (0, ValueError), (-3, ValueError),
                                        (10**12, ValueError)])
def test_bad_counts_rejected_by_name(bad, error):
    with pytest.raises(error, match="set_num_threads: n must be an integer"):
        rnnkit.set_num_threads(bad)
