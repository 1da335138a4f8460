"""The PaddlePaddle dialect: ``from polyoptim import paddle as P``.

Paddle 3.3.1's optimizers, learning-rate schedulers, gradient clipping, regularizers, per-tensor
attributes and checkpoint files, on PyTorch tensors::

    from polyoptim import paddle as P

    sched = P.lr.CosineAnnealingDecay(learning_rate=1e-3, T_max=100)
    opt = P.AdamW(
        learning_rate=sched,
        parameters=model.named_parameters(),
        weight_decay=0.01,
        grad_clip=P.ClipGradByGlobalNorm(1.0),
        apply_decay_param_fun=lambda name: not name.endswith("bias"),
    )
    loss.backward(); opt.step(); opt.clear_grad(); sched.step()
    P.save(opt.state_dict(), "opt.pdopt")        # readable by paddle.load
    opt.set_state_dict(P.load("from_paddle.pdopt"))  # no Paddle needed, no pickle code run

Names follow Paddle: ``P.optimizer.Adam`` and ``P.Adam`` are the same class, as are
``P.nn.ClipGradByNorm``/``P.ClipGradByNorm`` and ``P.regularizer.L2Decay``/``P.L2Decay``.
See docs/paddle.md for the porting guide.
"""

from types import SimpleNamespace

from . import amp, clip, lr, regularizer
from .adam import Adam, Adamax, AdamW, Lamb, NAdam, RAdam
from .adaptive import ASGD, Adadelta, Adagrad, RMSProp, Rprop
from .adopt import adopt, unique_name_guard
from .base import Optimizer
from .checkpoint import load, save
from .clip import ClipGradBase, ClipGradByGlobalNorm, ClipGradByNorm, ClipGradByValue
from .lbfgs import LBFGS
from .param_attr import ParamAttr, param_attr, set_param_attr
from .regularizer import L1Decay, L2Decay
from .sgd import SGD, Momentum

#: ``paddle.optimizer`` (with ``.lr``)
optimizer = SimpleNamespace(
    Optimizer=Optimizer,
    SGD=SGD,
    Momentum=Momentum,
    Adam=Adam,
    AdamW=AdamW,
    Adamax=Adamax,
    Adagrad=Adagrad,
    Adadelta=Adadelta,
    RMSProp=RMSProp,
    Lamb=Lamb,
    NAdam=NAdam,
    RAdam=RAdam,
    ASGD=ASGD,
    Rprop=Rprop,
    LBFGS=LBFGS,
    lr=lr,
)
#: the clipping classes of ``paddle.nn``
nn = SimpleNamespace(
    ClipGradByValue=ClipGradByValue,
    ClipGradByNorm=ClipGradByNorm,
    ClipGradByGlobalNorm=ClipGradByGlobalNorm,
)

__all__ = [
    "ASGD",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "ClipGradBase",
    "ClipGradByGlobalNorm",
    "ClipGradByNorm",
    "ClipGradByValue",
    "L1Decay",
    "L2Decay",
    "LBFGS",
    "Lamb",
    "Momentum",
    "NAdam",
    "Optimizer",
    "ParamAttr",
    "RAdam",
    "RMSProp",
    "Rprop",
    "adopt",
    "amp",
    "clip",
    "load",
    "lr",
    "nn",
    "optimizer",
    "param_attr",
    "regularizer",
    "save",
    "set_param_attr",
    "unique_name_guard",
]
