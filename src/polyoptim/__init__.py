"""polyoptim: the optimizer systems of PyTorch, PaddlePaddle and MindSpore on PyTorch tensors.

``import polyoptim as optim`` is a drop-in replacement for ``torch.optim``: same classes,
signatures, defaults, error messages, state_dict format and numbers.
"""

from torch.optim import lr_scheduler, swa_utils

from .engine import Optimizer
from .optimizers import (
    ASGD,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    NAdam,
    RAdam,
    RMSprop,
    Rprop,
)

__version__ = "0.1.0"

__all__ = [
    "ASGD",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "Rprop",
    "lr_scheduler",
    "swa_utils",
]
