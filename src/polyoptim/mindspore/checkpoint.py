r"""MindSpore checkpoints: ``load_checkpoint``, ``save_checkpoint`` and ``load_param_into_net``
with MindSpore's signatures, on real ``.ckpt`` files (read and written by
:mod:`polyoptim.interop.mindspore_ckpt`, no MindSpore or protobuf needed).

An optimizer's entries carry MindSpore's names, so a checkpoint written by MindSpore resumes
training here and one written here loads in MindSpore::

    global_step              int32 [1]
    learning_rate            float32 [] (or [N] for a list; absent for a schedule)
    learning_rate_group_<i>  a group's own rate
    <parameter names>        the parameters
    momentum, beta1_power, ...              optimizer-wide scalars
    moment1.<name>, accum.<name>, ...       per-parameter state

Example:
    >>> import os, tempfile, torch
    >>> from polyoptim import mindspore as nn
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = nn.Adam(model.named_parameters(), learning_rate=0.01)
    >>> _ = opt(tuple(torch.ones_like(p) for p in opt.parameters))
    >>> path = os.path.join(tempfile.mkdtemp(), "adam.ckpt")
    >>> nn.save_checkpoint(opt, path)
    >>> again = nn.Adam(torch.nn.Linear(2, 1).named_parameters(), learning_rate=0.01)
    >>> nn.load_param_into_net(again, nn.load_checkpoint(path))
    ([], [])
    >>> again.global_step, float(again.state[again.parameters[0]]["beta1_power"])
    (1, 0.8999999761581421)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from ..interop.mindspore_ckpt import (
    _TORCH_TO_MS,
    CheckpointError,
    read_checkpoint,
    write_checkpoint,
)
from .adopt import MindSporeCellMixin, mindspore_entries
from .optimizer import Optimizer, ParameterTuple, f32

__all__ = [
    "CheckpointError",
    "load_checkpoint",
    "load_param_into_net",
    "optimizer_entries",
    "save_checkpoint",
]


# -- what an optimizer holds, under MindSpore's names ------------------------------------------
def _state_of(opt: Optimizer, p: torch.Tensor) -> tuple[dict[str, Any], bool]:
    """``(state, stepped)``: the parameter's state, or its initial value if it has none."""
    st = opt.state.get(p)
    if st:
        return st, True
    return opt._initial_state(p), False


def _lr_entries(opt: Optimizer) -> list[tuple[str, Any]]:
    out: dict[str, Any] = {}
    for group in opt.param_groups:
        lr = group["lr"]
        name = group.get("lr_name", "learning_rate")
        if isinstance(lr, int | float):
            out.setdefault(name, torch.tensor(f32(lr), dtype=torch.float32))
        elif isinstance(lr, torch.Tensor):
            out.setdefault(name, lr.detach().to(torch.float32).clone())
    return list(out.items())


def _user_tuples(opt: Optimizer) -> list[ParameterTuple]:
    return [
        v
        for k, v in vars(opt).items()
        if isinstance(v, ParameterTuple) and k not in ("parameters", "_parameters")
    ]


def optimizer_entries(opt: Optimizer) -> dict[str, Any]:
    """``{MindSpore name: tensor}`` for everything MindSpore would save of ``opt``."""
    from .lars import LARS

    if isinstance(opt, LARS):
        inner = optimizer_entries(opt.opt)
        head = {
            "global_step": inner.pop("global_step"),
            "fake_lr": torch.tensor(0.0),
            "fake_param": torch.tensor(0.0),
        }
        return {**head, **inner}
    entries: dict[str, Any] = {
        "global_step": torch.tensor([opt.global_step], dtype=torch.int32),
    }
    entries.update(_lr_entries(opt))
    for name, p in zip(opt.parameters.names, opt.parameters):
        entries[name] = p.detach()
    for ms_name, key in opt._ckpt_hypers:
        entries[ms_name] = torch.tensor(f32(opt.param_groups[0][key]), dtype=torch.float32)
    states = [_state_of(opt, p) for p in opt.parameters]
    for ms_name, key, shape in opt._ckpt_globals:
        value = states[0][0].get(key, None) if states else None
        value = torch.as_tensor(1.0 if value is None else value, dtype=torch.float32)
        entries[ms_name] = value.detach().reshape(shape).clone()
    for template, key in opt._ckpt_slots:
        for name, p, (st, stepped) in zip(opt.parameters.names, opt.parameters, states):
            if key == "__stat__":  # SGD: 1 until the first step with momentum
                stepped_with_momentum = stepped and "momentum_buffer" in st
                entries[template.format(name)] = torch.full_like(
                    p.detach(), 0.0 if stepped_with_momentum else 1.0
                )
            elif key in st:
                entries[template.format(name)] = torch.as_tensor(st[key]).detach()
            elif key == "momentum_buffer":  # SGD without momentum still saves zeros
                entries[template.format(name)] = torch.zeros_like(p.detach())
    for tup in _user_tuples(opt):
        for name, t in zip(tup.names, tup):
            entries[name] = t.detach()
    return entries


