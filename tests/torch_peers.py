"""torch's peer of each rnnkit cell family, for the tests that compare with torch.

A table of peers, not dispatch: the cell a test runs comes from the registry
(rnnkit._cellspec), and this says which torch module computes the same thing. The torch
comparisons run over helpers.TORCH_CELLS, the cells torch has (its numpy reference checks
every other cell everywhere else). Import only where torch is installed.
"""
import numpy as np
import pytest
import torch

from helpers import SPECS, TORCH_CELLS

LAYERS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
CELLS = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}


def _peer(table, cell, *args, **kw):
    spec = SPECS[cell]
    if cell not in TORCH_CELLS:  # the tests parametrise over TORCH_CELLS: not reached
        pytest.fail(f"torch has no peer of the {cell} cell (use helpers.TORCH_CELLS)")
    if spec.nonlinearity is not None:
        kw["nonlinearity"] = spec.nonlinearity
    return table[spec.family](*args, **kw)


def torch_layer(cell, *args, **kw):
    """torch's sequence layer of rnnkit cell `cell` (torch.nn.LSTM, ...), built with args."""
    return _peer(LAYERS, cell, *args, **kw)


def torch_cell(cell, *args, **kw):
    """torch's single-step cell of rnnkit cell `cell` (torch.nn.LSTMCell, ...)."""
    return _peer(CELLS, cell, *args, **kw)


def check_like_torch(actual, expected, rtol, atol, name, same_dtype=False):
    """actual (numpy) against torch's expected (a tensor or array), np.allclose-style, saying
    where it is off; same_dtype: the dtypes must match too."""
    e = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    a = np.asarray(actual)
    assert a.shape == e.shape, f"{name}: shape {a.shape} vs torch {e.shape}"
    if same_dtype:
        assert a.dtype == e.dtype, f"{name}: dtype {a.dtype} vs torch {e.dtype}"
    diff = np.abs(a.astype(np.float64) - e)
    ok = diff <= atol + rtol * np.abs(e)
    if not ok.all():
        bad = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise AssertionError(f"{name}: max abs diff {diff.max():.3e} vs torch; first bad "
                             f"index {bad}: {a[bad]!r} vs {e[bad]!r}")
