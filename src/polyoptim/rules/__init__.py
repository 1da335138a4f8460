"""Rules: the math of one step of each element-wise algorithm, written once."""

from .adadelta import adadelta
from .adagrad import adagrad
from .adam import adam, adamax, nadam, radam
from .asgd import asgd
from .base import Buffer, Rule
from .rmsprop import rmsprop
from .rprop import rprop
from .sgd import sgd

__all__ = [
    "Buffer",
    "Rule",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "asgd",
    "nadam",
    "radam",
    "rmsprop",
    "rprop",
    "sgd",
]
