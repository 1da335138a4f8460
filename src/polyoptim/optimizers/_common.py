"""Validation and flag handling shared by the torch-dialect classes (torch's messages)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

ParamsT = Any  # tensors, (name, tensor) pairs, or param-group dicts


def check_lr(lr: float | Tensor, *, strict: bool = False) -> None:
    """torch's learning-rate checks (``strict``: SparseAdam's ``lr > 0``)."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    # written as torch writes it, so that a NaN learning rate is refused too
    if not ((lr > 0.0) if strict else (lr >= 0.0)):
        raise ValueError(f"Invalid learning rate: {lr}")


def check_min(name: str, value: Any, *, strict: bool = False) -> None:
    """``Invalid <name> value: v`` unless ``value >= 0`` (``> 0`` when strict)."""
    if not ((value > 0.0) if strict else (value >= 0.0)):
        raise ValueError(f"Invalid {name} value: {value}")


def check_betas(betas: tuple[Any, Any]) -> None:
    for i in (0, 1):
        if not 0.0 <= betas[i] < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {betas[i]}")


def check_fused_flags(fused: bool | None, foreach: bool | None, differentiable: bool) -> None:
    if fused:
        if differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


def fused_devices() -> list[str]:
    """Device types torch accepts for ``fused=True``."""
    return ["mps", "cuda", "xpu", "hpu", "cpu", "mtia", torch._C._get_privateuse1_backend_name()]


def check_fused_param(p: Tensor) -> None:
    """torch's ``fused=True`` requirement on each parameter, checked when its state is made."""
    supported = fused_devices()
    if not (p.device.type in supported and torch.is_floating_point(p)):
        raise RuntimeError(
            "`fused=True` requires all the params to be floating point Tensors of "
            f"supported devices: {supported} but {p.dtype} and {p.device.type}"
        )


def to_scalar(x: Any) -> Any:
    """A 1-element tensor hyperparameter becomes 0-d; anything else is kept."""
    if isinstance(x, Tensor) and x.dim() != 0:
        return x.squeeze()
    return x


def fill_defaults(optimizer: torch.optim.Optimizer, **defaults: Any) -> None:
    """Give every group of an unpickled optimizer the flags newer versions added."""
    for group in optimizer.param_groups:
        for k, v in defaults.items():
            group.setdefault(k, v)


def steps_to_tensors(optimizer: torch.optim.Optimizer, *keys: str) -> None:
    """Old checkpoints stored ``step`` (and friends) as numbers; make them float32 tensors."""
    for group in optimizer.param_groups:
        on_device = group.get("capturable") or group.get("fused")
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            for k in keys:
                if k in st and not torch.is_tensor(st[k]):
                    st[k] = torch.tensor(
                        float(st[k]), dtype=torch.float32, device=p.device if on_device else None
                    )


_SCALAR_TYPE_NAMES = {
    torch.complex32: "ComplexHalf",
    torch.complex64: "ComplexFloat",
    torch.complex128: "ComplexDouble",
    torch.float16: "Half",
    torch.bfloat16: "BFloat16",
    torch.float32: "Float",
    torch.float64: "Double",
}


def scalar_type_name(dtype: torch.dtype) -> str:
    """ATen's name of a dtype, as it appears in kernel error messages."""
    return _SCALAR_TYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))
