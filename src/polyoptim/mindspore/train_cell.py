r"""MindSpore's training wrappers around a torch module: ``nn.WithLossCell``,
``nn.TrainOneStepCell``, ``nn.TrainOneStepWithLossScaleCell``, and the clipping functions
MindSpore code calls on gradient tuples (``nn.ClipByNorm``, ``ops.clip_by_global_norm``).

One call of a training cell is one MindSpore step: the loss, the gradients of the optimizer's
parameters (``torch.autograd.grad``, so ``.grad`` is left alone; an unused parameter gets
zeros), then ``optimizer(grads)``. With loss scaling:

.. math::
    g = \nabla (s \cdot L) \cdot s^{-1}, \quad
    \text{overflow} = \exists\, \text{non-finite in } g, \quad
    \text{update}(s, \text{overflow}), \quad \text{optimizer}(g) \text{ unless overflow}

returning ``(loss, overflow, scale)``.

Example:
    >>> import torch
    >>> from polyoptim import mindspore as ms
    >>> torch.manual_seed(0) and None
    >>> net = ms.adopt(torch.nn.Linear(3, 1))
    >>> opt = ms.Momentum(net.trainable_params(), learning_rate=0.1, momentum=0.9)
    >>> manager = ms.DynamicLossScaleManager(init_loss_scale=2.0**10, scale_window=1000)
    >>> step = ms.TrainOneStepWithLossScaleCell(
    ...     ms.WithLossCell(net, torch.nn.MSELoss()), opt, scale_sense=manager.get_update_cell())
    >>> loss, overflow, scale = step(torch.ones(4, 3), torch.zeros(4, 1))
    >>> bool(overflow), float(scale), opt.global_step
    (False, 1024.0, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .adopt import MindSporeParameterMixin
from .loss_scale import DynamicLossScaleUpdateCell, FixedLossScaleUpdateCell

__all__ = [
    "ClipByNorm",
    "TrainOneStepCell",
    "TrainOneStepWithLossScaleCell",
    "WithLossCell",
    "clip_by_global_norm",
]


class _Cell(torch.nn.Module):
    """MindSpore's ``Cell`` methods a training script calls on the wrappers."""

    def set_train(self, mode: bool = True) -> _Cell:
        """Training (True) or inference mode: torch's ``train(mode)``."""
        return self.train(mode)


