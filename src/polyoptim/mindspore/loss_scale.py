r"""MindSpore's loss scaling, for a torch training loop: ``mindspore.amp``'s managers and
``mindspore.nn``'s update cells, with MindSpore's defaults and update rules.

* :class:`FixedLossScaleManager` (``loss_scale=128.0, drop_overflow_update=True``): a constant
  scale; its update cell skips the optimizer on overflow (``drop_overflow_update=False`` gives
  no update cell: the step always runs, and the optimizer's own ``loss_scale`` must divide
  the gradients).
* :class:`DynamicLossScaleManager` (``init_loss_scale=2**24, scale_factor=2,
  scale_window=2000``), host-side rule of ``update_loss_scale(overflow)``:

  .. math::
      \text{overflow: } s \leftarrow \max(s / f,\ 1),\quad \ell \leftarrow i; \qquad
      \text{else if } (i - \ell) \bmod w = 0:\ s \leftarrow s f; \qquad i \leftarrow i + 1

  with :math:`i` the iteration (from 1) and :math:`\ell` the last overflow (from 0).
* :class:`DynamicLossScaleUpdateCell`, the in-graph rule that
  :class:`~polyoptim.mindspore.TrainOneStepWithLossScaleCell` calls: on overflow
  :math:`s \leftarrow \max(s/f, 1)`; when :math:`i - \ell \ge w` (and no overflow)
  :math:`s \leftarrow s f`; :math:`\ell \leftarrow i` on either; :math:`i \leftarrow i+1`.
  Note the two rules differ (``>= w`` since the last reset vs a multiple of ``w``), as in
  MindSpore.

Example:
    >>> import torch
    >>> from polyoptim import mindspore as ms
    >>> cell = ms.DynamicLossScaleManager(init_loss_scale=8, scale_window=2).get_update_cell()
    >>> scale = torch.tensor(8.0)
    >>> [bool(cell(scale, o)) or float(scale) for o in (False, False, True)]
    [8.0, 16.0, True]
    >>> float(scale)
    8.0
"""

from __future__ import annotations

from typing import Any

import torch

from . import _validator as V

__all__ = [
    "DynamicLossScaleManager",
    "DynamicLossScaleUpdateCell",
    "FixedLossScaleManager",
    "FixedLossScaleUpdateCell",
    "LossScaleManager",
]


def _as_bool(overflow: Any) -> bool:
    return bool(overflow.item() if isinstance(overflow, torch.Tensor) else overflow)


class DynamicLossScaleUpdateCell(torch.nn.Module):
    """MindSpore's ``nn.DynamicLossScaleUpdateCell``: ``cell(loss_scale, overflow)`` updates the
    0-d ``loss_scale`` tensor in place (module docstring) and returns ``overflow``.

    Args:
        loss_scale_value: the initial scale (``get_loss_scale()``).
        scale_factor: the factor of increase and decrease.
        scale_window: clean steps before an increase.

    Its counters are buffers named as MindSpore names them (``current_iterator_step``,
    ``last_overflow_iterator_step``), so they travel in checkpoints.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as ms
        >>> cell = ms.DynamicLossScaleUpdateCell(1024.0, scale_factor=2.0, scale_window=1000)
        >>> scale = torch.tensor(1024.0)
        >>> cell(scale, True), scale  # an overflow halves the scale
        (True, tensor(512.))
    """

    def __init__(self, loss_scale_value: float, scale_factor: float, scale_window: int) -> None:
        super().__init__()
        self.loss_scale_value = loss_scale_value
        self.scale_factor = float(scale_factor)
        self.scale_window = int(scale_window)
        self.register_buffer("current_iterator_step", torch.tensor(1, dtype=torch.int32))
        self.register_buffer("last_overflow_iterator_step", torch.tensor(0, dtype=torch.int32))

    def get_loss_scale(self) -> float:
        """The initial loss scale."""
        return self.loss_scale_value

    @torch.no_grad()
    def forward(self, loss_scale: torch.Tensor, overflow: Any) -> Any:
        over = _as_bool(overflow)
        cur = int(self.current_iterator_step)
        last = int(self.last_overflow_iterator_step)
        f = torch.tensor(self.scale_factor, dtype=torch.float32)
        scale = loss_scale.detach().to(torch.float32)
        if over:
            scale = torch.maximum(scale * torch.reciprocal(f), torch.ones_like(scale))
        should_inc = cur - last >= self.scale_window
        if over or should_inc:
            self.last_overflow_iterator_step.fill_(cur)
        if should_inc and not over:
            scale = scale * f
        loss_scale.copy_(scale.to(loss_scale.dtype))
        self.current_iterator_step.fill_(cur + 1)
        return overflow


class FixedLossScaleUpdateCell(torch.nn.Module):
    """MindSpore's ``nn.FixedLossScaleUpdateCell``: the scale never changes; ``cell(scale,
    overflow)`` returns ``overflow`` (so the training cell skips the step on overflow).

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as ms
        >>> cell = ms.FixedLossScaleUpdateCell(64.0)
        >>> scale = torch.tensor(64.0)
        >>> cell(scale, True), scale, cell.get_loss_scale()
        (True, tensor(64.), 64.0)
    """

    def __init__(self, loss_scale_value: float) -> None:
        super().__init__()
        self.loss_scale_value = loss_scale_value

    def get_loss_scale(self) -> float:
        """The loss scale."""
        return self.loss_scale_value

    def forward(self, loss_scale: torch.Tensor, overflow: Any) -> Any:
        return overflow


