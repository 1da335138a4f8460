"""``polyoptim.paddle.load`` / ``save``: Paddle's checkpoint files, mirroring ``paddle.load`` and
``paddle.save``, without Paddle and without executing pickle code.

* ``load(path)`` reads ``.pdparams``/``.pdopt`` files written by ``paddle.save`` (protocol 2 to
  4, split big arrays, the generic form used for ``master_weights``) and returns what
  ``paddle.load`` returns, with torch tensors in place of Paddle Tensors (numpy arrays with
  ``return_numpy=True``). ``opt.set_state_dict(load("opt.pdopt"))`` resumes training where
  Paddle stopped; ``model.load_state_dict(load("model.pdparams"))`` loads weights (Paddle's
  ``Linear`` stores its weight as ``[in, out]``: transpose it for ``torch.nn.Linear``).
* ``save(obj, path)`` writes a file ``paddle.load`` reads: a state dict (tensors and plain dicts)
  as numpy arrays plus the name table; anything else generically, tensors as
  ``(name, ndarray)``.

A file that tries to import or call anything but numpy arrays and plain containers raises
:class:`~polyoptim.interop.paddle_pickle.UnsafeCheckpointError`; a truncated or malformed one
raises :class:`~polyoptim.interop.paddle_pickle.CheckpointFormatError` (both ``ValueError``).
Nothing is returned in either case.

bfloat16 tensors are stored as ``uint16`` arrays, as Paddle stores them; ``load`` turns
``uint16`` arrays back into bfloat16 tensors (Paddle reads ``uint16`` as bfloat16 too).
"""

from __future__ import annotations

import io
import os
from typing import IO, Any

import numpy as np
import torch

from ..interop import paddle_pickle as pp
from ..interop.paddle_pickle import (
    CheckpointError,
    CheckpointFormatError,
    UnsafeCheckpointError,
)

__all__ = [
    "CheckpointError",
    "CheckpointFormatError",
    "UnsafeCheckpointError",
    "load",
    "save",
    "to_numpy",
    "to_tensor",
]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as the numpy array Paddle would save (bfloat16 as ``uint16`` bits)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(np.uint16).copy()
    return np.array(t.numpy(), copy=True)


def to_tensor(a: np.ndarray, name: str | None = None) -> torch.Tensor:
    """A loaded array as a tensor (``uint16`` → bfloat16, as ``paddle.to_tensor`` reads it);
    ``name`` is kept as ``tensor.paddle_name``."""
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        a = a.copy()
    if a.dtype == np.uint16:
        t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(a)
    if name is not None:
        t.paddle_name = name  # type: ignore[attr-defined]
    return t


def _is_named_array(obj: Any) -> bool:
    return (
        isinstance(obj, tuple)
        and len(obj) == 2
        and isinstance(obj[0], str)
        and isinstance(obj[1], np.ndarray)
    )


def _contains(obj: Any, cond: Any, seen: set[int] | None = None) -> bool:
    """Whether ``cond`` holds anywhere in ``obj``; a shared container is looked into once."""
    if cond(obj):
        return True
    if not isinstance(obj, (dict, list, tuple)):
        return False
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return False
    seen.add(id(obj))
    values = obj.values() if isinstance(obj, dict) else obj
    return any(_contains(v, cond, seen) for v in values)


def _convert(obj: Any, cond: Any, fn: Any, memo: dict[int, Any] | None = None) -> Any:
    """``obj`` with ``fn(x)`` in place of every ``x`` for which ``cond`` holds. Each container
    is converted once, so what the file shares stays shared (a file's structure is acyclic and
    at most ``safe_unpickle.MAX_DEPTH`` deep: the reader checked)."""
    memo = {} if memo is None else memo
    key = id(obj)
    if key in memo:
        return memo[key]
    if cond(obj):
        out = fn(obj)
    elif isinstance(obj, dict):
        out = type(obj)((k, _convert(v, cond, fn, memo)) for k, v in obj.items())
    elif isinstance(obj, list):
        out = [_convert(v, cond, fn, memo) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_convert(v, cond, fn, memo) for v in obj)
    else:
        return obj
    memo[key] = out
    return out


def _loaded_tensor(source: str, a: np.ndarray, name: str | None = None) -> torch.Tensor:
    try:
        return to_tensor(a, name)
    except TypeError:
        raise CheckpointFormatError(
            f"{source}: holds a {a.dtype} array, which has no tensor type (load it with "
            "return_numpy=True)"
        ) from None