# -- save ----------------------------------------------------------------------------------------
def _module_entries(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's tensors by checkpoint name: MindSpore's names for an adopted module
    (:func:`polyoptim.mindspore.adopt`), else its ``state_dict`` keys."""
    from .train_cell import TrainOneStepCell

    if isinstance(net, TrainOneStepCell):
        return {name: t.detach() for name, t in net.parameters_dict().items()}
    if isinstance(net, MindSporeCellMixin):
        return {name: t.detach() for name, _, t in mindspore_entries(net)}
    return net.state_dict()


def _entries_of(save_obj: Any) -> list[tuple[str, Any]]:
    if isinstance(save_obj, Optimizer):
        return list(save_obj.parameters_dict().items())
    if isinstance(save_obj, torch.nn.Module):
        return list(_module_entries(save_obj).items())
    if isinstance(save_obj, dict):
        return list(save_obj.items())
    if isinstance(save_obj, list):
        out = []
        for item in save_obj:
            if not isinstance(item, dict) or set(item) != {"name", "data"}:
                raise TypeError(
                    "For 'save_checkpoint', a list save_obj must hold dicts with the keys "
                    f"'name' and 'data', but got {item!r}."
                )
            out.append((item["name"], item["data"]))
        return out
    raise TypeError(
        "For 'save_checkpoint', the argument 'save_obj' should be an optimizer, a "
        f"torch.nn.Module, a dict or a list, but got {type(save_obj)}."
    )


def save_checkpoint(
    save_obj: Any,
    ckpt_file_name: str | os.PathLike,
    integrated_save: bool = True,
    async_save: bool = False,
    append_dict: dict[str, Any] | None = None,
    enc_key: bytes | None = None,
    enc_mode: str = "AES-GCM",
    choice_func: Callable[[str], bool] | None = None,
    crc_check: bool = False,
    format: str = "ckpt",
    **kwargs: Any,
) -> None:
    """Write a MindSpore ``.ckpt`` file (MindSpore's ``save_checkpoint``).

    Args:
        save_obj: a MindSpore-dialect optimizer (parameters and state under MindSpore's names),
            a ``torch.nn.Module`` (MindSpore's names once adopted, else its ``state_dict``
            keys), a dict ``{name: tensor}`` or a list of
            ``{"name": ..., "data": ...}`` dicts.
        ckpt_file_name: the path; ``.ckpt`` is appended when missing, as MindSpore does.
        integrated_save, async_save: accepted (single process, synchronous here).
        append_dict: extra entries: ints (Int64), floats (Float32), bools, strs, tensors.
        enc_key, enc_mode: encryption is not supported (``NotImplementedError``).
        choice_func: ``choice_func(name)`` keeps an entry when true.
        crc_check: append MindSpore's CRC32 footer.
        format: ``"ckpt"`` only.

    Example:
        >>> import os, tempfile, torch
        >>> from polyoptim import mindspore as nn
        >>> model = torch.nn.Linear(3, 2)
        >>> opt = nn.Momentum(model.named_parameters(), learning_rate=0.1, momentum=0.9)
        >>> model(torch.ones(1, 3)).sum().backward(); _ = opt.step()
        >>> path = os.path.join(tempfile.mkdtemp(), "opt.ckpt")
        >>> nn.save_checkpoint(opt, path)
        >>> print(*sorted(nn.load_checkpoint(path)))     # MindSpore's names
        bias global_step learning_rate moments.bias moments.weight momentum weight
    """
    if enc_key is not None:
        raise NotImplementedError("encrypted MindSpore checkpoints (enc_key) are not supported")
    if format != "ckpt":
        raise NotImplementedError(f"format={format!r}: only 'ckpt' is supported")
    path = os.fspath(ckpt_file_name)
    if not path.endswith(".ckpt"):
        path += ".ckpt"
    entries = _entries_of(save_obj)
    if append_dict is not None:
        if not isinstance(append_dict, dict):
            raise TypeError(
                "For 'save_checkpoint', the argument 'append_dict' must be dict, but got "
                f"{type(append_dict)}."
            )
        for key, value in append_dict.items():
            if not isinstance(key, str) or not isinstance(
                value, int | float | bool | str | torch.Tensor | np.ndarray
            ):
                raise TypeError(
                    "For 'save_checkpoint', the type of dict 'append_info' must be key: string, "
                    "value: int, float, bool, str or Tensor, but got "
                    f"key: {type(key)}, value: {type(value)}."
                )
        entries += list(append_dict.items())
    if choice_func is not None:
        entries = [(n, v) for n, v in entries if choice_func(n)]
    write_checkpoint(path, entries, crc_check=crc_check)


# -- load ----------------------------------------------------------------------------------------
def _prefixes(x: str | Iterable[str] | None, what: str) -> tuple[str, ...]:
    if x is None:
        return ()
    if isinstance(x, str):
        items: tuple[str, ...] = (x,)
    else:
        items = tuple(x)
    if not items or not all(isinstance(i, str) and i for i in items):
        raise ValueError(f"For 'load_checkpoint', '{what}' must be a non-empty str or strs.")
    return items


def load_checkpoint(
    ckpt_file_name: str | os.PathLike,
    net: Any = None,
    strict_load: bool = False,
    filter_prefix: str | Iterable[str] | None = None,
    dec_key: bytes | None = None,
    dec_mode: str = "AES-GCM",
    specify_prefix: str | Iterable[str] | None = None,
    choice_func: Callable[[str], bool] | None = None,
    crc_check: bool = False,
    remove_redundancy: bool = False,
    format: str = "ckpt",
) -> dict[str, torch.Tensor | str]:
    """Read a MindSpore ``.ckpt`` file into ``{name: tensor or str}`` (MindSpore's
    ``load_checkpoint``; tensors keep their dtype; ``str`` entries are Python strings).

    Args:
        ckpt_file_name: the file.
        net: an optimizer or ``torch.nn.Module`` to load the result into
            (:func:`load_param_into_net`).
        strict_load: passed to :func:`load_param_into_net`.
        filter_prefix: drop names starting with it (a str or strs).
        dec_key, dec_mode: encrypted files are not supported (``NotImplementedError``).
        specify_prefix: keep only names starting with it.
        choice_func: ``choice_func(name)`` keeps an entry when true.
        crc_check: require and verify the CRC footer.
        remove_redundancy: accepted (single process).
        format: ``"ckpt"`` only.

    Raises:
        ValueError: a missing, malformed, truncated or CRC-failing file
            (:class:`~polyoptim.interop.mindspore_ckpt.CheckpointError`); ``net`` is unchanged.

    Example:
        >>> import os, tempfile, torch
        >>> from polyoptim import mindspore as nn
        >>> path = os.path.join(tempfile.mkdtemp(), "net.ckpt")
        >>> nn.save_checkpoint({"w": torch.ones(2, dtype=torch.float16)}, path)
        >>> nn.load_checkpoint(path)
        {'w': tensor([1., 1.], dtype=torch.float16)}
    """
    if dec_key is not None:
        raise NotImplementedError("encrypted MindSpore checkpoints (dec_key) are not supported")
    if format != "ckpt":
        raise NotImplementedError(f"format={format!r}: only 'ckpt' is supported")
    path = os.fspath(ckpt_file_name)
    if not os.path.isfile(path):
        raise ValueError(f"For 'load_checkpoint', the checkpoint file {path} does not exist.")
    drop, keep = (
        _prefixes(filter_prefix, "filter_prefix"),
        _prefixes(specify_prefix, "specify_prefix"),
    )
    try:
        loaded = read_checkpoint(path, crc_check=crc_check)
    except CheckpointError as exc:
        raise type(exc)(
            f"Failed to read the checkpoint file {os.path.basename(path)}: {exc}"
        ) from None
    out = {}
    for name, value in loaded.items():
        if drop and name.startswith(drop):
            continue
        if keep and not name.startswith(keep):
            continue
        if choice_func is not None and not choice_func(name):
            continue
        out[name] = value
    if net is not None:
        load_param_into_net(net, out, strict_load=strict_load)
    return out


_MS_FLOATS = {torch.float16, torch.float32, torch.float64, torch.bfloat16}
_MS_INTS = {torch.int8, torch.int16, torch.int32, torch.int64}


def _check_shape(name: str, target: torch.Tensor, value: Any, strict: bool) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"For 'load_param_into_net', {name} in the checkpoint is a {type(value).__name__}, "
            "not a tensor."
        )
    same = tuple(value.shape) == tuple(target.shape)
    if not same and not (value.numel() == 1 and target.numel() == 1):
        raise RuntimeError(
            f"For 'load_param_into_net', {name} in the argument 'net' should have the same shape "
            f"as {name} in the argument 'parameter_dict'. But got its shape "
            f"{tuple(target.shape)} in the argument 'net' and shape {tuple(value.shape)} in the "
            "argument 'parameter_dict'.May you need to check whether the checkpoint you loaded "
            "is correct or the batch size and so on in the 'net' and 'parameter_dict' are same."
        )
    # MindSpore converts between its float types, or between its signed int types, unless
    # strict_load (``_type_convert``); anything else is refused
    kinds = {value.dtype, target.dtype}
    convertible = kinds <= _MS_FLOATS or kinds <= _MS_INTS
    if value.dtype != target.dtype and (strict or not convertible):
        names = _TORCH_TO_MS
        raise RuntimeError(
            f"For 'load_param_into_net', {name} in the argument 'net' should have the same type "
            f"as {name} in the argument 'parameter_dict'. but got its type "
            f"{names.get(target.dtype, target.dtype)} in the argument 'net' and type "
            f"{names.get(value.dtype, value.dtype)} in the argument 'parameter_dict'.May you need "
            "to check whether the checkpoint you loaded is correct."
        )
    return value.reshape(target.shape)


def load_param_into_net(
    net: Any,
    parameter_dict: dict[str, Any],
    strict_load: bool = False,
    remove_redundancy: bool = False,
) -> tuple[list[str], list[str]]:
    """Load ``{name: tensor}`` (from :func:`load_checkpoint`) into an optimizer or a module.

    For a MindSpore-dialect optimizer this restores the parameters, ``global_step``, the
    learning rate(s), the optimizer-wide scalars and the per-parameter state under MindSpore's
    names, so training resumes where MindSpore (or polyoptim) left it. Every entry is checked
    before anything is written: a shape mismatch raises and changes nothing.

    Args:
        net: a MindSpore-dialect optimizer, or a ``torch.nn.Module`` (its ``state_dict`` names).
        parameter_dict: names to tensors.
        strict_load: also require equal dtypes.
        remove_redundancy: accepted (single process).

    Returns:
        ``(param_not_load, ckpt_not_load)``: the names ``net`` has that the dict lacks, and the
        dict's names ``net`` does not use.

    Example:
        >>> import os, tempfile, torch
        >>> from polyoptim import mindspore as nn
        >>> model = torch.nn.Linear(3, 2)
        >>> opt = nn.Momentum(model.named_parameters(), learning_rate=0.1, momentum=0.9)
        >>> model(torch.ones(1, 3)).sum().backward(); _ = opt.step()
        >>> path = os.path.join(tempfile.mkdtemp(), "opt.ckpt")
        >>> nn.save_checkpoint(opt, path)
        >>> resumed = torch.nn.Linear(3, 2)
        >>> opt2 = nn.Momentum(resumed.named_parameters(), learning_rate=0.1, momentum=0.9)
        >>> nn.load_param_into_net(opt2, nn.load_checkpoint(path))
        ([], [])
        >>> torch.equal(resumed.weight, model.weight), int(opt2.global_step)
        (True, 1)
    """
    if not isinstance(parameter_dict, dict):
        raise TypeError(
            "For 'load_param_into_net', the argument 'parameter_dict' should be a dict, but got "
            f"{type(parameter_dict)}."
        )
    if isinstance(net, Optimizer):
        return _load_optimizer(net, parameter_dict, strict_load)
    from .train_cell import TrainOneStepCell

    if isinstance(net, TrainOneStepCell):
        return _load_train_cell(net, parameter_dict, strict_load)
    if isinstance(net, torch.nn.Module):
        own = _module_entries(net)
        plan = {
            n: _check_shape(n, t, parameter_dict[n], strict_load)
            for n, t in own.items()
            if n in parameter_dict
        }
        with torch.no_grad():
            for n, v in plan.items():
                own[n].copy_(v)
        return [n for n in own if n not in parameter_dict], [
            n for n in parameter_dict if n not in own
        ]
    raise TypeError(
        "For 'load_param_into_net', the argument 'net' should be an optimizer or a "
        f"torch.nn.Module, but got {type(net)}."
    )


def _load_train_cell(net: Any, pd: dict[str, Any], strict: bool) -> tuple[list[str], list[str]]:
    """A training cell: the network's tensors and the loss scale by name, then the optimizer
    (parameters, state, global step, learning rates); every shape is checked first."""
    opt_names = set(optimizer_entries(net.optimizer))
    own = {n: t for n, t in net.parameters_dict().items() if n not in opt_names}
    plan = {n: _check_shape(n, t, pd[n], strict) for n, t in own.items() if n in pd}
    missing, unused = _load_optimizer(net.optimizer, pd, strict)
    with torch.no_grad():
        for n, v in plan.items():
            own[n].detach().copy_(v)
    missing = [n for n in own if n not in pd] + missing
    unused = [n for n in unused if n not in own]
    return missing, unused


def _load_optimizer(
    opt: Optimizer, pd: dict[str, Any], strict: bool
) -> tuple[list[str], list[str]]:
    from .lars import LARS

    if isinstance(opt, LARS):
        inner = {k: v for k, v in pd.items() if k not in ("fake_lr", "fake_param")}
        missing, unused = _load_optimizer(opt.opt, inner, strict)
        return [*(n for n in ("fake_lr", "fake_param") if n not in pd), *missing], unused
    expected = opt.parameters_dict()
    plan = {n: _check_shape(n, expected[n], pd[n], strict) for n in expected if n in pd}
    missing = [n for n in expected if n not in pd]
    unused = [n for n in pd if n not in expected]

    step = int(plan["global_step"].reshape(-1)[0]) if "global_step" in plan else opt.global_step
    names = dict(zip(opt.parameters, opt.parameters.names))
    # Settings first, under a snapshot: whatever raises (a value the optimizer refuses) puts
    # them back and changes nothing else; the tensor copies, which cannot fail once the shapes
    # are checked, come last.
    saved = (opt.global_step, dict(opt.defaults), [dict(g) for g in opt.param_groups])
    try:
        opt.global_step = step
        for group in opt.param_groups:
            name = group.get("lr_name", "learning_rate")
            if name in plan:
                value = plan[name]
                group["lr"] = (
                    f32(value.item())
                    if isinstance(group["lr"], int | float)
                    else value.to(torch.float32).clone()
                )
        for ms_name, key in opt._ckpt_hypers:
            if ms_name in plan:
                opt._configure(**{key: f32(plan[ms_name].item())})
        states = (
            [(p, _new_state(opt, p, names[p], plan, step)) for p in opt.parameters]
            if step > 0
            else []
        )
    except BaseException:
        opt.global_step = saved[0]
        opt.defaults.clear()
        opt.defaults.update(saved[1])
        for group, before in zip(opt.param_groups, saved[2]):
            group.clear()
            group.update(before)
        raise
    with torch.no_grad():
        for p in opt.parameters:
            if names[p] in plan:
                p.copy_(plan[names[p]])
        for tup in _user_tuples(opt):
            for n, t in zip(tup.names, tup):
                if n in plan:
                    t.copy_(plan[n])
    for p, state in states:
        if state is None:
            opt.state.pop(p, None)
        else:
            opt.state[p] = state
    return missing, unused


def _new_state(
    opt: Optimizer, p: torch.Tensor, name: str, plan: dict[str, torch.Tensor], step: int
) -> dict[str, Any] | None:
    """The state ``p`` gets from the checkpoint (None: no state), built without writing."""
    slots = {key: template.format(name) for template, key in opt._ckpt_slots}
    if "__stat__" in slots:  # SGD: stat 1 means the buffer was never filled
        stat = plan.get(slots["__stat__"])
        if stat is None or bool((stat != 0).all()):
            return None
    state = dict(opt.state.get(p) or opt._initial_state(p))
    for key, entry in slots.items():
        if entry in plan and key in state:
            state[key] = plan[entry].to(state[key].dtype).clone()
        elif entry in plan and key == "momentum_buffer":
            state[key] = plan[entry].to(p.dtype).clone()
    for ms_name, key, _ in opt._ckpt_globals:
        if ms_name in plan:
            state[key] = (
                plan[ms_name].to(torch.float32).reshape(torch.as_tensor(state[key]).shape).clone()
            )
    if "step" in state and all(g[1] != "step" for g in opt._ckpt_globals):
        state["step"] = torch.tensor(float(step), dtype=torch.float32)
    return state
