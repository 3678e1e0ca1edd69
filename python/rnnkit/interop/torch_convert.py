"""Models between torch and rnnkit: :func:`from_torch` and :func:`to_torch`, weights copied.

    model = rnnkit.torch.from_torch(torch_model)      # torch.nn modules -> rnnkit.nn
    torch_model = rnnkit.torch.to_torch(model)        # rnnkit.nn -> torch.nn modules

Both sides use torch's parameter names, shapes and gate order, so a conversion copies each
array unchanged (bitwise, in the module's dtype) and the converted model computes what the
original does. Layers converted either way: ``LSTM`` (with ``proj_size``), ``GRU``, ``RNN``
(tanh and relu), ``Embedding``, ``Linear``, ``Dropout``, ``Tanh``, ``ReLU``, ``Sigmoid``,
``GELU``, ``Softmax``, ``LogSoftmax`` and ``Sequential`` of those; rnnkit's ``Last`` and the
torch modules of :mod:`rnnkit.interop.torch_modules` (rnnkit's kernels) are read too.

Recurrent layers inside a ``Sequential``: rnnkit's Sequential passes on a recurrent layer's
output only (its final state is dropped), but ``torch.nn.Sequential`` would hand the next layer
the ``(output, h_n)`` tuple. ``to_torch`` therefore puts ``LSTMOutput`` / ``GRUOutput`` /
``RNNOutput`` there: subclasses of ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` whose ``forward``
returns the output alone. Being the torch classes, they keep the state-dict names
("1.weight_ih_l0"), so the rnnkit Sequential's state dict loads into the torch one unchanged.
rnnkit's ``Last`` (each sequence's last step) becomes ``LastStep``, which takes step T-1 of a
(T, B, F) or, with batch_first, (B, T, F) tensor. The torch Sequential takes no ``lengths``:
it runs whole sequences (for padded batches, call the layers with a PackedSequence).
``from_torch`` accepts these classes, and also a plain ``nn.LSTM/GRU/RNN`` inside an
``nn.Sequential`` (read as rnnkit's Sequential reads it: the output goes on).

torch is imported inside the functions (these classes are built on first use, also when
unpickling), so importing this module does not import torch.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

import numpy as np

from .. import nn as rnn

# (plus LSTMOutput, GRUOutput, RNNOutput and LastStep, built on first access: __getattr__)
__all__ = ["from_torch", "to_torch"]

# torch RNNBase.mode -> rnnkit layer class and its extra constructor keywords.
_RECURRENT_MODES = {"LSTM": (rnn.LSTM, {}), "GRU": (rnn.GRU, {}),
                    "RNN_TANH": (rnn.RNN, {"nonlinearity": "tanh"}),
                    "RNN_RELU": (rnn.RNN, {"nonlinearity": "relu"})}
# The recurrent constructor arguments torch's modules have; anything else an rnnkit layer's
# get_config reports (peephole, reset_after=False, ONNX gate options, zoneout, ...) torch
# cannot express.
_TORCH_RECURRENT_ARGS = frozenset({"input_size", "hidden_size", "num_layers", "nonlinearity",
                                   "bias", "batch_first", "dropout", "bidirectional",
                                   "proj_size", "dtype"})
_DTYPES = {"float32": "float32", "float64": "float64"}

_lazy_classes: Dict[str, type] = {}


def _torch_classes() -> Dict[str, type]:
    """The torch modules this file defines, created once on first use (torch loads then)."""
    if _lazy_classes:
        return _lazy_classes
    import torch
    from torch import nn

    def output_only(base: type, name: str) -> type:
        def forward(self: Any, input: Any, hx: Any = None) -> Any:
            return base.forward(self, input, hx)[0]

        doc = (f"``torch.nn.{base.__name__}`` whose forward returns the output alone (no "
               "final state), so it can sit inside ``torch.nn.Sequential`` as a recurrent "
               "layer sits in rnnkit's Sequential. Same arguments and state-dict names as "
               f"``torch.nn.{base.__name__}``.")
        return type(name, (base,), {"forward": forward, "__doc__": doc, "__module__": __name__,
                                    "__qualname__": name})

    class LastStep(nn.Module):
        """The last step of a sequence tensor: ``x[-1]`` of (T, B, F), or ``x[:, -1]`` with
        ``batch_first`` (B, T, F), giving (B, F): rnnkit's ``Last`` without lengths."""

        def __init__(self, batch_first: bool = False) -> None:
            super().__init__()
            self.batch_first = bool(batch_first)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dim() != 3:
                raise ValueError(f"LastStep: x must be 3-D, got shape {tuple(x.shape)}")
            return x[:, -1] if self.batch_first else x[-1]

        def extra_repr(self) -> str:
            return "batch_first=True" if self.batch_first else ""

    LastStep.__module__ = __name__
    LastStep.__qualname__ = "LastStep"
    _lazy_classes.update(LSTMOutput=output_only(nn.LSTM, "LSTMOutput"),
                         GRUOutput=output_only(nn.GRU, "GRUOutput"),
                         RNNOutput=output_only(nn.RNN, "RNNOutput"), LastStep=LastStep)
    return _lazy_classes


