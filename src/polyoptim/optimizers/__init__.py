"""The PyTorch dialect: torch.optim's classes on the polyoptim engine."""

from .adafactor import Adafactor
from .adam import Adam, Adamax, AdamW, NAdam, RAdam
from .adaptive import ASGD, Adadelta, Adagrad, RMSprop, Rprop
from .base import TorchOptimizer
from .lbfgs import LBFGS
from .muon import Muon
from .sgd import SGD
from .sparse_adam import SparseAdam

__all__ = [
    "Adafactor",
    "LBFGS",
    "Muon",
    "SparseAdam",
    "ASGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGD",
    "TorchOptimizer",
]
