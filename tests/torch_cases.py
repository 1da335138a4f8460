"""Configurations of torch's own optimizer database, as parity cases for polyoptim."""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any

import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torch.testing._internal.common_optimizers import (
        _get_optim_inputs_including_global_cliquey_kwargs,
        optim_db,
    )

import polyoptim

DTYPES = (torch.float32, torch.float64)

#: the element-wise optimizers of the torch dialect (a rule each, every path, the fused kernel)
ELEMENTWISE_NAMES = (
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "SGD",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "ASGD",
    "Rprop",
)


def torch_has_fused(name: str) -> bool:
    """Whether torch's class takes ``fused`` (polyoptim fuses every element-wise algorithm on
    the CPU; torch's CPU has fused kernels for a few)."""
    return "fused" in inspect.signature(getattr(torch.optim, name)).parameters


@dataclass
class Case:
    name: str
    info: Any
    kwargs: dict[str, Any]
    dtype: torch.dtype

    @property
    def id(self) -> str:
        return f"{self.name}-{str(self.dtype)[6:]}-{self.kwargs_id}"

    @property
    def kwargs_id(self) -> str:
        parts = []
        for k, v in sorted(self.kwargs.items()):
            v = f"T{float(v):g}" if isinstance(v, torch.Tensor) and v.numel() == 1 else v
            parts.append(f"{k}={v}")
        return ",".join(parts) or "default"


def infos(select=lambda cls: True):
    for info in optim_db:
        name = info.optim_cls.__name__
        cls = getattr(polyoptim, name, None)
        if cls is not None and select(cls):
            yield info


def cases(select=lambda cls: True) -> list[Case]:
    """Every OptimizerInput of every selected optimizer, both dtypes, plus a foreach variant
    of each input that torch's CPU listing leaves out."""
    out = []
    for info in infos(select):
        name = info.optim_cls.__name__
        for dtype in DTYPES:
            seen = set()
            inputs = _get_optim_inputs_including_global_cliquey_kwargs("cpu", dtype, info)
            for oi in inputs:
                variants = [dict(oi.kwargs)]
                if "foreach" in info.supported_impls and not any(
                    oi.kwargs.get(k) for k in ("fused", "differentiable", "foreach")
                ):
                    variants.append({**oi.kwargs, "foreach": True})
                for kw in variants:
                    c = Case(name, info, kw, dtype)
                    if c.id not in seen:
                        seen.add(c.id)
                        out.append(c)
    return out


def make_params(case: Case, seed: int = 0) -> list[torch.Tensor]:
    """A weight, a bias and (where supported) a complex parameter."""
    g = torch.Generator().manual_seed(seed)
    ps = [
        torch.randn(5, 3, generator=g, dtype=case.dtype),
        torch.randn(5, generator=g, dtype=case.dtype),
    ]
    if case.info.supports_complex:
        cdtype = torch.complex64 if case.dtype == torch.float32 else torch.complex128
        ps.append(torch.randn(4, generator=g, dtype=cdtype))
    return ps


def grads_for(params: list[torch.Tensor], step: int, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 1000 + step)
    return [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]


def clone_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    def c(v):
        if isinstance(v, torch.Tensor):
            return v.clone()
        if isinstance(v, tuple):
            return tuple(c(x) for x in v)
        return v

    return {k: c(v) for k, v in kwargs.items()}