def __getattr__(name: str) -> Any:
    """``torch_convert.LSTMOutput`` etc. build the torch classes on first access (PEP 562),
    which is also how pickle finds them again."""
    if name in ("LSTMOutput", "GRUOutput", "RNNOutput", "LastStep"):
        return _torch_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------ torch -> rnnkit
def _torch_dtype_name(module: Any, dtype: Optional[str]) -> str:
    """The rnnkit dtype of a converted module: ``dtype`` if given, else its parameters'."""
    if dtype is not None:
        if str(dtype) not in _DTYPES:
            raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        return str(dtype)
    params = list(module.parameters())
    if not params:
        return "float32"
    name = str(params[0].dtype).replace("torch.", "")
    if name not in _DTYPES:
        raise TypeError(f"{type(module).__name__} has {params[0].dtype} parameters; rnnkit "
                        "layers are float32 or float64: pass dtype='float32' to convert")
    return name


def _numpy_state(module: Any) -> Dict[str, np.ndarray]:
    """The module's state dict as numpy arrays (the load copies them)."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _recurrent_from_torch(m: Any, dtype: str) -> rnn.Module:
    cls, extra = _RECURRENT_MODES[m.mode]
    kw: Dict[str, Any] = dict(num_layers=m.num_layers, bias=m.bias, batch_first=m.batch_first,
                              dropout=float(m.dropout), bidirectional=m.bidirectional,
                              dtype=dtype, **extra)
    if getattr(m, "proj_size", 0):
        kw["proj_size"] = m.proj_size
    layer = cls(m.input_size, m.hidden_size, **kw)
    layer.load_state_dict(_numpy_state(m))
    return layer


def from_torch(module: Any, dtype: Optional[str] = None) -> rnn.Module:
    """The rnnkit model equivalent to torch ``module``, with its weights copied.

    ``module``: a ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` (or one of rnnkit's torch modules, or
    :class:`LSTMOutput` etc.), ``Embedding``, ``Linear``, ``Dropout``, an activation listed in
    the module docstring, :class:`LastStep`, or a ``torch.nn.Sequential`` of these (nested
    Sequentials are kept nested). ``dtype``: the rnnkit dtype ("float32" or "float64");
    default: the torch module's (float16/bfloat16 parameters need an explicit dtype).
    The result is in the torch module's training/eval mode. Anything else raises TypeError
    naming the layer; torch options rnnkit lacks (Embedding's max_norm, ...) raise ValueError.
    """
    from torch import nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    dt = _torch_dtype_name(module, dtype)
    out = _from_torch(module, dt, "model", nn)
    out.train(module.training)
    return out


def _from_torch(m: Any, dt: str, where: str, nn: Any) -> rnn.Module:
    if getattr(m, "mode", None) in _RECURRENT_MODES and hasattr(m, "hidden_size"):
        return _recurrent_from_torch(m, dt)
    if isinstance(m, nn.Sequential):
        return rnn.Sequential(*[_from_torch(child, dt, f"{where}[{i}]", nn)
                                for i, child in enumerate(m)])
    if isinstance(m, nn.Embedding):
        for opt, default in (("max_norm", None), ("scale_grad_by_freq", False),
                             ("sparse", False)):
            if getattr(m, opt) != default:
                raise ValueError(f"{where}: rnnkit's Embedding has no {opt} (got "
                                 f"{getattr(m, opt)!r})")
        layer: rnn.Module = rnn.Embedding(m.num_embeddings, m.embedding_dim,
                                          padding_idx=m.padding_idx, dtype=dt)
    elif isinstance(m, nn.Linear):
        layer = rnn.Linear(m.in_features, m.out_features, bias=m.bias is not None, dtype=dt)
    elif isinstance(m, nn.Dropout):
        if m.inplace:
            raise ValueError(f"{where}: rnnkit's Dropout has no inplace=True")
        layer = rnn.Dropout(m.p)
    elif type(m).__name__ == "LastStep" and type(m).__module__ == __name__:
        layer = rnn.Last(batch_first=m.batch_first)
    elif isinstance(m, (nn.Tanh, nn.ReLU, nn.Sigmoid)):
        if getattr(m, "inplace", False):
            raise ValueError(f"{where}: rnnkit's ReLU has no inplace=True")
        layer = {nn.Tanh: rnn.Tanh, nn.ReLU: rnn.ReLU, nn.Sigmoid: rnn.Sigmoid}[type(m)]()
    elif isinstance(m, nn.GELU):
        layer = rnn.GELU(approximate=m.approximate)
    elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        if m.dim is None:
            raise ValueError(f"{where}: give {type(m).__name__} an explicit dim (torch's "
                             "implicit choice depends on the input's rank)")
        layer = (rnn.Softmax if isinstance(m, nn.Softmax) else rnn.LogSoftmax)(dim=m.dim)
    else:
        raise TypeError(f"{where}: from_torch cannot convert {type(m).__module__}."
                        f"{type(m).__name__} (supported: LSTM, GRU, RNN, Embedding, Linear, "
                        "Dropout, Tanh, ReLU, Sigmoid, GELU, Softmax, LogSoftmax, LastStep, "
                        "Sequential)")
    if list(m.state_dict()):
        layer.load_state_dict(_numpy_state(m))
    return layer


# ------------------------------------------------------------------ rnnkit -> torch
def to_torch(model: rnn.Module) -> Any:
    """The torch modules equivalent to rnnkit ``model``, with its weights copied.

    ``model``: an rnnkit ``LSTM`` / ``GRU`` / ``RNN``, ``Embedding``, ``Linear``, ``Dropout``,
    ``Last``, an activation, or a ``Sequential`` of these. A recurrent layer on its own
    becomes ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` (torch's call: ``output, h_n``); inside a
    Sequential it becomes :class:`LSTMOutput` / :class:`GRUOutput` / :class:`RNNOutput`
    (output only), and ``Last`` becomes :class:`LastStep` (see the module docstring). The
    modules have the rnnkit layers' dtype and training/eval mode; parameters are fresh torch
    tensors (a copy). rnnkit options torch lacks (peephole, reset_after=False, the ONNX gate
    options, recurrent_dropout, zoneout, the LayerNorm cells) raise ValueError naming them.
    """
    import torch
    from torch import nn
    if not isinstance(model, rnn.Module):
        raise TypeError(f"to_torch needs an rnnkit.nn Module, got {type(model).__name__}")
    out = _to_torch(model, "model", False, torch, nn)
    out.train(model.training)
    return out


def _torch_dtype(torch: Any, layer: rnn.Module) -> Any:
    return {"float32": torch.float32, "float64": torch.float64}[np.dtype(layer.dtype).name]


def _load_into(target: Any, layer: rnn.Module, torch: Any) -> None:
    """Copy the rnnkit layer's arrays into the torch module (strict: every name)."""
    state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in layer.state_dict().items()}
    target.load_state_dict(state, strict=True)


