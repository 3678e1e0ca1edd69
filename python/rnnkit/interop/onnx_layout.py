"""How rnnkit's recurrent parameters (torch's layout) map onto the inputs of ONNX's LSTM, GRU
and RNN ops, in one place for the exporter and the importer.

ONNX stacks the gate row blocks of W (input weights), R (recurrent weights) and each half of B
(the input bias, then the recurrent bias) in its own order: LSTM i, o, f, c; GRU z, r, h. rnnkit,
like torch, stacks LSTM i, f, g, o and GRU r, z, n. The peephole vector P is ONNX's i, o, f,
rnnkit's ``peephole_l{k}`` is i, f, o. The RNN has one block, so nothing moves.

ONNX's GRU with ``linear_before_reset=1`` is rnnkit's (and torch's) default GRU
(``reset_after=True``); ``linear_before_reset=0`` (ONNX's default) is ``reset_after=False``.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

ONNX_OP: Dict[str, str] = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
FAMILY_OF_OP: Dict[str, str] = {op: family for family, op in ONNX_OP.items()}
GATES: Dict[str, int] = {"lstm": 4, "gru": 3, "rnn": 1}

# rnnkit's gate block k is ONNX's block TORCH_FROM_ONNX[family][k] ...
TORCH_FROM_ONNX: Dict[str, Tuple[int, ...]] = {"lstm": (0, 2, 3, 1), "gru": (1, 0, 2),
                                               "rnn": (0,)}
# ... and ONNX's block j is rnnkit's block ONNX_FROM_TORCH[family][j].
ONNX_FROM_TORCH: Dict[str, Tuple[int, ...]] = {
    family: tuple(int(k) for k in np.argsort(order)) for family, order in TORCH_FROM_ONNX.items()}
# The peephole vector: rnnkit i, f, o from ONNX i, o, f (its own inverse).
PEEPHOLE_TORCH_FROM_ONNX: Tuple[int, ...] = (0, 2, 1)

# rnnkit's activation names (rnnkit.ops.gates) and ONNX's.
ONNX_ACTIVATION: Dict[str, str] = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu",
                                   "hard_sigmoid": "HardSigmoid"}


def permute_blocks(a: np.ndarray, order: Sequence[int], axis: int = 0) -> np.ndarray:
    """``a`` cut into len(order) equal blocks along ``axis``, block k of the result being block
    order[k] of ``a`` (a new array)."""
    a = np.asarray(a)
    if a.shape[axis] % len(order):
        raise ValueError(f"axis {axis} of shape {a.shape} does not split into {len(order)} "
                         "equal gate blocks")
    blocks = np.split(a, len(order), axis=axis)
    return np.concatenate([blocks[k] for k in order], axis=axis)


def gates_to_onnx(a: np.ndarray, family: str, axis: int = 0) -> np.ndarray:
    """rnnkit's gate-stacked rows (W_ih, W_hh or a bias) in ONNX's gate order."""
    return permute_blocks(a, ONNX_FROM_TORCH[family], axis)


def gates_from_onnx(a: np.ndarray, family: str, axis: int = 0) -> np.ndarray:
    """ONNX's gate-stacked rows (W, R or half of B) in rnnkit's gate order."""
    return permute_blocks(a, TORCH_FROM_ONNX[family], axis)


def peephole_to_onnx(p: np.ndarray) -> np.ndarray:
    """rnnkit's ``peephole_l{k}`` [p_i, p_f, p_o] as ONNX's P row [p_i, p_o, p_f]."""
    return permute_blocks(p, PEEPHOLE_TORCH_FROM_ONNX, axis=-1)


def peephole_from_onnx(p: np.ndarray) -> np.ndarray:
    """ONNX's P row [p_i, p_o, p_f] as rnnkit's ``peephole_l{k}`` [p_i, p_f, p_o]."""
    return permute_blocks(p, PEEPHOLE_TORCH_FROM_ONNX, axis=-1)
