"""torch's peer of each rnnkit cell family, for the tests that compare with torch.

A table of peers, not dispatch: the cell a test runs comes from the registry
(rnnkit._cellspec), and this says which torch module computes the same thing. A cell whose
family has no torch peer is skipped by the torch comparisons (its numpy reference still
checks it everywhere else). Import only where torch is installed.
"""
import pytest
import torch

from helpers import SPECS

LAYERS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
CELLS = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}


# The cell options torch's modules take; any other option must be at its torch value.
TORCH_OPTIONS = {"nonlinearity"}
TORCH_VALUES = {"reset_after": True}


def has_peer(cell):
    """Whether torch computes what rnnkit cell `cell` computes (GRU reset_after=False: no)."""
    spec = SPECS[cell]
    return spec.family in LAYERS and all(
        k in TORCH_OPTIONS or TORCH_VALUES.get(k, object()) == v for k, v in spec.options)


def _peer(table, cell, *args, **kw):
    spec = SPECS[cell]
    if not has_peer(cell):
        pytest.skip(f"torch has no peer of the {cell} cell")
    kw.update({k: v for k, v in spec.options if k in TORCH_OPTIONS})
    return table[spec.family](*args, **kw)


def torch_layer(cell, *args, **kw):
    """torch's sequence layer of rnnkit cell `cell` (torch.nn.LSTM, ...), built with args."""
    return _peer(LAYERS, cell, *args, **kw)


def torch_cell(cell, *args, **kw):
    """torch's single-step cell of rnnkit cell `cell` (torch.nn.LSTMCell, ...)."""
    return _peer(CELLS, cell, *args, **kw)
