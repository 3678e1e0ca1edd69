"""Cell options of the layers (GRU's reset_after, ...): checking them, and keeping files of
default layers unchanged when an option is added after the file format's first version."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

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


def gate_options(family: str, nonlinearity: Optional[str], activations: Sequence[Any],
                 clip: Optional[float], input_forget: bool) -> Optional[GateOptions]:
    """ONNX's gate options of a layer or cell (rnnkit.ops.gates), checked for its family; None
    when they are the cell's usual math."""
    options = GateOptions(tuple(activations or ()), clip, flag("input_forget", input_forget))
    return None if options.is_default_for(family, nonlinearity) else options


GATE_DEFAULTS = {"activations": [], "clip": None, "input_forget": False}
