r"""``paddle.amp`` for a torch training loop: :class:`GradScaler` with Paddle's defaults, checks,
state names and update rule, and :func:`auto_cast` (``torch.autocast`` under Paddle's name).

The dynamic rule (Paddle's ``AmpScaler._update``), after each step:

.. math::
    \text{inf/nan found: } n_{good} \leftarrow 0,\ n_{bad} \mathrel{+}= 1,\
    \text{if } n_{bad} = N_{decr}: s \leftarrow s \cdot r_{decr},\ n_{bad} \leftarrow 0;
    \qquad \text{else: } n_{bad} \leftarrow 0,\ n_{good} \mathrel{+}= 1,\
    \text{if } n_{good} = N_{incr}: s \leftarrow s \cdot r_{incr},\ n_{good} \leftarrow 0

(no floor: the scale may fall below 1, as in Paddle's dygraph). A step whose gradients hold an
inf or a nan is skipped: no parameter or state changes.

Differences from Paddle, on purpose: Paddle switches the scaler off on a CPU and when
``scale()`` is called outside ``auto_cast(dtype='float16')`` (with a warning); a port keeps the
scaling it asked for on every device, so here ``enable`` alone decides.

Example:
    >>> import torch
    >>> from polyoptim import paddle as P
    >>> model = P.adopt(torch.nn.Linear(3, 1))
    >>> opt = P.AdamW(learning_rate=1e-3, parameters=model.parameters())
    >>> scaler = P.amp.GradScaler(init_loss_scaling=1024)
    >>> loss = model(torch.ones(2, 3)).mean()
    >>> scaler.scale(loss).backward()
    >>> _ = scaler.minimize(opt, scaler.scale(loss)); opt.clear_grad()
    >>> float(scaler._scale[0]), scaler._incr_count
    (1024.0, 1)
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

import numpy as np
import torch

__all__ = ["AmpScaler", "GradScaler", "auto_cast"]

_INIT, _UNSCALED, _STEPPED = "init", "unscaled", "stepped"


def _fresh_states() -> defaultdict[int, str]:
    return defaultdict(lambda: _INIT)


class AmpScaler:
    """Paddle's ``AmpScaler`` (``GradScaler`` is it with ``2**16`` and 2000 as defaults)."""

    def __init__(
        self,
        enable: bool = True,
        init_loss_scaling: float = 2.0**15,
        incr_ratio: float = 2.0,
        decr_ratio: float = 0.5,
        incr_every_n_steps: int = 1000,
        decr_every_n_nan_or_inf: int = 1,
        use_dynamic_loss_scaling: bool = True,
    ) -> None:
        self._enable = bool(enable)
        self._use_dynamic_loss_scaling = False
        self._init_loss_scaling = 1.0
        self._scale: torch.Tensor | None = None
        if self._enable:
            assert incr_ratio > 1.0, "The incr_ratio must be > 1.0."
            assert decr_ratio < 1.0, "The decr_ratio must be < 1.0."
            self._init_loss_scaling = init_loss_scaling
            self._incr_ratio = incr_ratio
            self._decr_ratio = decr_ratio
            self._incr_every_n_steps = incr_every_n_steps
            self._decr_every_n_nan_or_inf = decr_every_n_nan_or_inf
            self._incr_count = 0
            self._decr_count = 0
            self._use_dynamic_loss_scaling = use_dynamic_loss_scaling
            self._scale = torch.tensor([init_loss_scaling], dtype=torch.float32)
            self._found_inf = False
            self._cache_found_inf: bool | None = None
            self._optimizer_states = _fresh_states()

    # -- scaling --------------------------------------------------------------------------------
    def scale(self, var: torch.Tensor) -> torch.Tensor:
        """``var`` times the loss scale (unchanged when disabled).

        Raises:
            TypeError: ``var`` is not a tensor.
        """
        if not isinstance(var, torch.Tensor):
            raise TypeError(
                f"The type of 'var' in AmpScaler.scale() must be Tensor, but received {type(var)}."
            )
        if not self._enable:
            return var
        assert self._scale is not None
        return var * self._scale.to(var.device)

    @staticmethod
    def _grads(optimizer: Any) -> list[torch.Tensor]:
        return [
            p.grad
            for group in optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]

    @torch.no_grad()
    def _unscale(self, optimizer: Any) -> None:
        if not self._enable:
            return
        state = self._optimizer_states[id(optimizer)]
        if state == _UNSCALED:
            raise RuntimeError(
                "unscale_() has already been called on this optimizer since the last update()."
            )
        if state == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        assert self._scale is not None
        found = False
        for g in self._grads(optimizer):
            inv = torch.reciprocal(self._scale.to(device=g.device, dtype=torch.float32))
            values = g.coalesce().values() if g.is_sparse else g
            found = found or not bool(torch.isfinite(values).all())
            if g.is_sparse:
                g.mul_(inv.to(g.dtype).reshape(()))
            else:
                g.copy_((g.to(torch.float32) * inv).to(g.dtype))
        self._found_inf = found
        self._optimizer_states[id(optimizer)] = _UNSCALED

    def unscale_(self, optimizer: Any) -> None:
        """Divide the optimizer's gradients by the scale and look for infs and nans (once
        per step)."""
        self._unscale(optimizer)

    # -- stepping -------------------------------------------------------------------------------
    def minimize(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """Unscale (unless done), run ``optimizer.minimize(*args)`` unless an inf or nan was
        found, then update the scale. Returns what ``minimize`` returned (``(None, None)``
        when skipped)."""
        if not self._enable:
            return optimizer.minimize(*args, **kwargs)
        if self._optimizer_states[id(optimizer)] == _INIT:
            self._unscale(optimizer)
        result: Any = (None, None)
        if self._found_inf:
            self._cache_found_inf = True
        else:
            result = optimizer.minimize(*args, **kwargs)
            self._cache_found_inf = False
        if self._use_dynamic_loss_scaling:
            self._update()
        self._optimizer_states = _fresh_states()
        return result

    def step(self, optimizer: Any) -> None:
        """Unscale (unless done) and run ``optimizer.step()`` unless an inf or nan was found;
        call :meth:`update` afterwards.

        Raises:
            RuntimeError: ``step`` twice before ``update``.
        """
        if not self._enable:
            optimizer.step()
            return
        state = self._optimizer_states[id(optimizer)]
        if state == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state == _INIT:
            self._unscale(optimizer)
        if self._found_inf:
            self._cache_found_inf = True
        else:
            optimizer.step()
            self._cache_found_inf = False
        self._optimizer_states[id(optimizer)] = _STEPPED
        if not self._use_dynamic_loss_scaling:
            self._optimizer_states = _fresh_states()

    def update(self) -> None:
        """Update the scale (dynamic scaling) after :meth:`step`."""
        if not self._enable:
            return
        if self._use_dynamic_loss_scaling:
            self._update()
            self._optimizer_states = _fresh_states()

    def _update(self) -> None:
        if not self._enable:
            return
        assert self._scale is not None
        if self._cache_found_inf:
            self._incr_count = 0
            self._decr_count += 1
            if self._decr_count == self._decr_every_n_nan_or_inf:
                self._scale = self._scale * self._decr_ratio
                self._decr_count = 0
        else:
            self._decr_count = 0
            self._incr_count += 1
            if self._incr_count == self._incr_every_n_steps:
                self._scale = self._scale * self._incr_ratio
                self._incr_count = 0

    # -- accessors ------------------------------------------------------------------------------
    def is_enable(self) -> bool:
        """Whether loss scaling is on."""
        return self._enable

    def is_use_dynamic_loss_scaling(self) -> bool:
        """Whether the scale is updated dynamically."""
        return self._use_dynamic_loss_scaling

    def get_init_loss_scaling(self) -> float:
        """The initial scale."""
        return self._init_loss_scaling

    def set_init_loss_scaling(self, new_init_loss_scaling: float) -> None:
        """Set the initial scale, and the current one to it."""
        self._init_loss_scaling = new_init_loss_scaling
        self._scale = torch.tensor([new_init_loss_scaling], dtype=torch.float32)

    def get_incr_ratio(self) -> float:
        return self._incr_ratio

    def set_incr_ratio(self, new_incr_ratio: float) -> None:
        assert new_incr_ratio > 1.0, "The new_incr_ratio must be > 1.0."
        self._incr_ratio = new_incr_ratio

    def get_decr_ratio(self) -> float:
        return self._decr_ratio

    def set_decr_ratio(self, new_decr_ratio: float) -> None:
        assert new_decr_ratio < 1.0, "The new_decr_ratio must be < 1.0."
        self._decr_ratio = new_decr_ratio

    def get_incr_every_n_steps(self) -> int:
        return self._incr_every_n_steps

    def set_incr_every_n_steps(self, new_incr_every_n_steps: int) -> None:
        self._incr_every_n_steps = new_incr_every_n_steps

    def get_decr_every_n_nan_or_inf(self) -> int:
        return self._decr_every_n_nan_or_inf

    def set_decr_every_n_nan_or_inf(self, new_decr_every_n_nan_or_inf: int) -> None:
        self._decr_every_n_nan_or_inf = new_decr_every_n_nan_or_inf

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Paddle's scaler state (``scale`` as a float32 array of shape [1]); ``{}`` when
        disabled."""
        if not self._enable:
            return {}
        assert self._scale is not None
        return {
            "scale": self._scale.numpy().copy(),
            "incr_ratio": self._incr_ratio,
            "decr_ratio": self._decr_ratio,
            "incr_every_n_steps": self._incr_every_n_steps,
            "decr_every_n_nan_or_inf": self._decr_every_n_nan_or_inf,
            "incr_count": self._incr_count,
            "decr_count": self._decr_count,
            "use_dynamic_loss_scaling": self._use_dynamic_loss_scaling,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load :meth:`state_dict` output (or Paddle's, from ``paddle.load``).

        Raises:
            RuntimeError: an empty state (saved from a disabled scaler).
        """
        if not self._enable:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The input state dict is empty, possibly because it was saved from a disabled "
                "instance of GradScaler."
            )
        scale = np.asarray(
            state_dict["scale"].cpu()
            if torch.is_tensor(state_dict["scale"])
            else state_dict["scale"]
        ).reshape(-1)
        self._init_loss_scaling = float(scale[0])
        self._scale = torch.tensor([self._init_loss_scaling], dtype=torch.float32)
        self._incr_ratio = state_dict["incr_ratio"]
        self._decr_ratio = state_dict["decr_ratio"]
        self._incr_every_n_steps = state_dict["incr_every_n_steps"]
        self._decr_every_n_nan_or_inf = state_dict["decr_every_n_nan_or_inf"]
        self._incr_count = state_dict["incr_count"]
        self._decr_count = state_dict["decr_count"]
        self._use_dynamic_loss_scaling = state_dict["use_dynamic_loss_scaling"]