def load(path: str | os.PathLike | IO[bytes], **configs: Any) -> Any:
    """Load an object saved by ``paddle.save`` (or :func:`save`), safely.

    Args:
        path: a file path or a binary file object (``io.BytesIO``).
        return_numpy: return numpy arrays instead of tensors (default False).
        keep_name_table: keep ``'StructuredToParameterName@@'`` (default False).

    Returns:
        What ``paddle.load`` returns, with torch tensors for Paddle Tensors. A tensor from a
        name table or a ``(name, ndarray)`` pair carries its Paddle name as
        ``tensor.paddle_name``.

    Raises:
        UnsafeCheckpointError: the file would run code (it is never executed).
        CheckpointFormatError: the file is truncated, malformed or not a Paddle pickle.
        FileNotFoundError: no such file.

    Example:
        >>> import io, torch
        >>> from polyoptim import paddle as P
        >>> buf = io.BytesIO(); P.save({"w": torch.ones(2)}, buf); _ = buf.seek(0)
        >>> P.load(buf)["w"]
        tensor([1., 1.])
    """
    unknown = set(configs) - {"return_numpy", "keep_name_table"}
    if unknown:
        raise ValueError(f"unsupported load options: {sorted(unknown)}")
    return_numpy = bool(configs.get("return_numpy", False))
    keep_name_table = bool(configs.get("keep_name_table", False))
    if isinstance(path, (str, os.PathLike)) and not os.path.isfile(path):
        raise FileNotFoundError(f"no such checkpoint file: {os.fspath(path)}")
    obj = pp.load(path)
    named = isinstance(path, (str, os.PathLike))
    source = str(os.fspath(path) if named else getattr(path, "name", "<file>"))
    memo: dict[int, Any] = {}  # one tensor per array, however often the file refers to it
    if isinstance(obj, dict) and pp.NAME_TABLE in obj:
        table = obj[pp.NAME_TABLE]
        out = dict(obj)
        if isinstance(table, dict):
            for key, name in table.items():
                value = out.get(key)
                if isinstance(value, np.ndarray) and not return_numpy:
                    if id(value) not in memo:
                        tname = name if isinstance(name, str) else None
                        memo[id(value)] = _loaded_tensor(source, value, tname)
                    out[key] = memo[id(value)]
        if not keep_name_table:
            del out[pp.NAME_TABLE]
        return out
    if _contains(obj, _is_named_array):
        return _convert(
            obj,
            _is_named_array,
            lambda t: t[1] if return_numpy else _loaded_tensor(source, t[1], t[0]),
            memo,
        )
    if return_numpy:
        return obj
    return _convert(
        obj, lambda x: isinstance(x, np.ndarray), lambda a: _loaded_tensor(source, a), memo
    )


def _tensor_name(t: torch.Tensor, key: Any) -> str:
    name = getattr(t, "paddle_name", None)
    return name if isinstance(name, str) else str(key)


def _is_state_dict(obj: Any) -> bool:
    """Paddle's test: a dict whose values are tensors, or dicts holding no tensors."""
    if not isinstance(obj, dict):
        return False
    for value in obj.values():
        if isinstance(value, dict):
            if _contains(value, lambda x: isinstance(x, torch.Tensor)):
                return False
        elif not isinstance(value, torch.Tensor):
            return False
    return True


def _generic(obj: Any, key: Any = None) -> Any:
    if isinstance(obj, torch.Tensor):
        return pp.named_array(_tensor_name(obj, key), to_numpy(obj))
    if isinstance(obj, dict):
        return type(obj)((k, _generic(v, k)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_generic(v, key) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_generic(v, key) for v in obj)
    return obj


def save(obj: Any, path: str | os.PathLike | IO[bytes], protocol: int = 4, **configs: Any) -> None:
    """Save ``obj`` the way ``paddle.save`` does, so ``paddle.load`` (or :func:`load`) reads it.

    Args:
        obj: an optimizer or model state dict, or any nest of tensors, arrays and plain data.
        path: a file path (folders are created) or a binary file object.
        protocol: the pickle protocol, 2 to 4 (default 4). Under 2 and 3, arrays over 1 GiB
            are split as Paddle splits them.

    Example:
        >>> import io, torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = P.Adam(parameters=[w]); w.sum().backward(); opt.step()
        >>> buf = io.BytesIO(); P.save(opt.state_dict(), buf); _ = buf.seek(0)
        >>> sorted(P.load(buf))[:1]
        ['param_0_beta1_pow_acc_0']
    """
    if configs:
        raise ValueError(f"unsupported save options: {sorted(configs)}")
    if not isinstance(protocol, int) or isinstance(protocol, bool):
        raise ValueError(f"The 'protocol' MUST be `int`, but received {type(protocol)}")
    if protocol < 2 or protocol > 4:
        raise ValueError(f"Expected 1<'protocol'<5, but received protocol={protocol}")
    if _is_state_dict(obj):
        saved: dict[str, Any] = {}
        table: dict[str, str] = {}
        for key, value in obj.items():
            if isinstance(value, torch.Tensor):
                saved[key] = to_numpy(value)
                table[key] = _tensor_name(value, key)
            else:
                saved[key] = value
        saved[pp.NAME_TABLE] = table
        payload: Any = pp.split_big_arrays(saved, protocol)
    else:
        payload = _generic(obj)
    buf = io.BytesIO()
    pp.dump(payload, buf, protocol)
    data = buf.getvalue()
    if isinstance(path, (str, os.PathLike)):
        path = os.fspath(path)
        if os.path.basename(path) == "":
            raise ValueError(
                "The input path MUST be format of dirname/filename [dirname\\filename in Windows "
                "system], but received filename is empty string."
            )
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    else:
        path.write(data)
