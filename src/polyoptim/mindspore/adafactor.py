"""MindSpore's ``AdaFactor`` (rule: :mod:`polyoptim.rules.fairseq_adafactor`)."""

from __future__ import annotations

from typing import Any

import torch

from ..rules.fairseq_adafactor import adafactor_step, relative_step_size, second_moment_weight
from . import _validator as V
from .optimizer import Optimizer, f32, unsupported_type

__all__ = ["AdaFactor"]


class AdaFactor(Optimizer):
    r"""Adafactor (Shazeer & Stern, 2018) as MindSpore's ``nn.AdaFactor`` (fairseq's form).

    Factored second moments for tensors of two or more dimensions, an update clipped by its
    RMS, an optional first moment, and a relative step size; see
    :mod:`polyoptim.rules.fairseq_adafactor` for the math. The gradient reaches the rule as
    given (no loss scale, decay filter or centralization, as in MindSpore); the decay
    :math:`p \leftarrow p - \lambda\alpha_t p` applies to every parameter.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts (``lr`` in groups is refused
            by MindSpore; group ``weight_decay`` is ignored, as there).
        learning_rate: ``None`` with ``relative_step`` (the step size is then
            :math:`\min(10^{-2}, 1/\sqrt t)`), else any learning-rate kind.
        eps: :math:`(\epsilon_1, \epsilon_2)`: added to :math:`g^2`; floor of the parameter RMS.
        clip_threshold: :math:`d`.
        decay_rate: :math:`c` in :math:`\hat\beta_{2,t} = 1 - t^{-c}`.
        beta1: first-moment decay (0 or ``None``: no first moment).
        weight_decay: :math:`\lambda \in [0, 1)`.
        scale_parameter: scale the step by :math:`\max(\epsilon_2, \mathrm{RMS}(p))`.
        relative_step: compute the step size from the step count.
        warmup_init: :math:`\min(10^{-6} t, 1/\sqrt t)` instead.
        compression: keep the unfactored second moment in float16.
        loss_scale: accepted and unused (as in MindSpore).

    State: ``exp_avg.<name>``, ``exp_avg_sq_row_<name>``, ``exp_avg_sq_col_<name>``,
    ``exp_avg_sq_<name>`` and ``afactor_step``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> model = torch.nn.Linear(4, 3)
        >>> opt = nn.AdaFactor(model.named_parameters())
        >>> model(torch.randn(2, 4)).sum().backward(); _ = opt.step()
        >>> [tuple(t.shape) for t in opt.state[model.weight].values()]   # step, m, R, C, V
        [(1,), (3, 4), (3,), (4,), (1,)]
    """

    _pipeline = ()
    _ckpt_slots = (
        ("exp_avg.{}", "exp_avg"),
        ("exp_avg_sq_row_{}", "exp_avg_sq_row"),
        ("exp_avg_sq_col_{}", "exp_avg_sq_col"),
        ("exp_avg_sq_{}", "exp_avg_sq"),
    )
    _ckpt_globals = (("afactor_step", "step", (1,)),)

    _dtype_refusal = unsupported_type("FusedAdaFactor")

    def __init__(
        self,
        params: Any,
        learning_rate: Any = None,
        eps: tuple[float, float] = (1e-30, 1e-3),
        clip_threshold: float = 1.0,
        decay_rate: float = 0.8,
        beta1: float | None = 0.9,
        weight_decay: float = 0.0,
        scale_parameter: bool = True,
        relative_step: bool = True,
        warmup_init: bool = False,
        compression: bool = False,
        loss_scale: float = 1.0,
    ) -> None:
        if learning_rate is not None and relative_step:
            raise ValueError("Cannot combine manual lr and relative_step options", learning_rate)
        if warmup_init and not relative_step:
            raise ValueError("warmup_init requires relative_step=True")
        if learning_rate is None and not relative_step:
            raise ValueError("Cannot learning_rate is None and relative_step=False")
        if learning_rate is None:
            learning_rate = 0.0
        if beta1 is None:
            beta1 = 0.0
        self.scale_lr = isinstance(learning_rate, int | float)
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        name = self.cls_name
        V.check_value_type("eps", eps, [list, tuple], name)
        if len(eps) != 2:
            raise ValueError("eps must have 2 value: (eps1, eps2).")
        for i, e in enumerate(eps):
            V.check_value_type(f"eps{i}", e, [float], name)
            V.check_non_negative_float(e, f"eps{i}", name)
        V.check_value_type("clip_threshold", clip_threshold, [float], name)
        V.check_non_negative_float(clip_threshold, "clip_threshold", name)
        V.check_value_type("decay_rate", decay_rate, [float], name)
        V.check_float_range(decay_rate, 0, 1, "neither", "decay_rate", name)
        V.check_float_range(weight_decay, 0.0, 1.0, "left", "weight_decay", name)
        V.check_value_type("scale_parameter", scale_parameter, [bool], name)
        V.check_value_type("relative_step", relative_step, [bool], name)
        V.check_value_type("compression", compression, [bool], name)
        V.check_value_type("beta1", beta1, [int, float], name)
        V.check_non_negative_float(float(beta1), "beta1", name)
        self.scale_parameter = scale_parameter and self.scale_lr
        self.relative_step = relative_step
        self.warmup_init = warmup_init
        self.compression = compression
        self.use_first_moment = beta1 > 0
        self._configure(
            eps=(f32(eps[0]), f32(eps[1])),
            clip_threshold=f32(clip_threshold),
            decay_rate=f32(decay_rate),
            beta1=f32(beta1),
            adafactor_weight_decay=f32(weight_decay),
        )

    @property
    def target(self) -> str:
        return self._target

    @target.setter
    def target(self, value: str) -> None:
        self._set_base_target(value)

    def _initial_state(self, p: torch.Tensor) -> dict[str, Any]:
        return self._new_state(p)

    def _new_state(self, p: torch.Tensor) -> dict[str, Any]:
        shape = tuple(p.shape)
        state: dict[str, Any] = {"step": torch.zeros(1, dtype=torch.float32)}
        if self.use_first_moment:
            state["exp_avg"] = torch.zeros_like(p)
        one = (1,)
        if len(shape) > 1:
            state["exp_avg_sq_row"] = p.new_zeros(shape[:-1])
            state["exp_avg_sq_col"] = p.new_zeros(shape[:-2] + shape[-1:])
            state["exp_avg_sq"] = p.new_zeros(one)
        else:
            state["exp_avg_sq_row"] = p.new_zeros(one)
            state["exp_avg_sq_col"] = p.new_zeros(one)
            dtype = torch.float16 if self.compression else p.dtype
            state["exp_avg_sq"] = torch.zeros(shape, dtype=dtype, device=p.device)
        return state

    def _update_group(self, group, params, grads) -> None:
        eps1, eps2 = group["eps"]
        for p, g in zip(params, grads):
            state = self.state[p]
            if not state:
                state.update(self._new_state(p))
            state["step"] += 1
            step = float(state["step"])
            lr = group["lr"]
            if self.scale_lr and self.relative_step:
                lr = relative_step_size(step, self.warmup_init)
            adafactor_step(
                p,
                g,
                state.get("exp_avg"),
                state["exp_avg_sq_row"],
                state["exp_avg_sq_col"],
                state["exp_avg_sq"],
                lr=f32(lr),
                beta2t=f32(second_moment_weight(step, group["decay_rate"])),
                beta1=group["beta1"],
                eps1=eps1,
                eps2=eps2,
                clip_threshold=group["clip_threshold"],
                weight_decay=group["adafactor_weight_decay"],
                scale_parameter=self.scale_parameter,
            )
