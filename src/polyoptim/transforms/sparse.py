r"""Row-sparse gradients: the pipeline on their entries, and lazy (row-wise) updates.

A row-sparse gradient is a ``torch.sparse_coo`` tensor with one sparse dimension (what
``torch.nn.Embedding(sparse=True)`` produces; MindSpore's ``RowTensor``): entries
``(index_i, values_i)``, possibly with repeated indices.

* :func:`map_entries` and the ``sparse_*`` helpers transform the entries as MindSpore's pipeline
  does on a ``RowTensor``: weight decay adds :math:`\lambda w_{i}` to *each* entry (a repeated
  row is decayed once per entry), centralization and scaling act on the values;
* :func:`rows` merges repeated indices (summing their values) for an update;
* :func:`lazy_step` runs any element-wise rule on the gradient's rows only -- the parameter and
  state rows elsewhere are untouched (lazy Adam, sparse FTRL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import torch

from ..kernels.ops import TensorOps
from ..rules.base import Rule


def is_row_sparse(g: torch.Tensor) -> bool:
    """A sparse COO gradient (any number of dense dimensions after the row index)."""
    return g.is_sparse


def entries(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices [nnz], values [nnz, ...])`` of a row-sparse tensor, repeats kept."""
    if g.sparse_dim() != 1:
        g = g.coalesce()
        flat = g.to_dense()
        nz = flat.reshape(flat.shape[0], -1).ne(0).any(dim=1).nonzero().flatten()
        return nz, flat[nz]
    return g._indices()[0], g._values()


def with_values(g: torch.Tensor, indices: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A row-sparse tensor of ``g``'s size with these entries (not coalesced)."""
    return torch.sparse_coo_tensor(indices.unsqueeze(0), values, g.shape, check_invariants=False)


def map_entries(g: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """Replace each entry's values with ``fn(indices, values)``."""
    idx, vals = entries(g)
    return with_values(g, idx, fn(idx, vals))


def sparse_l2(g: torch.Tensor, p: torch.Tensor, coeff: float) -> torch.Tensor:
    r""":math:`v_i \leftarrow v_i + c\, w_{\mathrm{index}_i}` for every entry."""
    return map_entries(g, lambda idx, v: v + coeff * p.detach().index_select(0, idx))


def sparse_scale(g: torch.Tensor, factor: float) -> torch.Tensor:
    r""":math:`v_i \leftarrow s\, v_i`."""
    return map_entries(g, lambda idx, v: v * factor)


def sparse_centralize(g: torch.Tensor, divisible: int | None = 16) -> torch.Tensor:
    r"""Each entry's values minus their mean over the dense axes (MindSpore's
    ``Centralization`` on a ``RowTensor``); skipped unless ``g`` has two or more dimensions and
    ``g.shape[1]`` is a multiple of ``divisible``."""
    if g.dim() < 2 or (divisible and g.shape[1] % divisible):
        return g
    axes = tuple(range(1, g.dim()))
    return map_entries(g, lambda idx, v: v - v.mean(dim=axes, keepdim=True))


def rows(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(unique sorted row indices, summed values)``: repeated indices merged."""
    c = g.coalesce()
    if c.sparse_dim() != 1:
        return entries(c)
    return c._indices()[0], c._values()


def lazy_step(
    rule: Rule,
    hp: Mapping[str, Any],
    p: torch.Tensor,
    g: torch.Tensor,
    state: MutableMapping[str, Any],
    scalars: Mapping[str, Any],
) -> None:
    """One step of an element-wise ``rule`` on the rows of the row-sparse ``g`` only.

    Example:
        >>> import torch
        >>> from polyoptim.rules.sgd import sgd
        >>> p = torch.zeros(3, 2)
        >>> g = torch.sparse_coo_tensor([[2, 2]], torch.ones(2, 2), (3, 2), check_invariants=True)
        >>> hp = {"momentum": 0.0, "dampening": 0.0, "nesterov": False}
        >>> lazy_step(sgd, hp, p, g, {}, {"lr": 1.0, "momentum": 0.0, "dampening": 0.0,
        ...     "nesterov": False, "first": True})
        >>> p
        tensor([[ 0.,  0.],
                [ 0.,  0.],
                [-2., -2.]])
    """
    idx, vals = rows(g)
    if idx.numel() == 0:
        return
    bufs = [state[b.name] if b.when(hp) else None for b in rule.buffers]
    sub = [None if b is None or b.dim() == 0 else b.index_select(0, idx) for b in bufs]
    sub = [b if s is None else s for b, s in zip(bufs, sub)]
    out = rule.update(TensorOps, p.detach().index_select(0, idx), vals.to(p.dtype), *sub, **scalars)
    p.detach().index_copy_(0, idx, out[0])
    for buf, new in zip(bufs, out[1:]):
        if buf is not None and buf.dim() > 0:
            buf.index_copy_(0, idx, new)
