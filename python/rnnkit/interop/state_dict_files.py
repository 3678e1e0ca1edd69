"""State dicts in the files other frameworks write: read with no torch installed, and never
unpickled.

- ``.safetensors`` (what ``safetensors.torch.save_file(module.state_dict(), path)`` writes
  in torch): read and written through the ``safetensors`` package's numpy API
  (``pip install "rnnkit[safetensors]"``). bfloat16 tensors, common in torch checkpoints,
  need ``ml_dtypes`` (in the extra) and are returned as float32, which holds every bfloat16
  value exactly.
- ``.npz`` archives of plain arrays (``np.savez``), read with pickles refused.
- torch's own ``.pt`` / ``.pth`` / ``.bin`` files are pickles: loading one can run any code
  the file's author chose, so they are refused with the lines that convert them where torch
  is installed.

The kind of file is told from its first bytes, not its name.
"""
from __future__ import annotations

import os
import struct
import zipfile
from typing import Any, BinaryIO, Dict, Mapping, Optional

import numpy as np

from ..io import open_regular, write_atomically

# What comes back: numpy's plain numeric dtypes (bfloat16 and other ml_dtypes floats are
# widened to float32 first).
_PLAIN_KINDS = "biuf"
_ML_DTYPES = ("BF16", "F8_E4M3", "F8_E5M2")
_INSTALL_HINT = 'pip install "rnnkit[safetensors]"'
_CONVERT_HINT = (
    "convert it once where torch is installed:\n"
    "    import torch, safetensors.torch\n"
    "    sd = torch.load(PATH, map_location='cpu', weights_only=True)\n"
    "    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, "
    "'model.safetensors')\n"
    "and load model.safetensors here")


def load_state_dict_file(path: "os.PathLike[str] | str") -> Dict[str, np.ndarray]:
    """Read a state dict (name -> array) from a ``.safetensors`` file or an ``.npz`` archive.

    The result feeds ``model.load_state_dict`` directly: a torch ``nn.LSTM``'s state dict
    saved with ``safetensors.torch.save_file`` loads into ``rnnkit.nn.LSTM`` unchanged, in a
    process without torch. Arrays are the file's dtype (bfloat16 becomes float32), owned and
    writable.

    Raises:
        ValueError: the file is not a complete safetensors or npz file, or holds something
            other than numeric arrays; a torch pickle (``torch.save``) is refused unread.
        ImportError: a safetensors file and the ``safetensors`` package is missing (or
            bfloat16 tensors and ``ml_dtypes`` is).
    """
    path = os.fspath(path)
    try:   # a FIFO or device would block a plain open() or read forever
        f, size = open_regular(path, "a state dict file")
    except FileNotFoundError:
        raise
    except ValueError as exc:
        raise ValueError(f"{path} {exc}") from None
    with f:
        head = f.read(9)
    if head[:1] == b"\x80":
        raise ValueError(f"{path} is a Python pickle (torch.save's legacy format); rnnkit "
                         f"never unpickles, since a pickle can run code; {_CONVERT_HINT}")
    if head[:4] == b"PK\x03\x04":
        return _load_zip(path)
    # safetensors: an 8-byte little-endian header length, then the JSON header.
    if len(head) == 9 and head[8:9] == b"{" and 0 < struct.unpack("<Q", head[:8])[0] < size:
        return _load_safetensors(path)
    raise ValueError(f"{path} is neither a safetensors file nor an npz archive (its first "
                     f"bytes are {head!r})")


def _load_zip(path: str) -> Dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path} is not a readable zip/npz archive: {exc}") from None
    if any(n.endswith(".pkl") for n in names):
        raise ValueError(f"{path} is a torch checkpoint (torch.save's zip of pickles); rnnkit "
                         f"never unpickles, since a pickle can run code; {_CONVERT_HINT}")
    out: Dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                out[name] = _plain(np.array(archive[name]), path, name)
    except ValueError as exc:   # numpy's "Object arrays cannot be loaded ..." and others
        raise ValueError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a complete npz archive: {exc}") from None
    return out


def _load_safetensors(path: str) -> Dict[str, np.ndarray]:
    try:
        import safetensors
    except ImportError:
        raise ImportError(f"reading {path} needs the safetensors package: {_INSTALL_HINT}"
                          ) from None
    out: Dict[str, np.ndarray] = {}
    try:
        with safetensors.safe_open(path, framework="numpy") as f:
            keys = list(f.keys())
            # torch's bfloat16 and float8 formats: numpy knows them once ml_dtypes is imported.
            if any(f.get_slice(k).get_dtype() in _ML_DTYPES for k in keys):
                _need_ml_dtypes(path)
            for k in keys:
                out[k] = _plain(np.array(f.get_tensor(k)), path, k)
    except (ImportError, ValueError):
        raise
    except Exception as exc:  # noqa: BLE001 - SafetensorError and friends name no class we import
        raise ValueError(f"{path} is not a complete safetensors file: {exc}") from None
    return out


def _need_ml_dtypes(path: str) -> None:
    try:
        import ml_dtypes  # noqa: F401 - imported for its registration of bfloat16 with numpy
    except ImportError:
        raise ImportError(f"{path} holds bfloat16 or float8 tensors, which numpy reads with "
                          f"the ml_dtypes package: {_INSTALL_HINT}") from None


def _plain(a: np.ndarray, path: str, name: str) -> np.ndarray:
    if a.dtype.kind in _PLAIN_KINDS:
        return a
    if a.dtype.kind == "V" and a.dtype.itemsize <= 2:   # ml_dtypes' bfloat16 and float8s
        return a.astype(np.float32)
    raise ValueError(f"{path}: {name!r} is not a numeric array (dtype {a.dtype})")


def save_state_dict_file(obj: Any, path: "os.PathLike[str] | str", *,
                         metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write a state dict as a ``.safetensors`` file (readable by torch's
    ``safetensors.torch.load_file`` and by :func:`load_state_dict_file`).

    Args:
        obj: a model (anything with ``state_dict()``) or a mapping of name -> array.
        path: the file to write; atomic (a temporary beside it, renamed over it).
        metadata: optional str -> str pairs stored in the file's header.
    """
    try:
        import safetensors.numpy as st_numpy
    except ImportError:
        raise ImportError(f"writing safetensors files needs the safetensors package: "
                          f"{_INSTALL_HINT}") from None
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not isinstance(state, Mapping):
        raise TypeError(f"obj must be a model or a mapping of name -> array, got "
                        f"{type(obj).__name__}")
    arrays: Dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise TypeError(f"state dict names must be str, got {name!r}")
        a = np.ascontiguousarray(value)
        if a.dtype.kind not in _PLAIN_KINDS:
            raise TypeError(f"{name!r} is not a numeric array (dtype {a.dtype})")
        arrays[name] = a
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str)
                                        for k, v in dict(metadata).items()):
        raise TypeError("metadata must map str to str")
    blob = st_numpy.save(arrays, metadata=dict(metadata) if metadata is not None else None)

    def write(f: BinaryIO) -> None:
        f.write(blob)

    write_atomically(os.fspath(path), write)