class WithLossCell(_Cell):
    """``loss_fn(backbone(data), label)`` (MindSpore's ``nn.WithLossCell``).

    Args:
        backbone: the network.
        loss_fn: a loss taking ``(output, label)``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as ms
        >>> net = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = net.weight.fill_(0.5), net.bias.zero_()
        >>> loss_net = ms.WithLossCell(net, torch.nn.MSELoss())
        >>> loss_net(torch.ones(1, 2), torch.zeros(1, 1)).item()
        1.0
        >>> loss_net.backbone_network is net
        True
    """

    def __init__(self, backbone: torch.nn.Module, loss_fn: Any) -> None:
        super().__init__()
        self._backbone = backbone
        self._loss_fn = loss_fn

    def forward(self, data: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self._loss_fn(self._backbone(data), label)

    @property
    def backbone_network(self) -> torch.nn.Module:
        """The wrapped network."""
        return self._backbone


class TrainOneStepCell(_Cell):
    """One training step per call: ``loss = network(*inputs)``, gradients of the optimizer's
    parameters (times ``sens``, default 1), ``optimizer(grads)``; returns ``loss`` (and
    ``{name: grad}`` with ``return_grad=True``). MindSpore's ``nn.TrainOneStepCell``.

    Args:
        network: a module returning the loss (e.g. :class:`WithLossCell`).
        optimizer: a MindSpore-dialect optimizer.
        sens: the gradient of the loss fed to backpropagation (None: 1.0).
        return_grad: also return the gradients by parameter name.

    Raises:
        ValueError: ``sens == 0``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as ms
        >>> net = ms.adopt(torch.nn.Linear(2, 1))
        >>> with torch.no_grad():
        ...     _ = net.weight.fill_(0.5), net.bias.zero_()
        >>> opt = ms.SGD(net.trainable_params(), learning_rate=0.1)
        >>> step = ms.TrainOneStepCell(ms.WithLossCell(net, torch.nn.MSELoss()), opt)
        >>> x, y = torch.ones(1, 2), torch.zeros(1, 1)
        >>> step(x, y), step(x, y)  # the loss before each step
        (tensor(1.), tensor(0.1600))
    """

    def __init__(
        self,
        network: torch.nn.Module,
        optimizer: Any,
        sens: float | None = None,
        return_grad: bool = False,
    ) -> None:
        super().__init__()
        self.network = network
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        if sens == 0:
            raise ValueError("The input argument of 'sens' can not be 0.")
        self.sense_flag = sens is not None
        self.sens = 1.0 if sens is None else sens
        self.return_grad = return_grad

    def _grads(self, loss: torch.Tensor, sens: torch.Tensor | float) -> tuple[torch.Tensor, ...]:
        fill = torch.ones_like(loss) * sens
        found = torch.autograd.grad(loss, list(self.weights), grad_outputs=fill, allow_unused=True)
        return tuple(torch.zeros_like(w) if g is None else g for w, g in zip(self.weights, found))

    def parameters_dict(self) -> dict[str, torch.Tensor]:
        """Everything MindSpore's ``save_checkpoint(train_cell)`` writes, by MindSpore name:
        the network's tensors (adopted ones by their ``.name``, including BatchNorm statistics;
        other parameters by their ``state_dict`` key), the optimizer's entries and, with loss
        scaling, ``scale_sense`` and the update cell's counters."""
        from .checkpoint import optimizer_entries

        out: dict[str, torch.Tensor] = {}
        for key, t in self.network.state_dict(keep_vars=True).items():
            if isinstance(t, MindSporeParameterMixin):
                out[t.name] = t
            elif isinstance(t, torch.nn.Parameter):
                out[key] = t
        out.update(optimizer_entries(self.optimizer))
        out.update(self._scale_entries())
        return out

    def _scale_entries(self) -> dict[str, torch.Tensor]:
        return {}

    def forward(self, *inputs: Any) -> Any:
        loss = self.network(*inputs)
        grads = self._grads(loss, self.sens)
        self.optimizer(grads)
        loss = loss.detach()
        if self.return_grad:
            return loss, dict(zip(self.weights.names, grads))
        return loss


class TrainOneStepWithLossScaleCell(TrainOneStepCell):
    """A training step with loss scaling and overflow skipping (module docstring);
    MindSpore's ``nn.TrainOneStepWithLossScaleCell``. Returns ``(loss, overflow, scale)``.

    Args:
        network: a module returning the loss.
        optimizer: a MindSpore-dialect optimizer.
        scale_sense: an update cell (``manager.get_update_cell()``:
            :class:`~polyoptim.mindspore.DynamicLossScaleUpdateCell` or
            :class:`~polyoptim.mindspore.FixedLossScaleUpdateCell`), or a 0-d/1-element
            tensor holding a scale that only :meth:`set_sense_scale` changes.

    Raises:
        TypeError: ``scale_sense`` is neither.
        ValueError: a tensor ``scale_sense`` of another shape.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as ms
        >>> net = ms.adopt(torch.nn.Linear(2, 1))
        >>> with torch.no_grad():
        ...     _ = net.weight.fill_(0.5), net.bias.zero_()
        >>> opt = ms.SGD(net.trainable_params(), learning_rate=0.1)
        >>> manager = ms.DynamicLossScaleManager(init_loss_scale=1024)
        >>> step = ms.TrainOneStepWithLossScaleCell(
        ...     ms.WithLossCell(net, torch.nn.MSELoss()), opt, manager.get_update_cell())
        >>> step(torch.ones(1, 2), torch.zeros(1, 1))  # (loss, overflow, scale)
        (tensor(1.), tensor(False), tensor(1024.))
    """

    def __init__(self, network: torch.nn.Module, optimizer: Any, scale_sense: Any) -> None:
        super().__init__(network, optimizer, sens=None)
        self.loss_scaling_manager: torch.nn.Module | None = None
        if isinstance(scale_sense, DynamicLossScaleUpdateCell | FixedLossScaleUpdateCell):
            self.loss_scaling_manager = scale_sense
            value = torch.tensor(scale_sense.get_loss_scale(), dtype=torch.float32)
        elif isinstance(scale_sense, torch.Tensor):
            if tuple(scale_sense.shape) not in ((1,), ()):
                raise ValueError(
                    "For 'TrainOneStepWithLossScaleCell', the shape of 'scale_sense' must be (1,) "
                    f"or (), but got {tuple(scale_sense.shape)}."
                )
            value = scale_sense.detach().clone()
        else:
            raise TypeError(
                "For 'TrainOneStepWithLossScaleCell', the 'scale_sense' must be Cell or Tensor, "
                f"but got 'scale_sense' type: {type(scale_sense)}."
            )
        self.register_buffer("scale_sense", value)

    def _scale_entries(self) -> dict[str, torch.Tensor]:
        out = {"scale_sense": self.scale_sense}
        if isinstance(self.loss_scaling_manager, DynamicLossScaleUpdateCell):
            out.update(self.loss_scaling_manager.state_dict(keep_vars=True))
        return out

    def set_sense_scale(self, sens: torch.Tensor) -> None:
        """Set a tensor ``scale_sense`` to a new value."""
        if not isinstance(sens, torch.Tensor):
            raise TypeError(
                "For 'TrainOneStepWithLossScaleCell', the type of 'sens' must be Tensor, but got "
                f"{type(sens)}"
            )
        self.scale_sense.copy_(sens.reshape(self.scale_sense.shape))

    def process_loss_scale(self, overflow: torch.Tensor) -> Any:
        """Run the update cell (when there is one); returns ``overflow``."""
        if self.loss_scaling_manager is not None:
            return self.loss_scaling_manager(self.scale_sense, overflow)
        return overflow

    @staticmethod
    def get_overflow_status(grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """True when any gradient holds an inf or a nan."""
        if not grads:
            return torch.tensor(False)
        return torch.stack([~torch.isfinite(g).all() for g in grads]).any()

    def forward(self, *inputs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loss = self.network(*inputs)
        scale = self.scale_sense.to(loss.dtype)
        grads = self._grads(loss, scale)
        with torch.no_grad():
            grads = tuple(g * torch.reciprocal(self.scale_sense).to(g.dtype) for g in grads)
        cond = self.get_overflow_status(grads)
        overflow = self.process_loss_scale(cond)
        if not bool(overflow):
            self.optimizer(grads)
        return loss.detach(), cond, self.scale_sense


class ClipByNorm(torch.nn.Module):
    r"""MindSpore's ``nn.ClipByNorm``: ``cell(x, clip_norm)`` is
    :math:`x \cdot c / \max(\lVert x\rVert_2, c)` (norm over ``axis``, all by default).

    Example:
        >>> import torch
        >>> ClipByNorm()(torch.tensor([3.0, 4.0]), 1.0)
        tensor([0.6000, 0.8000])
    """

    def __init__(self, axis: int | Sequence[int] | None = None) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor, clip_norm: float | torch.Tensor) -> torch.Tensor:
        c = torch.as_tensor(clip_norm, dtype=torch.float32)
        x32 = x.to(torch.float32)
        dims = None if self.axis is None else self.axis
        norm = torch.sqrt(torch.sum(x32 * x32, dim=dims, keepdim=dims is not None))
        return x32 * c / torch.maximum(norm, c)


def clip_by_global_norm(
    x: Sequence[torch.Tensor], clip_norm: float = 1.0, use_norm: None = None
) -> tuple[torch.Tensor, ...]:
    r"""MindSpore's ``ops.clip_by_global_norm``: every tensor times
    :math:`c / \max(\sqrt{\sum_i \lVert x_i\rVert^2}, c)` (computed as ``x * c / g``, in float32,
    cast back to each tensor's dtype).

    Raises:
        ValueError: ``clip_norm <= 0`` or ``use_norm`` given.

    Example:
        >>> import torch
        >>> clip_by_global_norm((torch.tensor([3.0]), torch.tensor([4.0])), 1.0)
        (tensor([0.6000]), tensor([0.8000]))
    """
    if not isinstance(clip_norm, int | float) or isinstance(clip_norm, bool) or clip_norm <= 0:
        raise ValueError(
            f"For 'clip_by_global_norm', the 'clip_norm' must be greater than 0.0, but got "
            f"{clip_norm}."
        )
    if use_norm is not None:
        raise ValueError(
            "For '_ClipByGlobalNorm', input 'use_norm' only supports None currently, but got "
            f"'use_norm': {use_norm}"
        )
    c = torch.tensor([clip_norm], dtype=torch.float32)
    squares = [torch.sum(torch.square(t)).to(torch.float32).reshape(1) for t in x]
    global_norm = torch.sqrt(torch.stack(squares).sum(0))
    global_norm = torch.where(global_norm >= c, global_norm, c)
    return tuple((t * c / global_norm).to(t.dtype) for t in x)
