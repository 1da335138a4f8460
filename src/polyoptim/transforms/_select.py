"""Choosing which gradients a transform touches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

Where = Callable[[torch.Tensor, dict[str, Any]], bool]
"""``where(param, group) -> bool``: whether a transform applies to this parameter."""


def everywhere(p: torch.Tensor, group: dict[str, Any]) -> bool:
    return True


def selected(
    groups: list[dict],
    params: list[list[torch.Tensor]],
    grads: list[list[torch.Tensor]],
    where: Where,
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """``(group index, position, param, grad)`` for every gradient the transform applies to."""
    for i, (group, ps, gs) in enumerate(zip(groups, params, grads)):
        for j, (p, g) in enumerate(zip(ps, gs)):
            if where(p, group):
                yield i, j, p, g
