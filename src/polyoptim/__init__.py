"""polyoptim: the optimizer systems of PyTorch, PaddlePaddle and MindSpore on PyTorch tensors.

``import polyoptim as optim`` is a drop-in replacement for ``torch.optim``: same classes,
signatures, defaults, error messages, state_dict format and numbers.
"""

from torch.optim import lr_scheduler, swa_utils
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from .engine import Optimizer
from .factory import create_optimizer, get_optimizer_class, list_optimizers
from .optimizers import (
    ASGD,
    LBFGS,
    SGD,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Muon,
    NAdam,
    RAdam,
    RMSprop,
    Rprop,
    SparseAdam,
)
from .timm_registry import register_timm

__version__ = "0.1.0"

__all__ = [
    "ASGD",
    "Adafactor",
    "LBFGS",
    "Muon",
    "SparseAdam",
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
    "create_optimizer",
    "get_optimizer_class",
    "list_optimizers",
    "lr_scheduler",
    "register_timm",
    "register_optimizer_step_post_hook",
    "register_optimizer_step_pre_hook",
    "swa_utils",
]
