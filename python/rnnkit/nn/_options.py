"""Cell options of the layers (GRU's reset_after, ...): checking them, and keeping files of
default layers unchanged when an option is added after the file format's first version."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np


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
