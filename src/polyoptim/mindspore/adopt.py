"""``polyoptim.mindspore.adopt(net)``: a torch module with MindSpore's parameter surface.

MindSpore training code filters parameters by name and asks the network for them:
``net.trainable_params()``, ``'beta' not in x.name and 'gamma' not in x.name`` (the model
zoo's ResNet ``init_group_params``), ``x.name.lower()`` (BERT), ``net.parameters_and_names()``.
:func:`adopt` gives a torch module and its tensors that surface, in place, without changing
their values, their torch behaviour or the module's ``state_dict``:

* every parameter, and every BatchNorm running statistic, answers ``.name`` with MindSpore's
  structured name: the attribute path from ``net`` with MindSpore's leaf names -- BatchNorm
  ``gamma``/``beta``/``moving_mean``/``moving_variance``, LayerNorm/GroupNorm/InstanceNorm
  ``gamma``/``beta``, Embedding ``embedding_table`` (``bn1.weight`` becomes ``bn1.gamma``);
* ``p.requires_grad`` is torch's own; ``p.set_data(value)`` copies into the tensor;
* every submodule gains ``trainable_params()``, ``untrainable_params()``, ``get_parameters()``,
  ``parameters_and_names()``, ``parameters_dict()``, ``cells_and_names()``, ``set_train()``,
  in MindSpore's order (a BatchNorm cell lists ``moving_mean``, ``moving_variance``, then
  ``gamma``, ``beta``; the statistics are never trainable).

The MindSpore optimizers then take ``net.trainable_params()`` and group dicts built from it as
the model zoo builds them; ``save_checkpoint(net, ...)`` and ``load_param_into_net(net, ...)``
use these names, so ``.ckpt`` files interchange with MindSpore.

Example:
    >>> import torch
    >>> from polyoptim import mindspore as ms
    >>> net = ms.adopt(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8)))
    >>> [p.name for p in net.trainable_params()]
    ['0.weight', '0.bias', '1.gamma', '1.beta']
    >>> [n for n, _ in net.parameters_and_names()][2:4]
    ['1.moving_mean', '1.moving_variance']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch

from ..adoption import adopt_object

__all__ = ["adopt", "mindspore_entries"]

_NORMS = (
    torch.nn.modules.batchnorm._NormBase,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
)
#: leaf renames of norm layers (torch name -> MindSpore name)
_NORM_LEAVES = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}


def _own_tensors(module: torch.nn.Module) -> list[tuple[str, str, torch.Tensor]]:
    """``(MindSpore leaf, torch leaf, tensor)`` of the cell's own parameters, MindSpore's
    order (norms: statistics first)."""
    params = [(k, p) for k, p in module._parameters.items() if p is not None]
    if isinstance(module, _NORMS):
        stats = [
            (k, b)
            for k, b in module._buffers.items()
            if b is not None and k in ("running_mean", "running_var")
        ]
        return [(_NORM_LEAVES[k], k, t) for k, t in [*stats, *params]]
    if isinstance(module, torch.nn.Embedding):
        return [("embedding_table" if k == "weight" else k, k, p) for k, p in params]
    return [(k, k, p) for k, p in params]


def mindspore_entries(
    module: torch.nn.Module, prefix: str = ""
) -> list[tuple[str, str, torch.Tensor]]:
    """``(MindSpore name, torch state_dict key, tensor)`` for every parameter and BatchNorm
    statistic of ``module``, in MindSpore's order, names relative to ``module``."""
    out = []
    for path, cell in module.named_modules():
        head = f"{path}." if path else ""
        for ms_leaf, torch_leaf, t in _own_tensors(cell):
            out.append((prefix + head + ms_leaf, head + torch_leaf, t))
    return out


