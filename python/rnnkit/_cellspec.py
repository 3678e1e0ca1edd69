"""The cell registry on the Python side: one :class:`CellSpec` per compiled cell.

The compiled core lists its cells (``_core.cells()``, generated from ``cpp/cells/cell_list.h``)
with their gates, states, saved arrays and kernels; this table adds what only Python knows (the
layer family and the RNN nonlinearity) and is checked against the core at import, so the two
sides cannot drift. ``ops``, ``nn``, ``io``, the self-check, the benchmarks and the tests read
cells from here instead of branching on names.
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import _core

# Python-side facts per compiled cell: (family, options). The family is the name of the
# public ops functions (``<family>_forward``) and of the layer; several cells may share one,
# told apart by the layer's keyword options that select them (the RNN's two activations, the
# GRU's two formulas). A family's first cell here is its default; every cell of a family lists
# the same option names.
_PYTHON_SIDE: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "lstm": ("lstm", {"peephole": False}),
    "lstm_peephole": ("lstm", {"peephole": True}),
    "gru": ("gru", {"reset_after": True}),
    "gru_reset_before": ("gru", {"reset_after": False}),
    "rnn_tanh": ("rnn", {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    "layernorm_lstm": ("layernorm_lstm", {}),
    "layernorm_gru": ("layernorm_gru", {}),
}

_GRADS_CLASS = {"lstm": "LSTMGrads", "gru": "GRUGrads", "rnn": "RNNGrads",
                "layernorm_lstm": "LayerNormLSTMGrads", "layernorm_gru": "LayerNormGRUGrads"}

# The initial value of a cell's extra parameters where it is a constant (a LayerNorm's gains
# start at 1, its bias at 0, as torch.nn.LayerNorm's); the others (the peephole) are drawn like
# the weights.
EXTRA_INIT: Dict[str, float] = {"ln_weight_ih": 1.0, "ln_weight_hh": 1.0, "ln_weight_c": 1.0,
                                "ln_bias_c": 0.0}


@dataclass(frozen=True)
class CellSpec:
    """What the rest of the package needs to know about one cell."""

    name: str                          # "lstm", "gru", "gru_reset_before", "rnn_tanh", ...
    gates: int                         # G: W_ih is (G*H, I), W_hh (G*H, H)
    states: Tuple[str, ...]            # ("h", "c") or ("h",)
    saved: Tuple[Tuple[str, int], ...]  # arrays kept for backward: (name, width in units of H)
    extra: Tuple[Tuple[str, int], ...]  # the cell's own parameters: (name, width in units of H)
    family: str                        # "lstm", "gru" or "rnn"
    options: Tuple[Tuple[str, Any], ...]  # the layer options that select it in its family
    nonlinearity: Optional[str]        # the RNN's activation, else None
    forward: Callable[..., Any]        # _core.<name>_forward
    backward: Callable[..., Any]       # _core.<name>_backward
    step: Any                          # _core.<name>_step: weights packed for single steps
    grads: Any                         # named tuple type of the backward's results (plus
                                       # d<extra> for each extra parameter)
    projectable: bool                  # takes a projection w_hr (torch's proj_size): the LSTM
    two_phase: bool                    # a second recurrent product of r ⊙ h (GRU with
                                       # reset_after=False): it takes no recurrent mask
    projected_grads: Any               # grads plus dw_hr, for a projected forward (or None)
    state0_names: Tuple[str, ...]      # argument names of the initial states: ("h0", "c0")
    state_n_names: Tuple[str, ...]     # names of the final states: ("h_n", "c_n")
    dstate_n_names: Tuple[str, ...]    # their gradients' argument names: ("dh_n", "dc_n")

    @property
    def kwargs(self) -> Dict[str, Any]:
        """The options as keyword arguments of the family's layers, e.g. ``{"nonlinearity":
        "relu"}``, ``{"reset_after": False}`` or ``{"peephole": True}``."""
        return dict(self.options)

    @property
    def ops_kwargs(self) -> Dict[str, Any]:
        """The options as keyword arguments of the family's ops functions: those of the layers,
        except the flags that stand for an extra parameter (``peephole``), which the ops
        functions take as the array itself (None for the cell without it)."""
        return {k: v for k, v in self.options if k not in _EXTRA_NAMES}

    @property
    def extra_names(self) -> Tuple[str, ...]:
        return tuple(n for n, _ in self.extra)


def _grads_type(family: str, states: Tuple[str, ...], extra: Tuple[str, ...],
                intrinsic: Tuple[str, ...] = ()) -> Any:
    """The named tuple of a backward's results. Its name says the extra parameters an option
    adds (LSTMPeepholeGrads), not those every cell of the family has (`intrinsic`)."""
    fields = ("dx",) + tuple(f"d{s}0" for s in states) + ("dw_ih", "dw_hh", "db_ih", "db_hh") \
        + tuple(f"d{e}" for e in extra)
    base = _GRADS_CLASS.get(family, family.upper() + "Grads")
    t = namedtuple(base[:-len("Grads")] + "".join(e.title() for e in extra
                                                  if e not in intrinsic) + "Grads", fields)
    t.__module__ = "rnnkit.ops"
    t.__doc__ = ("Gradients from backward: " + ", ".join(fields) +
                 " (db_ih/db_hh are None where the bias was None).")
    return t


def _projected(grads: Any) -> Any:
    """The grads type of a projected forward: the same fields, then dw_hr."""
    name = grads.__name__[:-len("Grads")] + "ProjectedGrads"
    t = namedtuple(name, grads._fields + ("dw_hr",))
    t.__module__ = "rnnkit.ops"
    t.__doc__ = grads.__doc__.rstrip(".") + ", dw_hr (the projection's)."
    return t


def _build() -> Dict[str, CellSpec]:
    compiled = {c["name"]: c for c in _core.cells()}
    if set(compiled) != set(_PYTHON_SIDE):
        raise ImportError(f"rnnkit._core has cells {sorted(compiled)} but rnnkit._cellspec "
                          f"describes {sorted(_PYTHON_SIDE)}: rebuild the extension")
    grads: Dict[Tuple[str, Tuple[str, ...]], Any] = {}
    specs = {}
    for name in _PYTHON_SIDE:  # in this table's order: a family's first cell is its default
        c = compiled[name]
        family, options = _PYTHON_SIDE[name]
        states = tuple(c["states"])
        extra = tuple((str(n), int(w)) for n, w in c["extra"])
        key = (family, states, tuple(n for n, _ in extra))
        if key not in grads:
            family_extra = [tuple(n for n, _ in compiled[m]["extra"])
                            for m, (f, _) in _PYTHON_SIDE.items() if f == family]
            intrinsic = tuple(n for n in key[2] if all(n in e for e in family_extra))
            grads[key] = _grads_type(*key, intrinsic)
        specs[name] = CellSpec(name=name, gates=int(c["gates"]), states=states,
                               saved=tuple((str(n), int(w)) for n, w in c["saved"]),
                               extra=extra,
                               projectable=bool(c["projectable"]),
                               two_phase=bool(c["two_phase"]),
                               projected_grads=_projected(grads[key]) if c["projectable"]
                               else None,
                               family=family, options=tuple(options.items()),
                               nonlinearity=options.get("nonlinearity"), forward=c["forward"],
                               backward=c["backward"], step=c["step"], grads=grads[key],
                               state0_names=tuple(s + "0" for s in states),
                               state_n_names=tuple(s + "_n" for s in states),
                               dstate_n_names=tuple("d" + s + "_n" for s in states))
    return specs


CELLS: Dict[str, CellSpec] = _build()
# Every extra parameter's name: as a layer option, a flag; to the ops functions, the array.
_EXTRA_NAMES = frozenset(n for s in CELLS.values() for n in s.extra_names)


def family_cells(family: str) -> Dict[str, CellSpec]:
    """The cells of one family by name, its default first."""
    return {n: s for n, s in CELLS.items() if s.family == family}


def default_cell(family: str) -> CellSpec:
    """The cell a family's layer runs with default options."""
    cells = family_cells(family)
    if not cells:
        raise ValueError(f"unknown cell family {family!r}; known: "
                         f"{sorted({s.family for s in CELLS.values()})}")
    return next(iter(cells.values()))


