"""Training: the Trainer loop, callbacks and History."""
from .callbacks import Callback, EarlyStopping, ModelCheckpoint
from .history import History
from .trainer import Trainer

__all__ = ["Trainer", "History", "Callback", "EarlyStopping", "ModelCheckpoint"]
