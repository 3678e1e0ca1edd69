"""Optimisers, gradient clipping and learning-rate schedules (torch.optim's rules).

The update of every optimiser is one fused C++ pass over each parameter and its state
(cpp/kernels/optim_updates.cpp); this package holds parameter groups and state.
"""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "clip_grad_norm_",
           "clip_grad_value_", "lr_scheduler"]