def _to_torch(layer: rnn.Module, where: str, in_sequential: bool, torch: Any, nn: Any) -> Any:
    family = getattr(layer, "_family", None)
    if family is not None and hasattr(layer, "hidden_size"):
        return _recurrent_to_torch(layer, where, in_sequential, torch, nn)
    if isinstance(layer, rnn.Sequential):
        return nn.Sequential(*[_to_torch(child, f"{where}[{i}]", True, torch, nn)
                               for i, child in enumerate(layer)])
    if isinstance(layer, rnn.Embedding):
        out = nn.Embedding(layer.num_embeddings, layer.embedding_dim,
                           padding_idx=layer.padding_idx, dtype=_torch_dtype(torch, layer))
    elif isinstance(layer, rnn.Linear):
        out = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                        dtype=_torch_dtype(torch, layer))
    elif isinstance(layer, rnn.Dropout):
        out = nn.Dropout(layer.p)
    elif isinstance(layer, rnn.Last):
        out = _torch_classes()["LastStep"](batch_first=layer.batch_first)
    elif isinstance(layer, (rnn.Tanh, rnn.ReLU, rnn.Sigmoid)):
        out = {rnn.Tanh: nn.Tanh, rnn.ReLU: nn.ReLU, rnn.Sigmoid: nn.Sigmoid}[type(layer)]()
    elif isinstance(layer, rnn.GELU):
        out = nn.GELU(approximate=layer.approximate)
    elif isinstance(layer, (rnn.Softmax, rnn.LogSoftmax)):
        out = (nn.Softmax if isinstance(layer, rnn.Softmax) else nn.LogSoftmax)(dim=layer.dim)
    else:
        raise TypeError(f"{where}: to_torch cannot convert {type(layer).__name__} (supported: "
                        "LSTM, GRU, RNN, Embedding, Linear, Dropout, Last, Tanh, ReLU, Sigmoid, "
                        "GELU, Softmax, LogSoftmax, Sequential)")
    if list(layer.state_dict()):
        _load_into(out, layer, torch)
    return out