class LossScaleManager:
    """Base class of MindSpore's loss-scale managers (``mindspore.amp.LossScaleManager``).

    A subclass implements :meth:`get_loss_scale`, :meth:`update_loss_scale` and
    :meth:`get_update_cell`; :class:`FixedLossScaleManager` and
    :class:`DynamicLossScaleManager` are the two MindSpore ships.

    Example:
        >>> from polyoptim import mindspore as ms
        >>> class Constant(ms.LossScaleManager):
        ...     def get_loss_scale(self):
        ...         return 8.0
        >>> Constant().get_loss_scale(), Constant().get_drop_overflow_update()
        (8.0, True)
    """

    def get_loss_scale(self) -> float:
        """The current loss scale."""
        raise NotImplementedError

    def update_loss_scale(self, overflow: bool) -> None:
        """Update the scale after a step that did (or did not) overflow."""
        raise NotImplementedError

    def get_update_cell(self) -> torch.nn.Module | None:
        """The update cell for :class:`~polyoptim.mindspore.TrainOneStepWithLossScaleCell`."""
        raise NotImplementedError

    def get_drop_overflow_update(self) -> bool:
        """Whether a step that overflows is skipped."""
        return True


class FixedLossScaleManager(LossScaleManager):
    """MindSpore's ``amp.FixedLossScaleManager``: a constant loss scale.

    Args:
        loss_scale: the scale, ``>= 1`` (default 128.0).
        drop_overflow_update: skip the optimizer on overflow (default True); False runs
            every step (then give the optimizer the same ``loss_scale`` so it divides the
            gradients).

    Raises:
        ValueError: ``loss_scale < 1``.

    Example:
        >>> from polyoptim import mindspore as ms
        >>> manager = ms.FixedLossScaleManager(1024.0)
        >>> manager.get_loss_scale(), manager.get_update_cell()
        (1024.0, FixedLossScaleUpdateCell())
        >>> ms.FixedLossScaleManager(1024.0, drop_overflow_update=False).get_update_cell() is None
        True
    """

    def __init__(self, loss_scale: float = 128.0, drop_overflow_update: bool = True) -> None:
        if loss_scale < 1:
            raise ValueError(f"The argument 'loss_scale' must be >= 1, but got {loss_scale}")
        self._loss_scale = loss_scale
        self._drop_overflow_update = drop_overflow_update

    def get_loss_scale(self) -> float:
        return self._loss_scale

    def get_drop_overflow_update(self) -> bool:
        return self._drop_overflow_update

    def update_loss_scale(self, overflow: bool) -> None:
        """Nothing: the scale is fixed."""

    def get_update_cell(self) -> FixedLossScaleUpdateCell | None:
        """A :class:`FixedLossScaleUpdateCell`, or None when ``drop_overflow_update`` is off."""
        if not self._drop_overflow_update:
            return None
        return FixedLossScaleUpdateCell(self._loss_scale)


class DynamicLossScaleManager(LossScaleManager):
    """MindSpore's ``amp.DynamicLossScaleManager`` (rule in the module docstring).

    Args:
        init_loss_scale: the initial scale, ``>= 1`` (default ``2**24``).
        scale_factor: the factor of increase and decrease, ``> 0`` (default 2).
        scale_window: clean steps between increases, a positive int (default 2000).

    Raises:
        ValueError: a bad argument, or more than 1000 overflows in a row
            (``RuntimeError``, as MindSpore).

    Example:
        >>> from polyoptim import mindspore as ms
        >>> manager = ms.DynamicLossScaleManager(init_loss_scale=1024, scale_window=2)
        >>> manager.update_loss_scale(True)  # an overflow halves the scale
        >>> manager.get_loss_scale()
        512.0
        >>> manager.update_loss_scale(False); manager.update_loss_scale(False)
        >>> manager.get_loss_scale()  # two clean steps double it
        1024.0
    """

    def __init__(
        self, init_loss_scale: float = 2**24, scale_factor: float = 2, scale_window: int = 2000
    ) -> None:
        if init_loss_scale < 1.0:
            raise ValueError(
                f"The argument 'init_loss_scale' must be > 1, but got {init_loss_scale}"
            )
        self.loss_scale = init_loss_scale
        V.check_positive_int(scale_window, "scale_window", type(self).__name__)
        self.scale_window = scale_window
        if scale_factor <= 0:
            raise ValueError(f"The argument 'scale_factor' must be > 0, but got {scale_factor}")
        self.scale_factor = scale_factor
        self.increase_ratio = scale_factor
        self.decrease_ratio = 1 / scale_factor
        self.cur_iter = 1
        self.last_overflow_iter = 0
        self.bad_step_max = 1000
        self.bad_step = 0

    def get_loss_scale(self) -> float:
        return self.loss_scale

    def update_loss_scale(self, overflow: bool) -> None:
        if overflow:
            self.loss_scale = max(self.loss_scale * self.decrease_ratio, 1)
            self.last_overflow_iter = self.cur_iter
            self.bad_step += 1
        else:
            if (self.cur_iter - self.last_overflow_iter) % self.scale_window == 0:
                self.loss_scale *= self.increase_ratio
            self.bad_step = 0
        if self.bad_step > self.bad_step_max:
            raise RuntimeError(
                "Dynamic loss scale Continuous overflow ",
                self.bad_step,
                " times, has exceeded maximum threshold.",
            )
        self.cur_iter += 1

    def get_update_cell(self) -> DynamicLossScaleUpdateCell:
        return DynamicLossScaleUpdateCell(self.loss_scale, self.scale_factor, self.scale_window)
