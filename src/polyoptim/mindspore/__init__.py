"""MindSpore's optimizer system on PyTorch tensors: ``from polyoptim import mindspore as nn``.

The classes, signatures, defaults, checks, group semantics, gradient pipeline, update rules,
learning-rate schedules and checkpoint names of ``mindspore.nn`` (2.10.0), over polyoptim's
engine. See docs/mindspore.md for the porting guide and every difference from MindSpore's CPU
kernels.

Example:
    >>> import torch
    >>> from polyoptim import mindspore as nn
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = nn.Adam(model.named_parameters(), learning_rate=nn.WarmUpLR(0.01, 10))
    >>> model(torch.randn(3, 4)).pow(2).mean().backward()
    >>> _ = opt.step()                       # or opt(grads), grads in opt.parameters order
    >>> opt.global_step
    1
"""

from types import SimpleNamespace

from .adafactor import AdaFactor
from .adagrad import FTRL, Adadelta, Adagrad, ProximalAdagrad
from .adam import Adam, AdaMax, AdamOffload, AdamWeightDecay, LazyAdam
from .adopt import adopt
from .asgd import ASGD
from .checkpoint import CheckpointError, load_checkpoint, load_param_into_net, save_checkpoint
from .dynamic_lr import (
    cosine_decay_lr,
    exponential_decay_lr,
    inverse_decay_lr,
    natural_exp_decay_lr,
    piecewise_constant_lr,
    polynomial_decay_lr,
    warmup_lr,
)
from .lamb import Lamb
from .lars import LARS
from .learning_rate_schedule import (
    CosineDecayLR,
    ExponentialDecayLR,
    InverseDecayLR,
    LearningRateSchedule,
    NaturalExpDecayLR,
    PolynomialDecayLR,
    WarmUpLR,
)
from .loss_scale import (
    DynamicLossScaleManager,
    DynamicLossScaleUpdateCell,
    FixedLossScaleManager,
    FixedLossScaleUpdateCell,
    LossScaleManager,
)
from .momentum import SGD, Momentum
from .optimizer import Optimizer, ParameterTuple
from .rmsprop import RMSProp
from .rprop import Rprop
from .train_cell import (
    ClipByNorm,
    TrainOneStepCell,
    TrainOneStepWithLossScaleCell,
    WithLossCell,
    clip_by_global_norm,
)

#: ``mindspore.amp``'s loss-scale managers
amp = SimpleNamespace(
    LossScaleManager=LossScaleManager,
    FixedLossScaleManager=FixedLossScaleManager,
    DynamicLossScaleManager=DynamicLossScaleManager,
)
#: the ``mindspore.ops`` functions training code calls on gradients
ops = SimpleNamespace(clip_by_global_norm=clip_by_global_norm)

__all__ = [
    "ClipByNorm",
    "DynamicLossScaleManager",
    "DynamicLossScaleUpdateCell",
    "FixedLossScaleManager",
    "FixedLossScaleUpdateCell",
    "LossScaleManager",
    "TrainOneStepCell",
    "TrainOneStepWithLossScaleCell",
    "WithLossCell",
    "amp",
    "clip_by_global_norm",
    "ops",
    "ASGD",
    "AdaFactor",
    "AdaMax",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamOffload",
    "AdamWeightDecay",
    "CheckpointError",
    "CosineDecayLR",
    "ExponentialDecayLR",
    "FTRL",
    "InverseDecayLR",
    "LARS",
    "Lamb",
    "LazyAdam",
    "LearningRateSchedule",
    "Momentum",
    "NaturalExpDecayLR",
    "Optimizer",
    "ParameterTuple",
    "PolynomialDecayLR",
    "ProximalAdagrad",
    "RMSProp",
    "Rprop",
    "SGD",
    "WarmUpLR",
    "adopt",
    "cosine_decay_lr",
    "exponential_decay_lr",
    "inverse_decay_lr",
    "load_checkpoint",
    "load_param_into_net",
    "natural_exp_decay_lr",
    "piecewise_constant_lr",
    "polynomial_decay_lr",
    "save_checkpoint",
    "warmup_lr",
]