class GradScaler(AmpScaler):
    """Paddle's ``paddle.amp.GradScaler``: dynamic loss scaling for a torch training loop.

    Args:
        enable: turn scaling on (default True).
        init_loss_scaling: the initial scale (default ``2**16``).
        incr_ratio: the factor of an increase, ``> 1`` (default 2).
        decr_ratio: the factor of a decrease, ``< 1`` (default 0.5).
        incr_every_n_steps: clean steps in a row before an increase (default 2000).
        decr_every_n_nan_or_inf: overflowing steps before a decrease (default 1).
        use_dynamic_loss_scaling: update the scale (default True); False keeps it fixed.

    Typical Paddle loop, unchanged::

        scaler = paddle.amp.GradScaler(init_loss_scaling=1024)
        with paddle.amp.auto_cast():
            loss = model(x).mean()
        scaled = scaler.scale(loss)
        scaled.backward()
        scaler.minimize(optimizer, scaled)     # or: scaler.step(optimizer); scaler.update()
        optimizer.clear_grad()
    """

    def __init__(
        self,
        enable: bool = True,
        init_loss_scaling: float = 2.0**16,
        incr_ratio: float = 2.0,
        decr_ratio: float = 0.5,
        incr_every_n_steps: int = 2000,
        decr_every_n_nan_or_inf: int = 1,
        use_dynamic_loss_scaling: bool = True,
    ) -> None:
        super().__init__(
            enable,
            init_loss_scaling,
            incr_ratio,
            decr_ratio,
            incr_every_n_steps,
            decr_every_n_nan_or_inf,
            use_dynamic_loss_scaling,
        )


def auto_cast(
    enable: bool = True,
    custom_white_list: Any = None,
    custom_black_list: Any = None,
    level: str = "O1",
    dtype: str = "float16",
    use_promote: bool = True,
    device_type: str | None = None,
) -> torch.autocast:
    """``paddle.amp.auto_cast`` as ``torch.autocast``: ``dtype`` ``'float16'`` or
    ``'bfloat16'`` on ``device_type`` (default: CUDA when available, else the CPU). Paddle's
    white and black op lists have no torch counterpart and are ignored (with a warning).

    Raises:
        ValueError: another ``dtype`` or ``level``.
    """
    if dtype not in ("float16", "bfloat16"):
        raise ValueError("If enable amp, dtype should be 'float16' or 'bfloat16'.")
    if level not in ("O0", "OD", "O1", "O2"):
        raise ValueError("level should be O0, OD, O1 or O2.")
    if custom_white_list or custom_black_list:
        warnings.warn(
            "auto_cast: custom_white_list/custom_black_list have no torch.autocast counterpart "
            "and are ignored",
            stacklevel=2,
        )
    device = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.autocast(
        device_type=device,
        dtype=getattr(torch, dtype),
        enabled=bool(enable) and level != "O0",
    )
