"""Cell options of the layers (GRU's reset_after, ...): checking them, and keeping files of
default layers unchanged when an option is added after the file format's first version."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .._cellspec import default_cell
from ..ops.gates import GateOptions


def flag(name: str, value: Any) -> bool:
    """A boolean option: True or False (numpy's too), nothing that merely converts to one."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def without_defaults(config: Dict[str, Any], defaults: Dict[str, Any]) -> Dict[str, Any]:
    """`config` without the options that are at their defaults: a default layer's config (and
    so its file) stays what it was before the option existed."""
    for name, default in defaults.items():
        if name in config and config[name] == default and type(config[name]) is type(default):
            del config[name]
    return config


# The gate options' defaults (as the layers take them; left out of get_config at these).
GATE_DEFAULTS = {"activations": [], "clip": None, "input_forget": False}
# The recurrence's regularisers' (the sequence layers' recurrent_dropout and zoneout), alike.
REGULARIZER_DEFAULTS = {"recurrent_dropout": 0.0, "zoneout": 0.0}
# Training by recomputation (rnnkit.ops.checkpointed), alike.
RECOMPUTE_DEFAULTS = {"recompute": False, "checkpoint_every": None}


def set_gate_options(layer: Any, family: str, nonlinearity: Optional[str],
                     gates: Optional[Dict[str, Any]]) -> Optional[GateOptions]:
    """ONNX's gate options of a layer or cell (rnnkit.ops.gates), checked for its family, set
    on it as the attributes get_config reads (activations, clip, input_forget); returns them,
    or None when they are the cell's usual math."""
    if gates is None:  # a family without ONNX's options (the LayerNorm cells)
        layer.activations, layer.clip, layer.input_forget = [], None, False
        return None
    g = dict(GATE_DEFAULTS, **gates)
    options = GateOptions(tuple(g["activations"] or ()), g["clip"],
                          flag("input_forget", g["input_forget"]))
    if options.is_default_for(family, nonlinearity):
        options = None
    layer.activations = options.get_config()["activations"] if options else []
    layer.clip = options.clip if options else None
    layer.input_forget = bool(options and options.input_forget)
    return options



def cell_options_repr(layer: Any) -> str:
    """The part of a layer's or cell's repr that says which cell it runs: the RNN's
    nonlinearity, options off their family's defaults (reset_after=False, peephole=True) and
    ONNX's gate options."""
    s = ""
    if layer.nonlinearity not in (None, "tanh"):
        s += f", nonlinearity={layer.nonlinearity!r}"
    defaults = default_cell(layer._family).kwargs
    for name, value in layer._spec.options:
        if name != "nonlinearity" and value != defaults[name]:
            s += f", {name}={value!r}"
    if layer._gates:
        s += f", activations={layer.activations!r}, clip={layer.clip!r}"
        if layer.input_forget:
            s += ", input_forget=True"
    return s