def _recurrent_to_torch(layer: Any, where: str, in_sequential: bool, torch: Any,
                        nn: Any) -> Any:
    name = type(layer).__name__
    if name not in ("LSTM", "GRU", "RNN") or type(layer) not in (rnn.LSTM, rnn.GRU, rnn.RNN):
        raise ValueError(f"{where}: torch has no {name} layer (to_torch converts LSTM, GRU "
                         "and RNN)")
    config = layer.get_config()
    extra = sorted(set(config) - _TORCH_RECURRENT_ARGS)
    if extra:
        raise ValueError(f"{where}: torch.nn.{name} has no equivalent of "
                         + ", ".join(f"{k}={config[k]!r}" for k in extra))
    kw: Dict[str, Any] = dict(num_layers=layer.num_layers, bias=layer.bias,
                              batch_first=layer.batch_first, dropout=layer.dropout,
                              bidirectional=layer.bidirectional,
                              dtype=_torch_dtype(torch, layer))
    if name == "RNN":
        kw["nonlinearity"] = layer.nonlinearity
    if layer.proj_size:
        kw["proj_size"] = layer.proj_size
    classes: Dict[str, Any] = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}
    if in_sequential:
        classes = {k: _torch_classes()[k + "Output"] for k in classes}
    # torch warns about dropout with one layer; rnnkit already warned when it was built.
    with _no_single_layer_dropout_warning():
        out = classes[name](layer.input_size, layer.hidden_size, **kw)
    _load_into(out, layer, torch)
    return out


class _no_single_layer_dropout_warning:
    """Silences torch's warning that dropout needs num_layers > 1 (and nothing else): the
    rnnkit layer being converted already carries (and warned about) that setting."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.filterwarnings("ignore", message=".*non-zero dropout expects num_layers",
                                category=UserWarning)

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)
