"""Module: the base of every layer (parameters, children, state dicts, train/eval)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple

import numpy as np

from .parameter import Parameter, _flag

FLOAT_DTYPES = ("float32", "float64")


def _dtype(dtype: Any) -> np.dtype:
    """The layer dtype: "float32" (default) or "float64"; anything else raises TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _lengths_arg(lengths: Any) -> Any:
    """``lengths`` with an empty Python sequence made an empty int64 array: numpy reads
    ``[]`` as float64, which the integer check of ops rejects, yet ``lengths=[]`` is the
    natural way to write the lengths of a batch of zero sequences."""
    if isinstance(lengths, (list, tuple)) and len(lengths) == 0:
        return np.zeros(0, np.int64)
    return lengths


def _probability(name: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(p).__name__}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return float(p)


# The weight formats of rnnkit.quantize.
QUANTIZED_FORMATS = ("int8", "bfloat16")


class Module:
    """Base class of all layers, modelled on ``torch.nn.Module``.

    Assigning a :class:`Parameter` or a ``Module`` to an attribute registers it, so
    :meth:`named_parameters` yields own parameters in assignment order and then each child's,
    with dotted names (``"0.weight_ih_l0"``) exactly as torch does.

    Subclasses implement ``forward`` and ``backward``. ``backward`` ADDS parameter gradients
    into ``Parameter.grad`` and returns the gradient with respect to the input; it needs a
    forward in training mode first (an ``eval()`` forward keeps nothing for it).
    """

    # Constructor arguments that rebuild this layer, read back from attributes of the same
    # name by get_config() (rnnkit.save stores them; rnnkit.load calls cls(**config)).
    _config_args: Tuple[str, ...] = ()
    # True for containers whose children are their constructor's positional arguments
    # (Sequential): rnnkit.save stores the children, in order, and rnnkit.load passes them.
    _config_children: bool = False

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -------------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError("call Module.__init__() before assigning attributes")
        modules = self.__dict__["_modules"]
        if isinstance(value, Parameter):
            modules.pop(name, None)
            self.__dict__.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            self.__dict__.pop(name, None)
            modules[name] = value
        else:
            if name in params:
                if value is not None:
                    raise TypeError(f"cannot assign {type(value).__name__} to parameter "
                                    f"{name!r} (a Parameter or None is required)")
                del params[name]
            modules.pop(name, None)
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: registered parameters and children.
        d = self.__dict__
        if "_parameters" in d and name in d["_parameters"]:
            return d["_parameters"][name]
        if "_modules" in d and name in d["_modules"]:
            return d["_modules"][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -------------------------------------------------------------- traversal
    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo: Optional[Set[int]] = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, "Module"]]:
        """(dotted name, module) for this module and every descendant, as torch's
        ``named_modules``: first ``(prefix, self)``, then each child's subtree in registration
        order (``("0", child)``, ``("0.sub", grandchild)``, ...).

        A module registered in several places is yielded once, under the first name met
        (``remove_duplicate=False`` yields it at every place). ``memo`` is the set of ``id``s
        already yielded, shared by the recursion.
        """
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            sub = prefix + ("." if prefix else "") + name
            yield from child.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant, depth first, each once (torch's ``modules``)."""
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Parameter]]:
        """(name, Parameter) pairs: own parameters first, then children's (dotted names)."""
        seen = set()
        for name, p in self._named_parameters_all(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters_all(self, prefix: str) -> Iterator[Tuple[str, Parameter]]:
        for name, p in self._parameters.items():
            yield prefix + name, p
        for cname, child in self._modules.items():
            yield from child._named_parameters_all(prefix + cname + ".")

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    # -------------------------------------------------------------- state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """{name: copy of Parameter.data}, in :meth:`named_parameters` order."""
        return OrderedDict((name, p.data.copy()) for name, p in self._named_parameters_all(""))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters, converting to each parameter's dtype.

        Values may be numpy arrays or anything ``np.asarray`` converts (a torch tensor, or its
        ``.numpy()``). Every name and shape is checked before anything is copied, so a failed
        load leaves the module unchanged: missing or unexpected names raise ``KeyError``
        (with ``strict=False`` they are skipped), a wrong shape or a non-numeric value raises
        ``ValueError``/``TypeError`` naming the key.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of name -> array, got "
                            f"{type(state_dict).__name__}")
        own = OrderedDict(self._named_parameters_all(""))
        if strict:
            missing = [k for k in own if k not in state_dict]
            unexpected = [k for k in state_dict if k not in own]
            if missing or unexpected:
                parts = []
                if missing:
                    parts.append("missing key(s): " + ", ".join(repr(k) for k in missing))
                if unexpected:
                    parts.append("unexpected key(s): " + ", ".join(repr(k) for k in unexpected))
                raise KeyError(f"error loading state_dict into {type(self).__name__}: "
                               + "; ".join(parts))
        staged: List[Tuple[Parameter, np.ndarray]] = []
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if hasattr(value, "detach") and hasattr(value, "cpu"):   # a torch tensor
                value = value.detach().cpu().numpy()
            try:
                arr = np.asarray(value)
            except Exception as exc:  # noqa: BLE001 - re-raised with the key's name
                raise TypeError(f"state_dict[{name!r}]: cannot convert "
                                f"{type(value).__name__} to an array ({exc})") from exc
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{name!r}] must be numeric, got dtype {arr.dtype}")
            if arr.shape != p.data.shape:
                raise ValueError(f"state_dict[{name!r}] has shape {tuple(arr.shape)}, expected "
                                 f"{tuple(p.data.shape)}")
            staged.append((p, arr))
        for p, arr in staged:
            # In place, so anything holding p.data (an optimiser, a user) sees the new values.
            np.copyto(p.data, arr, casting="unsafe")
            p.mark_changed()

    def get_config(self) -> Dict[str, Any]:
        """The constructor arguments that rebuild this layer: ``type(self)(**get_config())``
        gives a layer of the same architecture (parameters as a fresh init; load the state
        dict for the values). Plain JSON-able values; dtypes by name."""
        config: Dict[str, Any] = {}
        for name in self._config_args:
            v = getattr(self, name)
            if isinstance(v, Parameter) or (name == "bias" and v is None):
                v = v is not None        # Linear keeps its bias Parameter (or None)
            config[name] = v.name if isinstance(v, np.dtype) else v
        return config

    # -------------------------------------------------------------- modes and grads
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active, forward keeps what backward needs); returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
            m._on_mode_change()
        return self

    def eval(self) -> "Module":
        """Inference mode: no dropout, forward keeps no cache; returns self."""
        return self.train(False)

    def _on_mode_change(self) -> None:
        """Hook for layers that hold caches (drop them when the mode changes)."""

    # rnnkit.quantize: None, or "int8" / "bfloat16" for a layer whose weight matrices run in
    # that format (inference only).
    quantized: Optional[str] = None
    # The names of the parameters that rnnkit.quantize converts (the weight matrices); empty for
    # a layer that cannot be quantized.
    _quantizable: Tuple[str, ...] = ()

    def _check_quantizable(self, kind: str) -> None:
        """Raises (TypeError or ValueError) if this layer has no ``kind`` form."""
        if not self._quantizable:
            raise TypeError(f"{type(self).__name__} has no int8 or bfloat16 form")
        if kind not in QUANTIZED_FORMATS:
            raise ValueError(f"quantized must be 'int8' or 'bfloat16', got {kind!r}")
        if self.dtype != np.float32:
            raise TypeError(f"{kind} weights need a float32 layer; {type(self).__name__} is "
                            f"{np.dtype(self.dtype).name} (convert it with .float() first)")

    def _set_quantized(self, kind: str) -> None:
        """Mark this layer as running on int8 or bfloat16 weights (rnnkit.quantize and
        rnnkit.load call it; the weights' values are the caller's business)."""
        self._check_quantizable(kind)
        object.__setattr__(self, "quantized", kind)
        self._on_mode_change()

    def _inference_only(self) -> None:
        """Raises in training mode for a quantized layer."""
        if self.training:
            raise RuntimeError(f"{type(self).__name__} has {self.quantized} weights "
                               "(rnnkit.quantize): it "
                               "runs inference only; call .eval() (quantize a trained float "
                               "model instead of training this one)")

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set ``requires_grad`` of every parameter (this module's and its descendants') and
        return self, as torch's ``Module.requires_grad_``: ``layer.requires_grad_(False)``
        freezes a layer (backward leaves its gradients alone, optimisers skip it) while
        gradients still flow through it to the layers before. :meth:`parameters` keeps
        yielding frozen parameters, as torch's does."""
        flag = _flag("requires_grad", requires_grad)
        for p in self.parameters():
            p.requires_grad = flag
        return self

    # -------------------------------------------------------------- dtype
    def to(self, dtype: Any) -> "Module":
        """Convert every parameter (and its gradient) of this module and its descendants to
        ``dtype`` ("float32" or "float64", or the numpy dtype) and return self, as torch's
        ``Module.to(dtype)``.

        In place: the Parameter objects stay the same (an optimiser built over them keeps
        stepping them; buffers it already holds keep their old dtype, so build it after the
        conversion or reload its state), each gets new ``data`` and ``grad`` arrays. Layers
        then convert their inputs to the new dtype; what a layer kept from an earlier forward
        (a training cache, packed weights, a carried state) is dropped or converted, so the
        next backward needs a new forward.
        """
        dt = _dtype(dtype)
        for m in self.modules():
            changed = False
            for p in m._parameters.values():
                if p.data.dtype == dt:      # already converted (shared) or already dt
                    continue
                p.data = p.data.astype(dt)
                if p.grad is not None:
                    p.grad = p.grad.astype(dt)
                p.mark_changed()
                changed = True
            own = m.__dict__.get("dtype")
            if isinstance(own, np.dtype) and own != dt:
                object.__setattr__(m, "dtype", dt)
                changed = True
            if changed:     # as torch, converting to the dtype a layer has changes nothing
                m._on_dtype_change()
        return self

    def double(self) -> "Module":
        """``to("float64")``: every parameter as float64; returns self."""
        return self.to(np.float64)

    def float(self) -> "Module":
        """``to("float32")``: every parameter as float32; returns self."""
        return self.to(np.float32)

    def _on_dtype_change(self) -> None:
        """Hook run by :meth:`to` after the parameters are converted: layers drop whatever
        they cached in the old dtype (by default what a mode change drops)."""
        self._on_mode_change()

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Set every parameter's gradient to zero in place (or to None with
        ``set_to_none=True``), as :meth:`rnnkit.optim.Optimizer.zero_grad` does.

        A gradient that is already None (after ``optimizer.zero_grad(set_to_none=True)``)
        stays None: the next backward starts it again from zeros, so None and zeros give the
        same gradients. Unlike torch (default ``set_to_none=True``) the default keeps the
        arrays, so that whoever holds a reference to ``.grad`` keeps seeing it.
        """
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.zero_grad()

    # -------------------------------------------------------------- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        if len(lines) == 1:
            return lines[0] + ")"
        return "\n".join(lines) + "\n)"


def _no_cache_error(layer: Module) -> RuntimeError:
    return RuntimeError(
        f"{type(layer).__name__}.backward called without a training-mode forward: call "
        f"forward with the layer in train() mode first (an eval() forward keeps no cache, "
        f"and each forward's cache is used by one backward only)")


__all__ = ["Module", "Parameter"]
