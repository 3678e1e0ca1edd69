"""Saving and loading: models, optimisers and trainers as one ``.npz`` file, without pickle.

The file is a numpy ``.npz`` archive (a zip of ``.npy`` members, stored uncompressed): every
array (parameters, optimiser buffers) is a member, and one member, ``__meta__``, holds JSON
describing the rest: the model's architecture (layer classes and constructor arguments),
random-generator states, optimiser hyperparameters, trainer progress and the user's
``metadata``. Loading builds objects only from rnnkit's own public classes (those in
``rnnkit.nn.__all__``, ``rnnkit.losses.__all__`` and the optimisers) and from module classes
the user registered with :func:`register_module`, so opening a file never runs code from it.

Loading trusts nothing in the file. The archive is read with :mod:`zipfile` and
:mod:`numpy.lib.format` rather than ``np.load``, in this order, so that a hostile file costs
at most about its own size in memory and time:

1. the path must be a regular file (a directory, FIFO or device is refused before reading);
2. the zip directory: ``.npy`` members only, each name once, stored (not compressed: rnnkit
   never compresses, so a zip bomb is refused unread), each member inside the file and all
   of them together no larger than the file;
3. ``__meta__``: a uint8 array of at most :data:`MAX_META_BYTES`, strict JSON (no NaN, no
   duplicate keys, integers of at most 64 digits, nesting at most 64 deep);
4. the members the metadata needs are computed from it (arrays it references and, for a
   model, the parameters its architecture has, with their shapes and dtypes) and any other
   member is refused by name, before it is read;
5. each member's ``.npy`` header (plain numeric dtypes only, never object arrays) must
   declare exactly the bytes the member holds, and the model's parameters must have the
   shapes their layers need, before any layer is built;
6. data is read in bounded chunks, stopping at the declared size (the zip CRC is checked).

Any file that is not a complete rnnkit file raises ``ValueError`` naming the path (a path that
does not exist stays ``FileNotFoundError``).

Writes are atomic: the archive is written to a temporary file ``.<name>.rnnkit-XXXX.tmp``
beside the target (beside the file a symlink points to: the symlink stays), flushed to disk
and renamed over the target, so a crash mid-save leaves the previous file intact. The writer
holds an ``flock`` on its temporary file; the next save of the same target deletes
temporaries of that target that nobody holds and that are older than
:data:`STALE_TEMPORARY_SECONDS` (left by a killed save). A directory, FIFO or device at the
target is refused, never replaced. An existing file's permission bits are kept.

What a file holds is a *kind*: ``"model"`` and ``"optimizer"`` are registered here,
``"trainer"`` by :mod:`rnnkit.train.checkpoint` (io knows no Trainer; the import arrows point
from train down to io). :func:`register_kind` adds one: ``save(obj, arrays)`` returns the
metadata entries to store (putting arrays into ``arrays`` under its own prefixes; see
:func:`to_json`: a loaded file may hold only arrays its metadata references),
``load(meta, arrays, into)`` rebuilds the object (or loads into ``into``).
The pieces the built-in kinds are made of (:func:`model_entry`, :func:`load_model_entry`,
:func:`optimizer_entry`, :func:`load_optimizer_entry`, :func:`loss_entry`,
:func:`build_loss`) are for such functions.

A layer is described by its class name and ``get_config()`` (its ``_config_args``); a layer
whose ``_config_children`` is set (Sequential) also by its children, in order, which are its
constructor's positional arguments. Losses likewise by class name and ``get_config()``.

Your own Module subclass saves too: its ``state_dict()`` and its ``get_config()`` (set
``_config_args`` or override ``get_config``; plain JSON values), under the name
``"<module>.<qualname>"``. Load it with ``rnnkit.load(path, into=MyModel(...))``, which copies
the parameters into an instance you built, or register the class once with
``@rnnkit.io.register_module`` so that ``rnnkit.load(path)`` builds ``MyModel(**config)``
itself.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import re
import stat
import tempfile
import time
import warnings
import zipfile
from io import BytesIO
from typing import (Any, BinaryIO, Callable, Dict, Iterator, List, Mapping, NamedTuple,
                    Optional, Set, Tuple)

import numpy as np

from . import losses as _losses
from . import nn as _nn
from . import optim as _optim
from ._cellspec import cell_for as _cell_for
from ._cellspec import default_cell as _default_cell
from ._runtime import __version__
from .nn.cells import _CellBase
from .nn.module import QUANTIZED_FORMATS
from .nn.recurrent import _RNNBase

try:  # POSIX: a writer's lock on its temporary file marks it as in use
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: stale temporaries are judged by age alone
    _fcntl = None  # type: ignore[assignment]

__all__ = ["save", "load", "load_metadata", "register_kind", "register_module", "FORMAT",
           "FORMAT_VERSION", "MAX_META_BYTES", "STALE_TEMPORARY_SECONDS", "to_json",
           "from_json", "model_entry", "load_model_entry", "optimizer_entry",
           "load_optimizer_entry", "loss_entry", "build_loss"]

FORMAT = "rnnkit"
FORMAT_VERSION = 1

# The JSON metadata is small (architecture, hyperparameters, generator states, the user's
# metadata); 4 MiB leaves room for a large vocabulary while keeping json.loads of a hostile
# blob (millions of tiny containers) near 200 MB.
MAX_META_BYTES = 4 << 20
# A save killed with SIGKILL leaves its temporary file. One that nobody holds locked and that
# has not been written to for this long is deleted by the next save of the same target; the
# age guards the instant between a writer creating its file and locking it.
STALE_TEMPORARY_SECONDS = 10.0
# Without flock (Windows) only age tells a dead writer's file from a slow live one.
_STALE_UNLOCKED_SECONDS = 3600.0

_MAX_JSON_DEPTH = 64
_MAX_INT_DIGITS = 64          # generator states hold 128-bit integers (39 digits)
_MAX_MEMBERS = 100_000
_MAX_MODULES = 10_000         # layers in one architecture description
_NPY_HEADER_MAX = 10_000      # numpy's own default max_header_size
_READ_CHUNK = 1 << 20
_MAX_STEP = 2 ** 62           # optimiser step counters go to int64 in the kernels
# dtypes an array in a file may have: plain numbers, never objects, strings or records.
_FILE_DTYPES = tuple(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float16, np.float32, np.float64))
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _public_classes(module: Any, base: type) -> Dict[str, type]:
    """{name: class} of the module's public (``__all__``) subclasses of ``base``: the only
    classes a file may name."""
    out = {}
    for name in module.__all__:
        cls = getattr(module, name)
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base:
            out[name] = cls
    return out


_LAYERS = _public_classes(_nn, _nn.Module)
_LOSSES = _public_classes(_losses, _losses._Loss)
_OPTIMIZERS = _public_classes(_optim, _optim.Optimizer)
# The user's Module subclasses that rnnkit.load may build: {name in files: class}.
_USER_MODULES: Dict[str, type] = {}


class _WrongInto(TypeError):
    """``load(path, into=obj)`` with an ``obj`` of another kind than the file's: the caller's
    mistake, raised as is (not reported as a corrupted file)."""


class _BadContent(ValueError):
    """The file is not a complete, consistent rnnkit file: reported by :func:`load` as a
    ValueError that starts with the file's name."""


