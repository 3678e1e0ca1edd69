"""Training: the Trainer loop, callbacks, History, truncated BPTT and checkpoints.

Importing this package registers the "trainer" kind with :mod:`rnnkit.io` (see checkpoint).
"""
from . import checkpoint  # noqa: F401 - registers the trainer kind with rnnkit.io
from .callbacks import Callback, EarlyStopping, ModelCheckpoint
from .history import History
from .trainer import Trainer

__all__ = ["Trainer", "History", "Callback", "EarlyStopping", "ModelCheckpoint"]
