"""Saving and loading: models, optimisers and trainers as one ``.npz`` file, without pickle.

The file is a numpy ``.npz`` archive: every array (parameters, optimiser buffers) is an entry,
and one entry, ``__meta__``, holds JSON describing the rest: the model's architecture (layer
classes and constructor arguments), random-generator states, optimiser hyperparameters and
trainer progress. Loading reads it with ``allow_pickle=False`` and builds objects only from a
fixed table of rnnkit classes, so opening a file never runs code from it.

Writes are atomic: the archive is written to a temporary file in the same directory, flushed
to disk and renamed over the target, so a crash mid-save leaves the previous file intact.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import losses as _losses
from . import nn as _nn
from . import optim as _optim
from ._runtime import __version__

FORMAT = "rnnkit"
FORMAT_VERSION = 1

# Layer classes that files may name, and the attributes that are their constructor arguments.
_LAYERS: Dict[str, Tuple[type, Tuple[str, ...]]] = {
    "LSTM": (_nn.LSTM, ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                        "dropout", "bidirectional", "dtype")),
    "GRU": (_nn.GRU, ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                      "dropout", "bidirectional", "dtype")),
    "RNN": (_nn.RNN, ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias",
                      "batch_first", "dropout", "bidirectional", "dtype")),
    "LSTMCell": (_nn.LSTMCell, ("input_size", "hidden_size", "bias", "dtype")),
    "GRUCell": (_nn.GRUCell, ("input_size", "hidden_size", "bias", "dtype")),
    "RNNCell": (_nn.RNNCell, ("input_size", "hidden_size", "bias", "nonlinearity", "dtype")),
    "Embedding": (_nn.Embedding, ("num_embeddings", "embedding_dim", "padding_idx", "dtype")),
    "Linear": (_nn.Linear, ("in_features", "out_features", "bias", "dtype")),
    "Dropout": (_nn.Dropout, ("p",)),
    "Last": (_nn.Last, ("batch_first",)),
    "Sequential": (_nn.Sequential, ()),
}
_LOSSES: Dict[str, Tuple[type, Tuple[str, ...]]] = {
    "CrossEntropyLoss": (_losses.CrossEntropyLoss, ("ignore_index", "reduction")),
    "MSELoss": (_losses.MSELoss, ("reduction",)),
    "BCEWithLogitsLoss": (_losses.BCEWithLogitsLoss, ("reduction", "pos_weight")),
}
_OPTIMIZERS = {name: getattr(_optim, name) for name in
               ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")}


# ---------------------------------------------------------------- plain data <-> JSON + arrays
def _to_json(value: Any, arrays: Dict[str, np.ndarray], prefix: str) -> Any:
    """Replace every ndarray in a nested structure by {"__array__": key}, collecting arrays."""
    if isinstance(value, np.ndarray):
        arrays[prefix] = value
        return {"__array__": prefix}
    if isinstance(value, dict):
        return {str(k): _to_json(v, arrays, f"{prefix}/{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v, arrays, f"{prefix}/{i}") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.dtype):
        return value.name
    return value


def _from_json(value: Any, arrays: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return np.array(arrays[value["__array__"]])
        return {k: _from_json(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v, arrays) for v in value]
    return value


# ---------------------------------------------------------------- architecture
def _describe(module: Any) -> Dict[str, Any]:
    name = type(module).__name__
    if name not in _LAYERS or _LAYERS[name][0] is not type(module):
        raise TypeError(f"cannot save a {name}: rnnkit.save knows the layers "
                        f"{', '.join(sorted(_LAYERS))} (save a subclass's state_dict instead)")
    config = {}
    for attr in _LAYERS[name][1]:
        v = getattr(module, attr)
        if attr == "bias" and not isinstance(v, bool):  # Linear keeps the Parameter or None
            v = v is not None
        config[attr] = v.name if isinstance(v, np.dtype) else v
    desc: Dict[str, Any] = {"class": name, "config": config}
    if name == "Sequential":
        desc["layers"] = [_describe(m) for m in module]
    return desc


def _build(desc: Dict[str, Any]) -> Any:
    name = desc.get("class")
    if name not in _LAYERS:
        raise ValueError(f"file names an unknown layer class {name!r}")
    cls, _ = _LAYERS[name]
    if name == "Sequential":
        return cls(*[_build(d) for d in desc["layers"]])
    with warnings.catch_warnings():  # e.g. dropout with one layer: warned when first built
        warnings.simplefilter("ignore")
        return cls(**desc["config"])


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


# ---------------------------------------------------------------- pieces
def _model_meta(model: Any, arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
    for name, value in model.state_dict().items():
        arrays["model/" + name] = value
    return {"architecture": _describe(model), "rng": _rng_states(model)}


def _load_model(meta: Dict[str, Any], arrays: Any, into: Any = None) -> Any:
    model = into if into is not None else _build(meta["architecture"])
    prefix = "model/"
    model.load_state_dict({k[len(prefix):]: arrays[k] for k in arrays.files
                           if k.startswith(prefix)})
    _restore_rngs(model, meta.get("rng", {}))
    return model


def _optimizer_meta(opt: Any, arrays: Dict[str, np.ndarray],
                    model: Any = None) -> Dict[str, Any]:
    name = type(opt).__name__
    if _OPTIMIZERS.get(name) is not type(opt):
        raise TypeError(f"cannot save a {name}: rnnkit.save knows {', '.join(_OPTIMIZERS)}")
    meta = {"class": name, "state": _to_json(opt.state_dict(), arrays, "optimizer")}
    if model is not None:  # which parameter each group holds, by name, to rebuild the groups
        names = {id(p): n for n, p in model.named_parameters()}
        meta["group_params"] = [[names.get(id(p)) for p in g["params"]]
                                for g in opt.param_groups]
    return meta


def _load_optimizer(meta: Dict[str, Any], arrays: Any, model: Any,
                    into: Any = None) -> Any:
    state = _from_json(meta["state"], arrays)
    opt = into
    if opt is None:
        if model is None:
            raise ValueError("an optimiser file needs the parameters it steps: use "
                             "rnnkit.load(path, into=optimizer) with an optimiser built over "
                             "the model's parameters")
        cls = _OPTIMIZERS.get(meta["class"])
        if cls is None:
            raise ValueError(f"file names an unknown optimiser {meta['class']!r}")
        by_name = dict(model.named_parameters())
        groups = []
        for names in meta["group_params"]:
            missing = [n for n in names if n not in by_name]
            if missing:
                raise ValueError(f"the optimiser steps parameters the model lacks: {missing}")
            groups.append({"params": [by_name[n] for n in names]})
        opt = cls(groups)
    opt.load_state_dict(state)
    return opt


def _loss_meta(loss: Any) -> Dict[str, Any]:
    name = type(loss).__name__
    if name not in _LOSSES:
        raise TypeError(f"cannot save a trainer with a {name} loss: rnnkit.save knows "
                        f"{', '.join(_LOSSES)}")
    config = {}
    for attr in _LOSSES[name][1]:
        v = getattr(loss, attr)
        config[attr] = v.tolist() if isinstance(v, np.ndarray) else v
    return {"class": name, "config": config}


# ---------------------------------------------------------------- public
def save(obj: Any, path: "os.PathLike[str] | str") -> None:
    """Save a model (an rnnkit.nn layer or Sequential), an optimiser or a Trainer to ``path``.

    A trainer is saved with its model, optimiser, loss, progress (epoch, step), shuffling
    generator and schedule, so ``load`` resumes it bitwise. The write is atomic.
    """
    from .train import Trainer

    arrays: Dict[str, np.ndarray] = {}
    meta: Dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                            "rnnkit_version": __version__}
    if isinstance(obj, Trainer):
        meta["kind"] = "trainer"
        meta["model"] = _model_meta(obj.model, arrays)
        meta["optimizer"] = _optimizer_meta(obj.optimizer, arrays, obj.model)
        meta["loss"] = _loss_meta(obj.loss)
        meta["trainer"] = _to_json(obj.state_dict(), arrays, "trainer")
    elif isinstance(obj, _nn.Module):
        meta["kind"] = "model"
        meta["model"] = _model_meta(obj, arrays)
    elif type(obj).__name__ in _OPTIMIZERS:
        meta["kind"] = "optimizer"
        meta["optimizer"] = _optimizer_meta(obj, arrays)
    else:
        raise TypeError(f"rnnkit.save saves models, optimisers and trainers, got "
                        f"{type(obj).__name__}")
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
    must have the same architecture) and it is returned. A file that is not a complete rnnkit
    file raises ValueError naming it.
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
            return _load_content(meta, arrays, into, path)
    except (zipfile.BadZipFile, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable rnnkit file ({exc})") from exc
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        if isinstance(exc, TypeError) and into is not None and "loads into" in str(exc):
            raise
        raise ValueError(f"{path}: corrupted rnnkit file ({type(exc).__name__}: {exc})") from exc


def _load_content(meta: Dict[str, Any], arrays: Any, into: Any, path: str) -> Any:
    from .train import Trainer

    kind = meta.get("kind")
    if kind == "model":
        return _load_model(meta["model"], arrays, into)
    if kind == "optimizer":
        return _load_optimizer(meta["optimizer"], arrays, None, into)
    if kind == "trainer":
        if into is not None and not isinstance(into, Trainer):
            raise TypeError(f"a trainer file loads into a Trainer, got {type(into).__name__}")
        model = _load_model(meta["model"], arrays, into.model if into else None)
        opt = _load_optimizer(meta["optimizer"], arrays, model,
                              into.optimizer if into else None)
        trainer = into
        if trainer is None:
            cls, _ = _LOSSES[meta["loss"]["class"]]
            trainer = Trainer(model, cls(**meta["loss"]["config"]), opt)
        state = _from_json(meta["trainer"], arrays)
        trainer.clip_grad_norm = state.get("clip_grad_norm")
        trainer.load_state_dict(state)
        return trainer
    raise ValueError(f"{path}: unknown content kind {kind!r}")