# Errors that malformed content provokes in the code that interprets it (ours, numpy's,
# zipfile's, the constructors'): all reported as a corrupted file. MemoryError is not among
# them: the bounds above are meant to make it impossible, and hiding one would mislead.
_CONTENT_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError,
                   OverflowError, RecursionError, NotImplementedError, RuntimeError,
                   EOFError, OSError, SyntaxError, UnicodeError, zipfile.BadZipFile)


# ---------------------------------------------------------------- plain data <-> JSON + arrays
def to_json(value: Any, arrays: Dict[str, np.ndarray], prefix: str) -> Any:
    """Replace every ndarray in a nested structure by {"__array__": key}, collecting arrays
    into ``arrays`` under keys that start with ``prefix``."""
    if isinstance(value, np.ndarray):
        arrays[prefix] = value
        return {"__array__": prefix}
    if isinstance(value, dict):
        return {str(k): to_json(v, arrays, f"{prefix}/{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, arrays, f"{prefix}/{i}") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.dtype):
        return value.name
    return value


def from_json(value: Any, arrays: Any) -> Any:
    """The inverse of :func:`to_json`, reading arrays from the loaded file (copies)."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return np.array(arrays[value["__array__"]])
        return {k: from_json(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v, arrays) for v in value]
    return value


def _plain_json(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` as plain JSON data (dicts with str keys, lists, str, finite numbers, bools,
    None; numpy scalars become Python ones), else TypeError/ValueError naming ``where``
    (e.g. ``metadata['vocab'][3]``)."""
    if depth > _MAX_JSON_DEPTH // 2:  # the rest of the file's metadata nests around it
        raise ValueError(f"{where} nests deeper than {_MAX_JSON_DEPTH // 2} levels")
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if len(str(abs(value))) > _MAX_INT_DIGITS:
            raise ValueError(f"{where} is an integer of more than {_MAX_INT_DIGITS} digits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: only finite numbers can be stored")
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has the key {k!r} of type {type(k).__name__}: "
                                "JSON keys must be str")
            out[k] = _plain_json(v, f"{where}[{k!r}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain_json(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise TypeError(f"{where} is a {type(value).__name__}: only dict, list, str, int, finite "
                    "float, bool and None can be stored as JSON")


# ---------------------------------------------------------------- architecture
def register_module(cls: Optional[type] = None, *, name: Optional[str] = None) -> Any:
    """Let :func:`load` build instances of your own Module subclass from a file.

    :func:`save` stores such a module as its class name, its ``get_config()`` (the base
    class reads the attributes named in ``_config_args``; override it for more) and its
    ``state_dict()``. Loading without ``into`` then calls ``cls(**config)`` and loads the
    parameters into the result (every name and shape checked), so ``cls``'s constructor must
    accept what ``get_config()`` returns and should validate it: it receives a file's content.

    Use as ``register_module(MyModel)``, ``@register_module`` or
    ``@register_module(name="MyModel")``. ``name`` (default ``"<module>.<qualname>"``, e.g.
    ``"__main__.MyModel"`` in a script) is what files record; give one that stays the same
    when the class moves. The names of rnnkit's own layers are reserved. Registering a name
    again replaces it. Returns ``cls``.
    """
    def register(klass: type) -> type:
        if not (isinstance(klass, type) and issubclass(klass, _nn.Module)):
            raise TypeError(f"register_module takes a subclass of rnnkit.nn.Module, got "
                            f"{klass!r}")
        key = name if name is not None else _default_name(klass)
        if not isinstance(key, str) or not key:
            raise TypeError(f"name must be a non-empty str, got {key!r}")
        if key in _LAYERS:
            raise ValueError(f"name {key!r} is an rnnkit layer's; register {klass.__name__} "
                             "under another name")
        for other, registered in list(_USER_MODULES.items()):
            if registered is klass:   # one name per class: the one files record
                del _USER_MODULES[other]
        _USER_MODULES[key] = klass
        return klass

    return register if cls is None else register(cls)


def _default_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _user_name(cls: type) -> str:
    """The name a file records for a user's class: its registered name, else the default."""
    for key, registered in _USER_MODULES.items():
        if registered is cls:
            return key
    return _default_name(cls)


def _describe(module: Any) -> Dict[str, Any]:
    cls = type(module)
    if _LAYERS.get(cls.__name__) is cls:
        desc: Dict[str, Any] = {"class": cls.__name__, "config": module.get_config()}
        if cls._config_children:
            desc["layers"] = [_describe(m) for m in module.children()]
        if module.quantized:   # rnnkit.quantize: its weights' values run as int8 or bfloat16
            desc["quantized"] = module.quantized
        return desc
    # A user's class (or a subclass of an rnnkit layer): its own name, never its parent's,
    # and its config; its children are its own business (its constructor builds them).
    name = _user_name(cls)
    try:
        config = _plain_json(module.get_config(), f"{cls.__name__}.get_config()")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot save a {cls.__name__}: {exc}") from None
    if not isinstance(config, dict):
        raise TypeError(f"cannot save a {cls.__name__}: get_config() must return a dict, got "
                        f"{type(config).__name__}")
    return {"class": name, "config": config}


def _known_class(table: Dict[str, type], entry: Any, what: str) -> Tuple[type, Dict]:
    """The class `entry` names, from `table` only, and its checked constructor arguments."""
    if not isinstance(entry, dict):
        raise _BadContent(f"a {what} entry must be a JSON object, got {type(entry).__name__}")
    name = entry.get("class")
    cls = table.get(name) if isinstance(name, str) else None
    if cls is None:
        raise _BadContent(f"file names an unknown {what} {name!r}")
    config = entry.get("config")
    if not isinstance(config, dict) or not set(config) <= set(cls._config_args):
        raise _BadContent(f"the file's {name} arguments {config!r} are not among its "
                          f"constructor arguments {cls._config_args}")
    return cls, config


def _not_buildable(name: Any) -> _BadContent:
    return _BadContent(
        f"file names an unknown layer class {name!r}: not an rnnkit layer and not registered "
        f"with rnnkit.io.register_module. If it is your own Module subclass, load the file "
        f"into an instance you build, rnnkit.load(path, into=MyModel(...)), or register the "
        f"class (rnnkit.io.register_module(MyModel)) so that rnnkit.load can build it")


def _build(desc: Dict[str, Any]) -> Any:
    """The module a checked description (see :func:`_check_architecture`) describes."""
    name = desc["class"]
    if name in _LAYERS:
        cls, config = _known_class(_LAYERS, desc, "layer class")
        children = [_build(d) for d in desc["layers"]] if cls._config_children else []
    elif name in _USER_MODULES:
        cls, config, children = _USER_MODULES[name], desc["config"], []
    else:
        raise _not_buildable(name)
    with warnings.catch_warnings():  # e.g. dropout with one layer: warned when first built
        warnings.simplefilter("ignore")
        module = cls(*children, **config)
    if desc.get("quantized"):
        try:
            module._set_quantized(desc["quantized"])
        except (TypeError, ValueError) as exc:
            raise _BadContent(f"a {name} cannot be quantized as the file says: {exc}") from None
    return module


# Constructor arguments whose type decides how much a layer allocates, checked before any
# layer is built (the constructors check the rest, and their errors become ValueErrors).
_SIZE_ARGS = frozenset({"input_size", "hidden_size", "num_layers", "in_features",
                        "out_features", "num_embeddings", "embedding_dim", "query_size",
                        "source_vocab", "target_vocab"})
_BOOL_ARGS = frozenset({"bias", "batch_first", "bidirectional", "reset_after", "peephole",
                        "input_forget"})


def _defaults(cls: type) -> Dict[str, Any]:
    return {n: p.default for n, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


class _ParamSpec(NamedTuple):
    name: str                 # state-dict name, e.g. "1.weight_ih_l0"
    shape: Tuple[int, ...]
    dtype: np.dtype


def _layer_params(cls: type, config: Dict[str, Any], prefix: str
                  ) -> Optional[Iterator[_ParamSpec]]:
    """The parameters ``cls(**config)`` creates, lazily (num_layers may be absurd; the caller
    stops at the first one the file lacks); None for a class with no rule here (it is
    checked after it is built)."""
    args = dict(_defaults(cls), **config)
    for key in _SIZE_ARGS & set(args):
        v = args[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise _BadContent(f"{cls.__name__} argument {key}={v!r} is not a positive int")
    for key in _BOOL_ARGS & set(args):
        if not isinstance(args[key], bool):
            raise _BadContent(f"{cls.__name__} argument {key}={args[key]!r} is not a bool")
    proj = args.get("proj_size", 0)
    if isinstance(proj, bool) or not isinstance(proj, int) or not \
            0 <= proj < args.get("hidden_size", 1):
        raise _BadContent(f"{cls.__name__} argument proj_size={proj!r} is not an int in "
                          "[0, hidden_size)")
    if "dtype" in args and args["dtype"] not in ("float32", "float64"):
        raise _BadContent(f"{cls.__name__} argument dtype={args['dtype']!r} is not "
                          "'float32' or 'float64'")
    dtype = np.dtype(args.get("dtype", "float32"))

    def gen_recurrent(single: bool) -> Iterator[_ParamSpec]:
        # The cell the layer's options select (the RNN's nonlinearity, GRU's reset_after,
        # LSTM's peephole), options the file leaves out at their defaults.
        options = dict(_default_cell(cls._family).options)
        options.update({k: args[k] for k in options if k in args})
        nonlinearity = options.pop("nonlinearity", None)
        try:
            spec = _cell_for(cls._family, nonlinearity, **options)
        except (TypeError, ValueError) as exc:
            raise _BadContent(f"{cls.__name__}: {exc}") from None
        gates = spec.gates
        h = args["hidden_size"]
        out = proj or h  # the width of h: a proj_size LSTM's projection, else H
        gh = gates * h
        layers = 1 if single else args["num_layers"]
        directions = 2 if (not single and args["bidirectional"]) else 1
        for k in range(layers):
            in_size = args["input_size"] if k == 0 else directions * out
            for d in range(directions):
                sfx = "" if single else f"_l{k}" + ("_reverse" if d else "")
                yield _ParamSpec(f"{prefix}weight_ih{sfx}", (gh, in_size), dtype)
                yield _ParamSpec(f"{prefix}weight_hh{sfx}", (gh, out), dtype)
                if args["bias"]:
                    yield _ParamSpec(f"{prefix}bias_ih{sfx}", (gh,), dtype)
                    yield _ParamSpec(f"{prefix}bias_hh{sfx}", (gh,), dtype)
                for name, width in spec.extra:  # the cell's own parameters (peephole)
                    yield _ParamSpec(f"{prefix}{name}{sfx}", (width * h,), dtype)
                if proj:
                    yield _ParamSpec(f"{prefix}weight_hr{sfx}", (proj, h), dtype)

    def gen_linear() -> Iterator[_ParamSpec]:
        yield _ParamSpec(f"{prefix}weight", (args["out_features"], args["in_features"]), dtype)
        if args["bias"]:
            yield _ParamSpec(f"{prefix}bias", (args["out_features"],), dtype)

    def gen_embedding() -> Iterator[_ParamSpec]:
        yield _ParamSpec(f"{prefix}weight", (args["num_embeddings"], args["embedding_dim"]),
                         dtype)

    def gen_attention() -> Iterator[_ParamSpec]:
        # key_size and attention_size default to query_size (None in the signature).
        sizes = {}
        for key in ("key_size", "attention_size"):
            v = args[key]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise _BadContent(f"{cls.__name__} argument {key}={v!r} is not a positive int "
                                  "or None")
            sizes[key] = args["query_size"] if v is None else v
        hq, hk, a = args["query_size"], sizes["key_size"], sizes["attention_size"]
        if args["score"] == "general":
            yield _ParamSpec(f"{prefix}weight", (hq, hk), dtype)
        elif args["score"] == "additive":
            yield _ParamSpec(f"{prefix}weight_query", (a, hq), dtype)
            yield _ParamSpec(f"{prefix}weight_key", (a, hk), dtype)
            yield _ParamSpec(f"{prefix}bias", (a,), dtype)
            yield _ParamSpec(f"{prefix}v", (a,), dtype)
        elif args["score"] != "dot":
            raise _BadContent(f"{cls.__name__} argument score={args['score']!r} is not 'dot', "
                              "'general' or 'additive'")

    def gen_seq2seq() -> Iterator[_ParamSpec]:
        # The sub-layers nn.Seq2Seq builds, through their own rules.
        h, e, layers = args["hidden_size"], args["embedding_dim"], args["num_layers"]
        dt = {"dtype": args["dtype"]}
        parts = [
            (_nn.Embedding, {"num_embeddings": args["source_vocab"], "embedding_dim": e},
             "source_embedding."),
            (_nn.LSTM, {"input_size": e, "hidden_size": max(h // 2, 1), "num_layers": layers,
                        "bidirectional": True}, "encoder."),
            (_nn.Embedding, {"num_embeddings": args["target_vocab"], "embedding_dim": e},
             "target_embedding."),
            (_nn.LSTM, {"input_size": e, "hidden_size": h, "num_layers": layers}, "decoder."),
            (_nn.Attention, {"query_size": h, "key_size": h, "score": args["score"]},
             "attention."),
            (_nn.Linear, {"in_features": 2 * h, "out_features": h}, "combine."),
            (_nn.Linear, {"in_features": h, "out_features": args["target_vocab"]}, "output."),
        ]
        for sub, config, name in parts:
            yield from _layer_params(sub, dict(config, **dt), prefix + name)

    missing = [p for p in inspect.signature(cls).parameters.values()
               if p.default is inspect.Parameter.empty and p.kind in
               (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in args]
    if missing:
        raise _BadContent(f"the file's {cls.__name__} lacks the argument(s) "
                          f"{', '.join(p.name for p in missing)}")
    if issubclass(cls, _RNNBase):
        return gen_recurrent(single=False)
    if issubclass(cls, _CellBase):
        return gen_recurrent(single=True)
    if cls is _nn.Linear:
        return gen_linear()
    if cls is _nn.Embedding:
        return gen_embedding()
    if cls is _nn.Attention:
        return gen_attention()
    if cls is _nn.Seq2Seq:
        return gen_seq2seq()
    if cls in (_nn.Dropout, _nn.Last, _nn.Sequential):
        return iter(())
    return None


class _Expected(NamedTuple):
    """What a model description needs from the file."""
    params: Dict[str, _ParamSpec]     # exact parameters of rnnkit layers
    open_prefixes: List[str]          # where parameters are known only once built


def _check_architecture(desc: Any, present: Set[str]) -> _Expected:
    """Check a model description without building anything: known structure, sizes and
    counts, and every parameter of an rnnkit layer present in ``present`` (the file's
    "model/..." member keys, without the prefix) -- so a description cannot make a layer
    allocate more than the file holds."""
    expected = _Expected({}, [])
    count = 0
    stack: List[Tuple[Any, str]] = [(desc, "")]
    while stack:
        d, prefix = stack.pop()
        count += 1
        if count > _MAX_MODULES:
            raise _BadContent(f"the architecture has more than {_MAX_MODULES} layers")
        where = f"layer {prefix[:-1]!r}" if prefix else "the model"
        if not isinstance(d, dict) or not isinstance(d.get("class"), str) \
                or not isinstance(d.get("config"), dict):
            raise _BadContent(f"{where}: a layer is described by {{'class': str, 'config': "
                              f"{{...}}}}, got {str(d)[:200]}")
        name = d["class"]
        if name not in _LAYERS:    # the user's class (buildable, or loaded with into=)
            if set(d) != {"class", "config"}:
                raise _BadContent(f"{where}: unexpected entries {sorted(set(d))}")
            expected.open_prefixes.append(prefix)
            continue
        cls, config = _known_class(_LAYERS, d, "layer class")
        allowed = {"class", "config", "layers"} if cls._config_children else {"class", "config"}
        allowed |= {"quantized"}
        if "quantized" in d and d["quantized"] not in QUANTIZED_FORMATS:
            raise _BadContent(f"{where}: quantized must be one of {QUANTIZED_FORMATS}, got "
                              f"{d['quantized']!r}")
        if not set(d) <= allowed or (cls._config_children and "layers" not in d):
            raise _BadContent(f"{where}: a {name} has the entries {sorted(allowed)}, got "
                              f"{sorted(set(d))}")
        params = _layer_params(cls, config, prefix)
        if params is None:
            expected.open_prefixes.append(prefix)
        else:
            for spec in params:
                if spec.name not in present:
                    raise _BadContent(f"{where} ({name} {config}) needs the parameter "
                                      f"{spec.name!r} of shape {spec.shape}, which the file "
                                      "lacks")
                if spec.name in expected.params:
                    raise _BadContent(f"the parameter {spec.name!r} is described twice")
                expected.params[spec.name] = spec
        if cls._config_children:
            layers = d["layers"]
            if not isinstance(layers, list):
                raise _BadContent(f"{where}: 'layers' must be a list, got "
                                  f"{type(layers).__name__}")
            for i in reversed(range(len(layers))):
                stack.append((layers[i], f"{prefix}{i}."))
    return expected


def _rng_states(model: Any) -> Dict[str, Any]:
    """Bit-generator states of layers that draw random numbers (dropout masks)."""
    out = {}
    for path, m in _named_modules(model):
        rng = m.__dict__.get("_rng")
        if isinstance(rng, np.random.Generator):
            out[path] = rng.bit_generator.state
    return out


def _named_modules(model: Any, prefix: str = "") -> List[Tuple[str, Any]]:
    out = [(prefix, model)]
    for name, child in model.named_children():
        out += _named_modules(child, f"{prefix}.{name}" if prefix else name)
    return out


def _checked_rngs(model: Any, states: Any) -> List[Tuple[np.random.Generator, Any]]:
    """(generator, state) pairs to restore, each state tried on a scratch generator of the
    same kind first, so that a bad state fails before the model changes."""
    if not isinstance(states, dict):
        raise _BadContent(f"the model's 'rng' entry must be a JSON object, got "
                          f"{type(states).__name__}")
    modules = dict(_named_modules(model))
    out = []
    for path, state in states.items():
        rng = modules[path].__dict__.get("_rng") if path in modules else None
        if not isinstance(rng, np.random.Generator):
            continue
        if not isinstance(state, dict):
            raise _BadContent(f"the generator state of {path!r} must be a JSON object")
        try:
            type(rng.bit_generator)().state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise _BadContent(f"the generator state of {path!r} is invalid ({exc})") from None
        out.append((rng, state))
    return out


# ---------------------------------------------------------------- pieces of a kind
def model_entry(model: Any, arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """A model's metadata (architecture, generator states); its parameters go to
    ``arrays["model/<name>"]``."""
    desc = _describe(model)
    for name, value in model.state_dict().items():
        arrays["model/" + name] = value
    return {"architecture": desc, "rng": _rng_states(model)}


def copy_model(model: Any) -> Any:
    """A fresh model of ``model``'s architecture with a copy of its parameters, built as
    :func:`load` builds one (rnnkit layers, and user classes registered with
    :func:`register_module`; TypeError for others). Generator states are not copied."""
    try:
        clone = _build(_describe(model))
    except _BadContent as exc:
        raise TypeError(str(exc)) from None
    clone.load_state_dict(model.state_dict())
    return clone


def load_model_entry(entry: Dict[str, Any], arrays: Any, into: Any = None) -> Any:
    """The model :func:`model_entry` described: rebuilt, or its state loaded ``into``.

    :func:`load` has checked the description against the file's arrays; a user's class is
    built only when registered (:func:`register_module`). Nothing of ``into`` changes unless
    everything loads.
    """
    if not isinstance(entry, dict) or "architecture" not in entry:
        raise _BadContent("the model entry has no architecture")
    model = into if into is not None else _build(entry["architecture"])
    prefix = "model/"
    rngs = _checked_rngs(model, entry.get("rng", {}))
    state = {k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)}
    try:
        model.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as exc:
        if into is None:
            raise
        # The caller's model, not the file, may be what is wrong: say which was compared.
        raise _BadContent(f"the file's parameters do not fit the {type(into).__name__} given "
                          f"as into ({str(exc)[:500]})") from None
    for rng, state in rngs:
        rng.bit_generator.state = state
    if into is None and any(m.quantized for m in model.modules()):
        model.eval()   # a quantized model (rnnkit.quantize) runs inference only
    return model


def optimizer_entry(opt: Any, arrays: Dict[str, np.ndarray],
                    model: Any = None) -> Dict[str, Any]:
    """An optimiser's metadata, its buffers into ``arrays["optimizer/..."]``. With ``model``
    the parameters of each group are named, so that the groups can be rebuilt over a new
    model."""
    cls = type(opt)
    if _OPTIMIZERS.get(cls.__name__) is not cls:
        raise TypeError(f"cannot save a {cls.__name__}: rnnkit.save knows "
                        f"{', '.join(_OPTIMIZERS)}")
    meta = {"class": cls.__name__, "state": to_json(opt.state_dict(), arrays, "optimizer")}
    if model is not None:  # which parameter each group holds, by name, to rebuild the groups
        names = {id(p): n for n, p in model.named_parameters()}
        meta["group_params"] = [[names.get(id(p)) for p in g["params"]]
                                for g in opt.param_groups]
    return meta


def _check_optimizer_state(state: Any, groups: List[List[Any]]) -> None:
    """The file's optimiser state against the parameters it will step (``groups``: each
    group's parameters): structure, indices, every buffer an array of its parameter's shape
    and a float dtype, ``step`` a non-negative int. Hyperparameters are left to the
    optimiser's load_state_dict, which checks them before changing anything."""
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise _BadContent("the optimiser state must be an object with exactly 'state' and "
                          "'param_groups'")
    saved_groups, saved_state = state["param_groups"], state["state"]
    if not isinstance(saved_groups, list) or len(saved_groups) != len(groups):
        raise _BadContent(f"the optimiser state has "
                          f"{len(saved_groups) if isinstance(saved_groups, list) else 'no'} "
                          f"parameter groups, the optimiser {len(groups)}")
    by_index: Dict[int, Any] = {}
    for gi, (saved, params) in enumerate(zip(saved_groups, groups)):
        indices = saved.get("params") if isinstance(saved, dict) else None
        if not isinstance(indices, list) or len(indices) != len(params):
            raise _BadContent(f"param_groups[{gi}] must list {len(params)} parameter "
                              f"indices, got {str(indices)[:100]}")
        for index, p in zip(indices, params):
            if isinstance(index, bool) or not isinstance(index, int) or index < 0 \
                    or index in by_index:
                raise _BadContent(f"param_groups[{gi}] has the bad or repeated parameter "
                                  f"index {index!r}")
            by_index[index] = p
    if not isinstance(saved_state, dict):
        raise _BadContent("the optimiser's 'state' must be an object")
    for key, entry in saved_state.items():
        p = by_index.get(int(key)) if key.isdigit() and len(key) < 20 else None
        if p is None:
            raise _BadContent(f"optimiser state for parameter {key!r}, which no group lists")
        if not isinstance(entry, dict):
            raise _BadContent(f"optimiser state of parameter {key}: an object expected, got "
                              f"{type(entry).__name__}")
        shape = np.shape(p.data)
        for name, value in entry.items():
            where = f"optimiser state {name!r} of parameter {key}"
            if name == "step":
                if isinstance(value, bool) or not isinstance(value, int) \
                        or not 0 <= value <= _MAX_STEP:
                    raise _BadContent(f"{where} must be an int in [0, 2**62], got "
                                      f"{repr(value)[:50]}")
            elif not isinstance(value, np.ndarray):
                raise _BadContent(f"{where} must be an array of shape {shape}, got "
                                  f"{type(value).__name__} {repr(value)[:50]}")
            elif value.shape != shape or value.dtype not in _FLOAT_DTYPES:
                raise _BadContent(f"{where} has shape {value.shape} and dtype {value.dtype}, "
                                  f"expected the parameter's shape {shape} and float32 or "
                                  "float64")


def load_optimizer_entry(entry: Dict[str, Any], arrays: Any, model: Any,
                         into: Any = None) -> Any:
    """The optimiser :func:`optimizer_entry` described: its state loaded ``into``, or rebuilt
    over ``model``'s parameters (which needs the group names). The state is checked against
    the parameters before the optimiser is touched."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
        raise _BadContent("the optimiser entry must be an object naming its class")
    cls = _OPTIMIZERS.get(entry["class"])
    if cls is None:
        raise _BadContent(f"file names an unknown optimiser {entry['class']!r}")
    state = from_json(entry.get("state"), arrays)
    opt = into
    if opt is None:
        if model is None:
            raise _BadContent("an optimiser file needs the parameters it steps: use "
                             "rnnkit.load(path, into=optimizer) with an optimiser built over "
                             "the model's parameters")
        by_name = dict(model.named_parameters())
        group_names = entry.get("group_params")
        if not isinstance(group_names, list) or not all(
                isinstance(g, list) and all(isinstance(n, str) for n in g) for g in group_names):
            raise _BadContent("the optimiser's 'group_params' must be lists of parameter names")
        flat = [n for g in group_names for n in g]
        missing = [n for n in flat if n not in by_name]
        if missing:
            raise _BadContent(f"the optimiser steps parameters the model lacks: {missing[:10]}")
        if len(set(flat)) != len(flat):
            raise _BadContent("the optimiser's groups name a parameter more than once")
        groups = [[by_name[n] for n in names] for names in group_names]
        _check_optimizer_state(state, groups)
        opt = cls([{"params": g} for g in groups])
    else:
        if type(into) is not cls:
            raise _WrongInto(f"an {cls.__name__} state loads into an {cls.__name__}, got "
                             f"{type(into).__name__}")
        _check_optimizer_state(state, [list(g["params"]) for g in into.param_groups])
    opt.load_state_dict(state)
    return opt


def loss_entry(loss: Any) -> Dict[str, Any]:
    """A loss's class name and ``get_config()``."""
    cls = type(loss)
    if _LOSSES.get(cls.__name__) is not cls:
        raise TypeError(f"cannot save a trainer with a {cls.__name__} loss: rnnkit.save knows "
                        f"{', '.join(_LOSSES)}")
    return {"class": cls.__name__, "config": loss.get_config()}


def build_loss(entry: Dict[str, Any]) -> Any:
    """The loss :func:`loss_entry` described."""
    cls, config = _known_class(_LOSSES, entry, "loss")
    return cls(**config)


# ---------------------------------------------------------------- kinds
SaveFn = Callable[[Any, Dict[str, np.ndarray]], Dict[str, Any]]
LoadFn = Callable[[Dict[str, Any], Any, Any], Any]


class _Kind(NamedTuple):
    name: str
    types: Tuple[type, ...]
    save: SaveFn
    load: LoadFn


_KINDS: Dict[str, _Kind] = {}


def register_kind(name: str, types: "type | Tuple[type, ...]", save: SaveFn,
                  load: LoadFn) -> None:
    """Teach :func:`save` and :func:`load` a kind of top-level object.

    Args:
        name: stored as the file's ``"kind"``.
        types: ``save`` takes objects that are instances of these (checked in registration
            order, first match wins); ``load(path, into=obj)`` requires ``obj`` to be one.
        save: ``save(obj, arrays) -> entries``: the JSON-able metadata entries of the object
            (stored beside ``"kind"`` at the top of the metadata), putting its arrays into
            the dict ``arrays`` under its own prefixes and referencing each from the entries
            (:func:`to_json` does both): a file is read only for arrays its metadata
            references (and, under ``"model"``, the parameters of its architecture).
        load: ``load(meta, arrays, into) -> obj``: ``meta`` is the whole metadata,
            ``arrays`` the file's arrays, already read and checked (``arrays[key]``,
            ``arrays.files``), ``into`` None or an existing object to load into. Raise
            ``ValueError`` for bad content; the usual errors of malformed content (KeyError,
            TypeError, ...) are reported as a corrupted file.

    Registering a name again replaces it.
    """
    types = types if isinstance(types, tuple) else (types,)
    _KINDS[name] = _Kind(name, types, save, load)


def _save_model(model: Any, arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
    return {"model": model_entry(model, arrays)}


def _load_model(meta: Dict[str, Any], arrays: Any, into: Any) -> Any:
    return load_model_entry(meta["model"], arrays, into)


def _save_optimizer(opt: Any, arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
    return {"optimizer": optimizer_entry(opt, arrays)}


def _load_optimizer(meta: Dict[str, Any], arrays: Any, into: Any) -> Any:
    return load_optimizer_entry(meta["optimizer"], arrays, None, into)


register_kind("model", _nn.Module, _save_model, _load_model)
register_kind("optimizer", _optim.Optimizer, _save_optimizer, _load_optimizer)


# ---------------------------------------------------------------- reading, bounded
def _json_constant(name: str) -> float:
    if name == "NaN":   # json.dumps writes ±Infinity for a scheduler's best; NaN never
        raise _BadContent("the metadata holds a NaN")
    return float(name)


def _json_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS + 1:
        raise _BadContent(f"the metadata holds an integer of {len(text)} digits")
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > 400:
        raise _BadContent(f"the metadata holds a number written with {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):     # 1e999: json.dumps would have written Infinity
        raise _BadContent(f"the metadata holds the out-of-range number {text[:40]}")
    return value


def _json_object(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _BadContent(f"the metadata has the key {k[:80]!r} twice in one object")
        out[k] = v
    return out


def _parse_meta(blob: bytes) -> Dict[str, Any]:
    """The metadata JSON, strictly: UTF-8, an object, no NaN or duplicate keys, bounded
    numbers and depth. Raises _BadContent (or a decoding error)."""
    try:
        meta = json.loads(blob.decode("utf-8"), parse_constant=_json_constant,
                          parse_int=_json_int, parse_float=_json_float,
                          object_pairs_hook=_json_object)
    except RecursionError:
        raise _BadContent("the metadata JSON nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise _BadContent(f"the metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _BadContent(f"the metadata is not a JSON object (got {type(meta).__name__})")
    stack: List[Tuple[Any, int]] = [(meta, 1)]
    while stack:            # iteratively: depth is exactly what is being checked
        value, depth = stack.pop()
        if depth > _MAX_JSON_DEPTH:
            raise _BadContent(f"the metadata nests deeper than {_MAX_JSON_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in children if isinstance(v, (dict, list)))
    return meta


def _check_header(meta: Dict[str, Any]) -> _Kind:
    """Format, version and kind of parsed metadata."""
    version = meta.get("format_version")
    if meta.get("format") != FORMAT or isinstance(version, bool) \
            or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise _BadContent(f"unsupported format {str(meta.get('format'))[:40]!r} version "
                          f"{str(version)[:40]!r} (this rnnkit reads {FORMAT!r} versions 1 to "
                          f"{FORMAT_VERSION})")
    kind = _KINDS.get(meta.get("kind")) if isinstance(meta.get("kind"), str) else None
    if kind is None:
        raise _BadContent(f"unknown content kind {str(meta.get('kind'))[:40]!r}")
    if "metadata" in meta and not isinstance(meta["metadata"], dict):
        raise _BadContent("the user metadata is not a JSON object")
    return kind


def _describe_mode(mode: int) -> str:
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "a special file"


def open_regular(path: str, what: str = "an rnnkit file") -> Tuple[Any, int]:
    """(binary file object, size) of ``path``, a regular file; anything else raises a
    ValueError saying why it is not ``what`` (FileNotFoundError passes through). O_NONBLOCK
    keeps a FIFO from blocking the open; fstat on the open descriptor then refuses anything
    irregular, with no window for the path to change between check and use."""
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
             | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except IsADirectoryError:  # Windows opens no directories
        raise _BadContent(f"is a directory (not a regular file), so not {what}") from None
    except OSError as exc:
        raise _BadContent(f"cannot be read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _BadContent(f"is {_describe_mode(st.st_mode)} (not a regular file), so not "
                              f"{what}")
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


class _Member(NamedTuple):
    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: Tuple[int, ...]
    fortran: bool
    header_len: int


class _Archive:
    """A zip of .npy members opened for bounded reading (see the module docstring)."""

    def __init__(self, f: Any, size: int) -> None:
        self.size = size
        magic = f.read(8)
        f.seek(0)
        if magic.startswith(b"\x80"):   # pickle protocol 2+, as torch.save's legacy format
            raise _BadContent("is a Python pickle (e.g. a torch.save file of the legacy "
                              "format), not an rnnkit file: rnnkit never unpickles. Load it "
                              "with its own library and pass the arrays to load_state_dict")
        if magic.startswith(b"\x93NUMPY"):
            raise _BadContent("is a single .npy array (numpy.save), not an rnnkit file")
        if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise _BadContent("is not an rnnkit file (not a zip archive)")
        end = getattr(zipfile, "_EndRecData", None)  # the entry count, before zipfile
        if end is not None:                           # makes an object per entry
            rec = end(f)
            if rec is None:
                raise _BadContent("is not an rnnkit file (no zip directory: truncated?)")
            entries = rec[getattr(zipfile, "_ECD_ENTRIES_TOTAL", 4)]
            if entries > _MAX_MEMBERS:
                raise _BadContent(f"has {entries} zip entries, more than an rnnkit file "
                                  f"({_MAX_MEMBERS})")
            f.seek(0)
        self.zip = zipfile.ZipFile(f)
        infos = self.zip.infolist()
        names = [i.filename for i in infos]
        pickles = [n for n in names if n.endswith(".pkl")]
        if pickles:
            raise _BadContent(f"holds a pickle ({pickles[0]!r}): it looks like a PyTorch "
                              "torch.save file, not an rnnkit file, and rnnkit never "
                              "unpickles. Load it with torch and pass its state dict to "
                              "rnnkit's load_state_dict")
        if "__meta__.npy" not in names:
            raise _BadContent("is not an rnnkit file (no __meta__ entry)")
        self.members: Dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise _BadContent(f"has the member {name[:100]!r}: an rnnkit file holds .npy "
                                  "arrays only")
            key = name[:-4]
            if key in self.members:
                raise _BadContent(f"has the member {name[:100]!r} twice")
            if info.flag_bits & 0x1:
                raise _BadContent(f"member {name[:100]!r} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED:
                raise _BadContent(f"member {name[:100]!r} is compressed (zip method "
                                  f"{info.compress_type}); rnnkit files store their arrays "
                                  "uncompressed")
            if info.file_size != info.compress_size or \
                    info.header_offset + info.compress_size > size:
                raise _BadContent(f"member {name[:100]!r} declares {info.file_size} bytes, "
                                  f"more than the file holds")
            total += info.compress_size
            self.members[key] = info
        if total > size:   # members sharing their bytes: a zip bomb without compression
            raise _BadContent(f"its members declare {total} bytes in all, more than the "
                              f"file's {size}: overlapping entries")

    def __enter__(self) -> "_Archive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.zip.close()

    def header(self, key: str) -> _Member:
        """The .npy header of member ``key``, checked against the member's size."""
        info = self.members[key]
        with self.zip.open(info) as fp:
            head = fp.read(min(info.file_size, 16 + _NPY_HEADER_MAX))
        bio = BytesIO(head)
        try:
            version = np.lib.format.read_magic(bio)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    bio, max_header_size=_NPY_HEADER_MAX)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    bio, max_header_size=_NPY_HEADER_MAX)
            else:
                raise _BadContent(f"array {key!r} has .npy format version {version}")
        except _BadContent:
            raise
        except (ValueError, TypeError, SyntaxError, OverflowError, RecursionError, KeyError,
                AttributeError) as exc:
            raise _BadContent(f"array {key!r} has no valid .npy header ({exc})") from None
        if dtype not in _FILE_DTYPES or dtype.hasobject:
            raise _BadContent(f"array {key!r} has dtype {str(dtype)[:80]}: rnnkit files hold "
                              "plain numbers only (never objects: rnnkit never unpickles)")
        if not isinstance(shape, tuple) or len(shape) > 32 or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise _BadContent(f"array {key!r} has an invalid shape {str(shape)[:80]}")
        header_len = bio.tell()
        nbytes = math.prod(shape) * dtype.itemsize
        if header_len + nbytes != info.file_size:
            raise _BadContent(f"array {key!r} declares shape {shape} of {dtype} "
                              f"({nbytes} bytes) but holds {info.file_size - header_len}")
        return _Member(info, dtype, shape, bool(fortran), header_len)

    def read(self, key: str, m: _Member) -> np.ndarray:
        """Member ``key``'s array, read in chunks up to the size its header declared."""
        flat = np.empty(math.prod(m.shape), m.dtype)
        buf = memoryview(flat.view(np.uint8))
        with self.zip.open(m.info) as fp:
            if len(fp.read(m.header_len)) != m.header_len:
                raise _BadContent(f"array {key!r} is truncated")
            pos = 0
            while pos < len(buf):
                got = fp.readinto(buf[pos:pos + _READ_CHUNK])
                if not got:
                    raise _BadContent(f"array {key!r} is truncated")
                pos += got
            if fp.read(1):   # and reaching the end has checked the CRC
                raise _BadContent(f"array {key!r} is longer than its header says")
        return flat.reshape(m.shape, order="F" if m.fortran else "C")

    def meta(self) -> Dict[str, Any]:
        m = self.header("__meta__")
        if m.dtype != np.uint8 or len(m.shape) != 1:
            raise _BadContent(f"the __meta__ entry must be a 1-d uint8 array, got "
                              f"{m.dtype} {m.shape}")
        if m.shape[0] > MAX_META_BYTES:
            raise _BadContent(f"the metadata has {m.shape[0]} bytes, more than "
                              f"{MAX_META_BYTES}")
        return _parse_meta(self.read("__meta__", m).tobytes())


class _Arrays(Mapping):
    """The file's arrays, read and checked: ``arrays[key]`` and ``arrays.files``."""

    def __init__(self, arrays: Dict[str, np.ndarray]) -> None:
        self._arrays = arrays

    @property
    def files(self) -> List[str]:
        return list(self._arrays)

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self._arrays[key]
        except (KeyError, TypeError):
            raise _BadContent(f"the file has no array {str(key)[:100]!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


def _references(meta: Dict[str, Any]) -> Set[str]:
    """Keys of every {"__array__": key} in the metadata."""
    refs: Set[str] = set()
    stack: List[Any] = [meta]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "__array__" in value:
                key = value["__array__"]
                if len(value) != 1 or not isinstance(key, str):
                    raise _BadContent(f"bad array reference {str(value)[:100]}")
                refs.add(key)
            else:
                stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return refs


def _read_arrays(archive: _Archive, meta: Dict[str, Any]) -> _Arrays:
    """Every array the metadata needs, checked against it before (and while) reading; any
    other member is refused unread."""
    refs = _references(meta)
    model = meta.get("model")
    params: Dict[str, _ParamSpec] = {}
    open_prefixes: List[str] = []
    if isinstance(model, dict) and "architecture" in model:
        present = {k[len("model/"):] for k in archive.members if k.startswith("model/")}
        expected = _check_architecture(model["architecture"], present)
        params, open_prefixes = expected.params, expected.open_prefixes
    missing = sorted(refs - set(archive.members))
    if missing:
        raise _BadContent(f"the file lacks the array(s) {missing[:5]} its metadata references")
    wanted: List[str] = []
    for key in archive.members:
        if key == "__meta__":
            continue
        name = key[len("model/"):] if key.startswith("model/") else None
        if key in refs or (name is not None and (name in params or any(
                name.startswith(p) for p in open_prefixes))):
            wanted.append(key)
        else:
            raise _BadContent(f"has the unexpected member {key[:100] + '.npy'!r} (not part of "
                              "what its metadata describes)")
    headers = {key: archive.header(key) for key in wanted}
    for name, spec in params.items():
        h = headers["model/" + name]
        if h.shape != spec.shape or h.dtype != spec.dtype:
            raise _BadContent(f"parameter {name!r} is {h.dtype} of shape {h.shape}; its layer "
                              f"needs {spec.dtype} of shape {spec.shape}")
    return _Arrays({key: archive.read(key, headers[key]) for key in wanted})


def _with_path(path: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` with every content error turned into a ValueError that names ``path``."""
    try:
        return fn()
    except (_WrongInto, FileNotFoundError):
        raise
    except _BadContent as exc:
        text = str(exc)
        sep = " " if text.startswith(("is ", "has ", "holds ", "cannot ")) else ": "
        raise ValueError(f"{path}{sep}{text}") from None
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a readable rnnkit file ({exc})") from exc
    except _CONTENT_ERRORS as exc:
        raise ValueError(f"{path}: corrupted rnnkit file ({type(exc).__name__}: "
                         f"{str(exc)[:500]})") from exc


# ---------------------------------------------------------------- public
def save(obj: Any, path: "os.PathLike[str] | str", *,
         metadata: Optional[Dict[str, Any]] = None) -> None:
    """Save a model (an rnnkit.nn layer, a Sequential or your own Module subclass), an
    optimiser or a Trainer to ``path``.

    A trainer is saved with its model, optimiser, loss, progress (epoch, step), shuffling
    generator and schedule, so ``load`` resumes it bitwise. Your own Module subclass is
    saved as its class name, ``get_config()`` and ``state_dict()`` (see
    :func:`register_module` for loading it).

    Args:
        obj: what to save.
        path: the file to write. The write is atomic (a temporary file beside the target,
            renamed over it); a symlink is followed (the file it points to is replaced; the
            link stays); a directory, FIFO or device raises ValueError and is left alone.
        metadata: optional JSON data stored with the file (a dict with str keys; values
            dicts, lists, str, finite numbers, bools, None), read back by
            :func:`load_metadata`; :func:`load` still returns ``obj``'s kind. Checked here:
            TypeError/ValueError naming the offending entry.
    """
    kind = next((k for k in _KINDS.values() if isinstance(obj, k.types)), None)
    if kind is None:
        raise TypeError(f"rnnkit.save saves {', '.join(_KINDS)} objects, got "
                        f"{type(obj).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    user = _plain_json(metadata, "metadata") if metadata is not None else None
    arrays: Dict[str, np.ndarray] = {}
    meta: Dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                            "rnnkit_version": __version__, "kind": kind.name}
    meta.update(kind.save(obj, arrays))
    if user is not None:
        meta["metadata"] = user
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype not in _FILE_DTYPES:
            raise TypeError(f"cannot save the array {key!r}: {type(value).__name__} of dtype "
                            f"{getattr(value, 'dtype', None)} (files hold plain numeric "
                            "arrays: bool, int, uint, float)")
    blob = json.dumps(meta).encode("utf-8")
    if len(blob) > MAX_META_BYTES:
        raise ValueError(f"the metadata of this file would take {len(blob)} bytes, more than "
                         f"rnnkit.load reads ({MAX_META_BYTES}); store large data as arrays")
    try:   # what load will not read must not be written (NaN, huge numbers, deep nesting)
        _parse_meta(blob)
    except _BadContent as exc:
        raise ValueError(f"cannot save {type(obj).__name__}: {exc}") from None
    arrays["__meta__"] = np.frombuffer(blob, dtype=np.uint8)
    _atomic_write(os.fspath(path), arrays)


def _file_mode(path: str) -> int:
    """The existing file's mode, else 0666 minus the umask (as a plain open() would create)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _save_target(path: str) -> str:
    """The regular file a save replaces: ``path`` with symlinks resolved (so the link stays
    and the file it names is updated); a directory, FIFO or device is refused."""
    target = os.path.realpath(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"cannot save to {path}: it is {_describe_mode(st.st_mode)}; "
                         "rnnkit.save writes regular files only")
    return target


def _temporary_prefix(target: str) -> str:
    """``.<name>.rnnkit-``: temporaries named after their target, so that a later save of
    the same target finds what a killed one left. A long name is cut (with a hash of the
    whole, to keep targets apart) to stay within the 255 bytes a file name may have."""
    name = os.path.basename(target)
    if len(name.encode("utf-8", "surrogateescape")) > 180:
        digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        name = name.encode("utf-8", "surrogateescape")[:120].decode("utf-8", "ignore") \
            + "~" + digest
    return f".{name}.rnnkit-"


def _remove_stale_temporaries(directory: str, prefix: str) -> None:
    """Delete temporaries of this target left by saves that died: unlocked (a live writer
    holds an flock until its rename) and unmodified for STALE_TEMPORARY_SECONDS. Never
    fails the save."""
    # Exactly what tempfile.mkstemp(prefix, ".tmp") makes (8 characters of [a-z0-9_] between):
    # a user's ".<name>.rnnkit-keep.tmp" or another target's temporary never matches.
    pattern = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}\.tmp")
    try:
        names = [n for n in os.listdir(directory) if pattern.fullmatch(n)]
    except OSError:
        return
    now = time.time()
    for name in names:
        full = os.path.join(directory, name)
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            age = now - st.st_mtime
            if not stat.S_ISREG(st.st_mode) or age < STALE_TEMPORARY_SECONDS:
                continue
            if _fcntl is not None:
                try:
                    _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
                except OSError:
                    continue                   # a live save is writing it
            elif age < _STALE_UNLOCKED_SECONDS:
                continue
            if os.stat(full, follow_symlinks=False).st_ino == st.st_ino:
                os.unlink(full)
        except OSError:
            pass
        finally:
            os.close(fd)


def _atomic_write(path: str, arrays: Dict[str, np.ndarray]) -> None:
    write_atomically(path, lambda f: np.savez(f, **arrays))


def write_atomically(path: str, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path`` and rename it over ``path``: a
    crash mid-write keeps the previous file (the next write removes the leftover). Symlinks
    are followed; a directory, FIFO or device raises ValueError and is left alone."""
    target = _save_target(path)
    directory = os.path.dirname(target)
    prefix = _temporary_prefix(target)
    _remove_stale_temporaries(directory, prefix)
    mode = _file_mode(target)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if _fcntl is not None:  # held until the rename: the file is in use
                _fcntl.flock(f.fileno(), _fcntl.LOCK_EX)
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, mode)  # mkstemp makes 0600; give what open() would
            os.replace(tmp, target)  # atomic on POSIX and Windows
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def load(path: "os.PathLike[str] | str", into: Any = None) -> Any:
    """Load what :func:`save` wrote.

    Without ``into``: a model file returns a new model, a trainer file a new Trainer (model,
    optimiser and loss rebuilt; reattach a learning-rate scheduler yourself, or use ``into``).
    A model of your own Module subclass is rebuilt only when its class is registered
    (:func:`register_module`); otherwise pass ``into``.
    With ``into``: the state is loaded into that existing model, optimiser or trainer (which
    must have the same architecture: every parameter name and shape is checked) and it is
    returned; ``into`` of another kind or optimiser class than the file's raises TypeError.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming ``path``, for anything that is not a complete rnnkit file:
            a directory, FIFO or device, an unreadable file, a truncated or corrupted
            archive, a pickle or torch file (never unpickled), arrays that do not match the
            architecture, invalid optimiser or trainer state, and so on. Reading is bounded
            by the file's size: a hostile file cannot make it allocate much more.
    """
    path = os.fspath(path)

    def run() -> Any:
        f, size = open_regular(path)
        with f, _Archive(f, size) as archive:
            meta = archive.meta()
            kind = _check_header(meta)
            if into is not None and not isinstance(into, kind.types):
                expected = " or ".join(t.__name__ for t in kind.types)
                raise _WrongInto(f"a {kind.name} file loads into a {expected}, got "
                                 f"{type(into).__name__}")
            arrays = _read_arrays(archive, meta)
        return kind.load(meta, arrays, into)

    return _with_path(path, run)


def load_metadata(path: "os.PathLike[str] | str") -> Dict[str, Any]:
    """The ``metadata`` dict :func:`save` stored with the file at ``path`` ({} if none).

    Reads and checks only the file's JSON (and its zip directory), not its arrays; errors as
    :func:`load` (ValueError naming the path; FileNotFoundError for a missing path).
    """
    path = os.fspath(path)

    def run() -> Dict[str, Any]:
        f, size = open_regular(path)
        with f, _Archive(f, size) as archive:
            meta = archive.meta()
        _check_header(meta)
        return meta.get("metadata", {})

    return _with_path(path, run)
