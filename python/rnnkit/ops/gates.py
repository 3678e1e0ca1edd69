"""ONNX's options of the LSTM, GRU and RNN ops that change the pointwise math.

``GateOptions(activations=..., clip=..., input_forget=...)`` passes them to ``rnnkit.ops``
(``options=``) and, through the same arguments, to ``nn.LSTM/GRU/RNN`` and their cells:

- ``activations``: one per slot, as ONNX numbers them (LSTM f, g, h: f for the i, f and o
  gates, g for the cell candidate, h for the cell state before o; GRU f (r, z), g (n); RNN
  f). Each is ``"sigmoid"``, ``"tanh"``, ``"relu"`` or ``"hard_sigmoid"`` (ONNX's names, any
  case: ``"HardSigmoid"``), or a tuple ``("hard_sigmoid", alpha, beta)`` (ONNX's defaults 0.2
  and 0.5). Empty: the cell's own.
- ``clip``: bounds every activation's input to [-clip, clip] (None: no clip), as ONNX Runtime
  does: the gates' inputs, not the LSTM's cell state before its h activation.
- ``input_forget``: the LSTM's coupled gates, f = 1 - i.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np

_KINDS = {"sigmoid": 0, "tanh": 1, "relu": 2, "hard_sigmoid": 3}
_ALIASES = {"hardsigmoid": "hard_sigmoid"}
_SLOTS = {"lstm": 3, "gru": 2, "rnn": 1}
_DEFAULTS = {"lstm": ("sigmoid", "tanh", "tanh"), "gru": ("sigmoid", "tanh"),
             "rnn": ("tanh",)}
_HARD_SIGMOID = (0.2, 0.5)  # ONNX's default alpha, beta

Activation = Tuple[str, float, float]


def _activation(slot: int, a: Any) -> Activation:
    if isinstance(a, str):
        name, alpha, beta = a, None, None
    elif isinstance(a, (tuple, list)) and 1 <= len(a) <= 3 and isinstance(a[0], str):
        name, alpha, beta = (tuple(a) + (None, None))[:3]
    else:
        raise TypeError(f"activations[{slot}] must be a name or (name, alpha, beta), got {a!r}")
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in _KINDS:
        raise ValueError(f"activations[{slot}] must be one of {', '.join(_KINDS)}, got "
                         f"{name!r}")
    if key == "hard_sigmoid":
        alpha = _HARD_SIGMOID[0] if alpha is None else alpha
        beta = _HARD_SIGMOID[1] if beta is None else beta
    elif alpha not in (None, 0.0) or beta not in (None, 0.0):  # (0.0: as normalised here)
        raise ValueError(f"activations[{slot}]: {key} takes no alpha or beta")
    for what, v in (("alpha", alpha), ("beta", beta)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v)):
            raise ValueError(f"activations[{slot}] {what} must be a finite number, got {v!r}")
    return key, float(alpha or 0.0), float(beta or 0.0)


@dataclass(frozen=True)
class GateOptions:
    """ONNX's activation choices, cell clip and coupled gates (see the module docstring)."""

    activations: Tuple[Any, ...] = ()
    clip: Optional[float] = None
    input_forget: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.activations, str):
            raise TypeError(f"activations must be a sequence of names (one per slot), got the "
                            f"string {self.activations!r}")
        acts = tuple(_activation(i, a) for i, a in enumerate(tuple(self.activations)))
        object.__setattr__(self, "activations", acts)
        if self.clip is not None:
            if isinstance(self.clip, bool) or not isinstance(self.clip, (int, float)) \
                    or not (math.isfinite(self.clip) and self.clip > 0):
                raise ValueError(f"clip must be a finite number > 0 (or None), got "
                                 f"{self.clip!r}")
            object.__setattr__(self, "clip", float(self.clip))
        if not isinstance(self.input_forget, (bool, np.bool_)):
            raise TypeError(f"input_forget must be True or False, got {self.input_forget!r}")
        object.__setattr__(self, "input_forget", bool(self.input_forget))

    @classmethod
    def from_onnx(cls, activations: Sequence[str] = (), activation_alpha: Sequence[float] = (),
                  activation_beta: Sequence[float] = (), clip: Optional[float] = None,
                  input_forget: bool = False) -> "GateOptions":
        """From an ONNX node's attributes: alpha and beta are consumed in the order of the
        activations that take them (here HardSigmoid). One direction's: a bidirectional node
        lists each direction's activations in turn."""
        alphas, betas = list(activation_alpha), list(activation_beta)
        acts = []
        for name in activations:
            key = _ALIASES.get(name.lower(), name.lower())
            if key == "hard_sigmoid":
                acts.append((key, alphas.pop(0) if alphas else None,
                             betas.pop(0) if betas else None))
            else:
                acts.append(key)
        return cls(tuple(acts), clip, input_forget)

    def is_default_for(self, family: str, nonlinearity: Optional[str] = None) -> bool:
        return self.core(family, nonlinearity) is None

    def core(self, family: str, nonlinearity: Optional[str] = None) -> Optional[tuple]:
        """What the compiled kernels take (None: the cell's usual math, no options)."""
        slots = _SLOTS[family]
        default = _DEFAULTS[family] if family != "rnn" else (nonlinearity or "tanh",)
        if self.activations and len(self.activations) != slots:
            raise ValueError(f"activations: the {family} has {slots} slot(s), got "
                             f"{len(self.activations)}")
        if self.input_forget and family != "lstm":
            raise ValueError(f"input_forget is the LSTM's (not the {family}'s)")
        acts = self.activations or tuple((a, 0.0, 0.0) for a in default)
        if self.clip is None and not self.input_forget and \
                tuple(a[0] for a in acts) == default and all(a[0] != "hard_sigmoid"
                                                             for a in acts):
            return None
        acts = acts + (("sigmoid", 0.0, 0.0),) * (3 - len(acts))  # unused slots
        return (tuple(_KINDS[a[0]] for a in acts), tuple(a[1] for a in acts),
                tuple(a[2] for a in acts), self.clip or 0.0, self.input_forget)

    def get_config(self) -> dict:
        """JSON-able, as the layers save it."""
        return {"activations": [list(a) if a[0] == "hard_sigmoid" else a[0]
                                for a in self.activations],
                "clip": self.clip, "input_forget": self.input_forget}