class MindSporeParameterMixin:
    """MindSpore's ``Parameter`` attributes on a torch tensor."""

    __slots__ = ()

    @property
    def name(self) -> str | None:  # type: ignore[override]
        """MindSpore's structured name (``layer1.0.bn1.gamma``); settable."""
        return self.__dict__.get("_ms_name")

    @name.setter
    def name(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("The type of the Parameter's name should be 'string' and not empty.")
        self.__dict__["_ms_name"] = value

    def set_data(self, data: Any, slice_shape: bool = False) -> Any:
        """Copy ``data`` (a tensor, array or number) into the tensor; returns it."""
        value = torch.as_tensor(data)
        if value.numel() != 1 and tuple(value.shape) != tuple(self.shape):  # type: ignore[attr-defined]
            raise ValueError(
                f"Can not change the shape of Parameter which has been initialized. Current "
                f"shape is {tuple(self.shape)}, and incoming is {tuple(value.shape)}."  # type: ignore[attr-defined]
            )
        with torch.no_grad():
            self.copy_(value.to(self.dtype).expand_as(self))  # type: ignore[attr-defined]
        return self


class MindSporeCellMixin:
    """MindSpore's ``Cell`` methods a training script calls on the network."""

    def parameters_and_names(
        self, name_prefix: str = "", expand: bool = True
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, parameter)`` for every parameter and BatchNorm statistic, MindSpore's
        names and order (``expand=False``: this cell's own only)."""
        prefix = f"{name_prefix}." if name_prefix else ""
        if not expand:
            for ms_leaf, _, t in _own_tensors(self):  # type: ignore[arg-type]
                yield prefix + ms_leaf, t
            return
        for name, _, t in mindspore_entries(self, prefix):  # type: ignore[arg-type]
            yield name, t

    def get_parameters(self, expand: bool = True) -> Iterator[torch.Tensor]:
        """Every parameter and BatchNorm statistic."""
        for _, t in self.parameters_and_names(expand=expand):
            yield t

    def trainable_params(self, recurse: bool = True) -> list[torch.Tensor]:
        """The parameters that require gradients, MindSpore's order."""
        return [t for t in self.get_parameters(expand=recurse) if t.requires_grad]

    def untrainable_params(self, recurse: bool = True) -> list[torch.Tensor]:
        """The parameters and statistics that do not require gradients."""
        return [t for t in self.get_parameters(expand=recurse) if not t.requires_grad]

    def parameters_dict(self, recurse: bool = True) -> OrderedDict[str, torch.Tensor]:
        """``{parameter.name: parameter}``."""
        return OrderedDict((t.name, t) for t in self.get_parameters(expand=recurse))

    def cells_and_names(
        self, cells: Any = None, name_prefix: str = ""
    ) -> Iterator[tuple[str, torch.nn.Module]]:
        """``(name, cell)`` for this cell and every sub-cell."""
        yield from self.named_modules(prefix=name_prefix)  # type: ignore[attr-defined]

    def set_train(self, mode: bool = True) -> Any:
        """Training (True) or inference mode: torch's ``train(mode)``."""
        return self.train(mode)  # type: ignore[attr-defined]


def adopt(net: torch.nn.Module) -> torch.nn.Module:
    """Give ``net``, its submodules and its tensors MindSpore's attributes, in place (see the
    module docstring); returns ``net``. Adopting again renames nothing that is named already
    and adopts new tensors (call it again after FSDP2's ``fully_shard``, which replaces the
    parameters).

    Raises:
        TypeError: ``net`` is not a ``torch.nn.Module``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as ms
        >>> net = ms.adopt(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2)))
        >>> [p.name for p in net.trainable_params()]
        ['0.weight', '0.bias', '1.gamma', '1.beta']
    """
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"adopt expects a torch.nn.Module, got {type(net).__name__}")
    for name, _, t in mindspore_entries(net):
        if not isinstance(t, MindSporeParameterMixin):
            adopt_object(t, MindSporeParameterMixin, "MindSpore")
        if t.__dict__.get("_ms_name") is None:
            t.__dict__["_ms_name"] = name
    for cell in net.modules():
        adopt_object(cell, MindSporeCellMixin, "")
    return net
