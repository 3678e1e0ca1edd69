"""Saving and loading: models, optimisers and trainers as one ``.npz`` file, without pickle.

The file is a numpy ``.npz`` archive: every array (parameters, optimiser buffers) is an entry,
and one entry, ``__meta__``, holds JSON describing the rest: the model's architecture (layer
classes and constructor arguments), random-generator states, optimiser hyperparameters and
trainer progress. Loading reads it with ``allow_pickle=False`` and builds objects only from
rnnkit's own public classes (those in ``rnnkit.nn.__all__``, ``rnnkit.losses.__all__`` and the
optimisers), so opening a file never runs code from it and a file cannot name other classes.

Writes are atomic: the archive is written to a temporary file in the same directory, flushed
to disk and renamed over the target, so a crash mid-save leaves the previous file intact.

What a file holds is a *kind*: ``"model"`` and ``"optimizer"`` are registered here,
``"trainer"`` by :mod:`rnnkit.train.checkpoint` (io knows no Trainer; the import arrows point
from train down to io). :func:`register_kind` adds one: ``save(obj, arrays)`` returns the
metadata entries to store (putting arrays into ``arrays`` under its own prefixes; see
:func:`to_json`), ``load(meta, arrays, into)`` rebuilds the object (or loads into ``into``).
The pieces the built-in kinds are made of (:func:`model_entry`, :func:`load_model_entry`,
:func:`optimizer_entry`, :func:`load_optimizer_entry`, :func:`loss_entry`,
:func:`build_loss`) are for such functions.

A layer is described by its class name and ``get_config()`` (its ``_config_args``); a layer
whose ``_config_children`` is set (Sequential) also by its children, in order, which are its
constructor's positional arguments. Losses likewise by class name and ``get_config()``.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from typing import Any, Callable, Dict, List, NamedTuple, Tuple

import numpy as np

from . import losses as _losses
from . import nn as _nn
from . import optim as _optim
from ._runtime import __version__

__all__ = ["save", "load", "register_kind", "FORMAT", "FORMAT_VERSION", "to_json", "from_json",
           "model_entry", "load_model_entry", "optimizer_entry", "load_optimizer_entry",
           "loss_entry", "build_loss"]

FORMAT = "rnnkit"
FORMAT_VERSION = 1


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


class _WrongInto(TypeError):
    """``load(path, into=obj)`` with an ``obj`` of another kind than the file's: the caller's
    mistake, raised as is (not reported as a corrupted file)."""


class _BadContent(ValueError):
    """The file names a class or an argument that rnnkit does not build: reported by
    :func:`load` as a corrupted file, with the file's name."""


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
    """The inverse of :func:`to_json`, reading arrays from the open archive."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return np.array(arrays[value["__array__"]])
        return {k: from_json(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v, arrays) for v in value]
    return value


# ---------------------------------------------------------------- architecture
def _describe(module: Any) -> Dict[str, Any]:
    cls = type(module)
    if _LAYERS.get(cls.__name__) is not cls:
        raise TypeError(f"cannot save a {cls.__name__}: rnnkit.save knows the layers "
                        f"{', '.join(sorted(_LAYERS))} (save a subclass's state_dict instead)")
    desc: Dict[str, Any] = {"class": cls.__name__, "config": module.get_config()}
    if cls._config_children:
        desc["layers"] = [_describe(m) for m in module.children()]
    return desc


def _known_class(table: Dict[str, type], entry: Dict[str, Any], what: str) -> Tuple[type, Dict]:
    """The class `entry` names, from `table` only, and its checked constructor arguments."""
    name = entry.get("class")
    cls = table.get(name) if isinstance(name, str) else None
    if cls is None:
        raise _BadContent(f"file names an unknown {what} {name!r}")
    config = entry["config"]
    if not isinstance(config, dict) or not set(config) <= set(cls._config_args):
        raise _BadContent(f"the file's {name} arguments {config!r} are not among its "
                         f"constructor arguments {cls._config_args}")
    return cls, config


def _build(desc: Dict[str, Any]) -> Any:
    cls, config = _known_class(_LAYERS, desc, "layer class")
    children = [_build(d) for d in desc["layers"]] if cls._config_children else []
    with warnings.catch_warnings():  # e.g. dropout with one layer: warned when first built
        warnings.simplefilter("ignore")
        return cls(*children, **config)


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


def _restore_rngs(model: Any, states: Dict[str, Any]) -> None:
    modules = dict(_named_modules(model))
    for path, state in states.items():
        if path in modules and isinstance(modules[path].__dict__.get("_rng"),
                                          np.random.Generator):
            modules[path]._rng.bit_generator.state = state


# ---------------------------------------------------------------- pieces of a kind
def model_entry(model: Any, arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """A model's metadata (architecture, generator states); its parameters go to
    ``arrays["model/<name>"]``."""
    for name, value in model.state_dict().items():
        arrays["model/" + name] = value
    return {"architecture": _describe(model), "rng": _rng_states(model)}


def load_model_entry(entry: Dict[str, Any], arrays: Any, into: Any = None) -> Any:
    """The model :func:`model_entry` described: rebuilt, or its state loaded ``into``."""
    model = into if into is not None else _build(entry["architecture"])
    prefix = "model/"
    model.load_state_dict({k[len(prefix):]: arrays[k] for k in arrays.files
                           if k.startswith(prefix)})
    _restore_rngs(model, entry.get("rng", {}))
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


def load_optimizer_entry(entry: Dict[str, Any], arrays: Any, model: Any,
                         into: Any = None) -> Any:
    """The optimiser :func:`optimizer_entry` described: its state loaded ``into``, or rebuilt
    over ``model``'s parameters (which needs the group names)."""
    state = from_json(entry["state"], arrays)
    opt = into
    if opt is None:
        if model is None:
            raise ValueError("an optimiser file needs the parameters it steps: use "
                             "rnnkit.load(path, into=optimizer) with an optimiser built over "
                             "the model's parameters")
        cls = _OPTIMIZERS.get(entry["class"])
        if cls is None:
            raise _BadContent(f"file names an unknown optimiser {entry['class']!r}")
        by_name = dict(model.named_parameters())
        groups = []
        for names in entry["group_params"]:
            missing = [n for n in names if n not in by_name]
            if missing:
                raise ValueError(f"the optimiser steps parameters the model lacks: {missing}")
            groups.append({"params": [by_name[n] for n in names]})
        opt = cls(groups)
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
            the dict ``arrays`` under its own prefixes.
        load: ``load(meta, arrays, into) -> obj``: ``meta`` is the whole metadata,
            ``arrays`` the open archive (``arrays[key]``, ``arrays.files``), ``into`` None
            or an existing object to load into. Raise ``ValueError`` for bad content; the
            usual errors of malformed content (KeyError, TypeError, ...) are reported as a
            corrupted file.

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


