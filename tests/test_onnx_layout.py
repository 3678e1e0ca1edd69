"""The gate-order maps between rnnkit (torch) and ONNX, against the orders written out by name."""

import numpy as np
import pytest
from rnnkit.interop import onnx_layout as L

NAMES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ("h",)}
# ONNX's own names for the same blocks (the operator docs): LSTM iofc, GRU zrh.
ONNX_NAMES = {"lstm": ("i", "o", "f", "g"), "gru": ("z", "r", "n"), "rnn": ("h",)}


def _labelled(names, width):
    # One row per unit, labelled by its gate: rows of block "f" hold the code of "f".
    return np.repeat([ord(n) for n in names], width)[:, None] * np.ones((1, 3))


@pytest.mark.parametrize("family", ["lstm", "gru", "rnn"])
def test_gate_blocks_move_to_onnx_order_and_back(family):
    ours = _labelled(NAMES[family], 5)
    onnx_rows = L.gates_to_onnx(ours, family)
    np.testing.assert_array_equal(onnx_rows, _labelled(ONNX_NAMES[family], 5))
    np.testing.assert_array_equal(L.gates_from_onnx(onnx_rows, family), ours)


def test_peephole_orders():
    ours = np.repeat([ord(c) for c in "ifo"], 4).astype(float)
    onnx_p = L.peephole_to_onnx(ours)
    np.testing.assert_array_equal(onnx_p, np.repeat([ord(c) for c in "iof"], 4))
    np.testing.assert_array_equal(L.peephole_from_onnx(onnx_p), ours)


def test_uneven_blocks_are_refused():
    with pytest.raises(ValueError, match="equal gate blocks"):
        L.gates_to_onnx(np.zeros((7, 2)), "lstm")