def cell_for(family: str, nonlinearity: Optional[str] = None, **options: Any) -> CellSpec:
    """The cell of `family` selected by its options (the only place they are validated).

    Options not given take the family's defaults, except ``nonlinearity``, which a family that
    has it (the RNN) must be given, as torch requires. ``cell_for("gru", reset_after=False)``,
    ``cell_for("rnn", "relu")``.
    """
    default = dict(default_cell(family).options)
    cells = family_cells(family).values()
    if "nonlinearity" in default:
        options["nonlinearity"] = nonlinearity
    elif nonlinearity is not None:
        raise ValueError(f"{family} has no nonlinearity option, got {nonlinearity!r}")
    unknown = sorted(set(options) - set(default))
    if unknown:
        raise TypeError(f"{family} has no option {', '.join(unknown)} (options: "
                        f"{', '.join(default) or 'none'})")
    # An option's value must be one of the cells' values, of the same type: reset_after=0 is
    # not False (numpy's bool is bool).
    options = {k: bool(v) if isinstance(v, np.bool_) else v for k, v in options.items()}
    wanted = {**default, **options}
    for spec in cells:
        if all(type(wanted[k]) is type(v) and wanted[k] == v for k, v in spec.options):
            return spec
    for key, value in options.items():
        allowed = [dict(spec.options)[key] for spec in cells]
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise ValueError(f"{key} must be {' or '.join(repr(a) for a in allowed)}, got "
                             f"{value!r}")
    raise ValueError(f"no {family} cell has the options {wanted}")  # pragma: no cover