# ---------------------------------------------------------------- public
def save(obj: Any, path: "os.PathLike[str] | str") -> None:
    """Save a model (an rnnkit.nn layer or Sequential), an optimiser or a Trainer to ``path``.

    A trainer is saved with its model, optimiser, loss, progress (epoch, step), shuffling
    generator and schedule, so ``load`` resumes it bitwise. The write is atomic.
    """
    kind = next((k for k in _KINDS.values() if isinstance(obj, k.types)), None)
    if kind is None:
        raise TypeError(f"rnnkit.save saves {', '.join(_KINDS)} objects, got "
                        f"{type(obj).__name__}")
    arrays: Dict[str, np.ndarray] = {}
    meta: Dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                            "rnnkit_version": __version__, "kind": kind.name}
    meta.update(kind.save(obj, arrays))
    blob = json.dumps(meta).encode("utf-8")
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


def _atomic_write(path: str, arrays: Dict[str, np.ndarray]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnnkit-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)  # atomic on POSIX and Windows
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
    With ``into``: the state is loaded into that existing model, optimiser or trainer (which
    must have the same architecture) and it is returned; ``into`` of another kind than the
    file's raises TypeError. A file that is not a complete rnnkit file raises ValueError
    naming it.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as arrays:
            if not hasattr(arrays, "files") or "__meta__" not in arrays.files:
                raise ValueError(f"{path} is not an rnnkit file (no __meta__ entry)")
            meta = json.loads(arrays["__meta__"].tobytes().decode("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError(f"{path}: corrupted rnnkit file (the metadata is not a JSON "
                                 "object)")
            if meta.get("format") != FORMAT or not isinstance(meta.get("format_version"), int) \
                    or meta["format_version"] > FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported format {meta.get('format')!r} version "
                                 f"{meta.get('format_version')!r} (this rnnkit reads "
                                 f"{FORMAT!r} up to version {FORMAT_VERSION})")
            kind = _KINDS.get(meta.get("kind")) if isinstance(meta.get("kind"), str) else None
            if kind is None:
                raise ValueError(f"{path}: unknown content kind {meta.get('kind')!r}")
            if into is not None and not isinstance(into, kind.types):
                expected = " or ".join(t.__name__ for t in kind.types)
                raise _WrongInto(f"a {kind.name} file loads into a {expected}, got "
                                 f"{type(into).__name__}")
            return kind.load(meta, arrays, into)
    except _WrongInto:
        raise
    except _BadContent as exc:
        raise ValueError(f"{path}: corrupted rnnkit file ({exc})") from exc
    except (zipfile.BadZipFile, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable rnnkit file ({exc})") from exc
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{path}: corrupted rnnkit file ({type(exc).__name__}: {exc})") from exc
