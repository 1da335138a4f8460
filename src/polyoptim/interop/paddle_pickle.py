"""Reading and writing Paddle's pickle checkpoints (``.pdparams``/``.pdopt``) without Paddle and
without running code from the file.

``paddle.save`` writes a pickle (protocol 2, 3 or 4) of

* a *state dict* -- ``{key: numpy.ndarray | plain dict}`` plus a name table
  ``'StructuredToParameterName@@'`` -- with arrays larger than 1 GiB split into
  ``key@@.i`` pieces described by ``'UnpackBigParamInfor@@'`` under protocols 2 and 3; or
* any other structure ("generic pickling"), where a Tensor is stored as
  ``builtins.tuple((name, ndarray))`` and a DenseTensor as ``builtins.eval('data', {'data':
  ndarray})`` -- this is how a state holding ``master_weights`` is written.

:func:`loads` reads such a pickle with :mod:`~polyoptim.interop.safe_unpickle`, a pickle
machine of its own with an allow-list: numpy's array and scalar reconstructors, ``numpy.dtype``,
``_codecs.encode`` (byte strings under protocol 2), plain containers (``tuple``, ``list``,
``dict``, ``set``, ``frozenset``, ``collections.OrderedDict``) and an ``eval`` stand-in that only
returns ``env['data']`` for the DenseTensor form. Anything else -- ``os.system``,
``subprocess``, ``torch`` classes, object arrays, persistent ids -- raises
:class:`UnsafeCheckpointError`; nothing from the file is ever called. Reading costs time and
memory linear in the file whatever it holds: arrays are built from exactly their own bytes, memo
references cannot multiply memory, shared objects are walked once, cycles and nesting deeper than
:data:`~polyoptim.interop.safe_unpickle.MAX_DEPTH` are refused. Any such refusal, or a truncated
or malformed file, raises :class:`CheckpointFormatError` naming the file and the byte offset (or
the path of keys) of the problem; :class:`UnsafeCheckpointError` is one of them. Both are
``ValueError``\\ s (as ``paddle.load`` raises for files it cannot parse); neither leaves partial
results behind.

Example:
    >>> import io, numpy as np
    >>> buf = io.BytesIO(); dump({"w": np.ones(2, np.float32)}, buf); _ = buf.seek(0)
    >>> load(buf)["w"]
    array([1., 1.], dtype=float32)
"""

from __future__ import annotations

import math
import os
import pickle
from typing import IO, Any

import numpy as np

from .errors import CheckpointError, CheckpointFormatError, UnsafeCheckpointError
from .safe_unpickle import unpickle

__all__ = [
    "BIG_PARAM_INFO",
    "NAME_TABLE",
    "CheckpointError",
    "CheckpointFormatError",
    "UnsafeCheckpointError",
    "dump",
    "join_big_arrays",
    "load",
    "loads",
    "split_big_arrays",
]

NAME_TABLE = "StructuredToParameterName@@"
BIG_PARAM_INFO = "UnpackBigParamInfor@@"  # Paddle's spelling
#: arrays with more bytes than this are split under protocols 2 and 3 (Paddle: 1 GiB)
MAX_ARRAY_BYTES = 2**30 - 1


def _protocol(data: bytes) -> int | None:
    """The pickle protocol a file declares (its leading ``PROTO`` opcode), or None."""
    return data[1] if len(data) > 1 and data[0] == pickle.PROTO[0] else None


def loads(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle a Paddle checkpoint's bytes with the allow-list (see the module docstring and
    :mod:`polyoptim.interop.safe_unpickle`).

    Args:
        data: the file's contents.
        source: a name for error messages.

    Raises:
        UnsafeCheckpointError: the pickle imports or calls something not allowed.
        CheckpointFormatError: the data is not a complete pickle of protocol 2 to 5, or holds
            what no checkpoint holds (arrays larger than their bytes, cycles, deep nesting, ...).
    """
    proto = _protocol(data)
    if proto is None or not 2 <= proto <= 5:
        what = (
            "not a pickle of protocol 2 or later" if proto is None else f"pickle protocol {proto}"
        )
        raise CheckpointFormatError(
            f"cannot parse {source}: {what} (Paddle checkpoints are pickles of protocol 2 to 4)"
        )
    return unpickle(data, source=source)


def load(file: str | os.PathLike | IO[bytes]) -> Any:
    """Read a Paddle checkpoint file (path or binary file object) safely; split big arrays
    are joined. Returns the raw structure: numpy arrays, ``(name, ndarray)`` tuples for
    generically pickled Tensors, plain containers."""
    if isinstance(file, (str, os.PathLike)):
        source = os.fspath(file)
        with open(source, "rb") as f:
            data = f.read()
    else:
        source = getattr(file, "name", "<file>")
        data = file.read()
    return join_big_arrays(loads(data, source=str(source)), source=str(source))


def join_big_arrays(obj: Any, *, source: str = "<bytes>") -> Any:
    """Paddle's ``_pack_loaded_dict``: join ``key@@.i`` pieces listed in
    ``'UnpackBigParamInfor@@'`` back into ``key`` with its original shape.

    Each piece must be a distinct 1-D array of one dtype, so the joined arrays hold no more
    bytes than the pieces (a piece listed twice, or one array under several keys, is refused).
    """
    if not isinstance(obj, dict) or BIG_PARAM_INFO not in obj:
        return obj
    info = obj[BIG_PARAM_INFO]
    if not isinstance(info, dict):
        raise CheckpointFormatError(f"{source}: [{BIG_PARAM_INFO!r}] must be a dict")
    out = dict(obj)
    used: set[int] = set()
    for key, spec in info.items():
        where = f"{source}: [{BIG_PARAM_INFO!r}][{str(key)[:40]!r}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("slices"), (list, tuple)):
            raise CheckpointFormatError(f"{where} is not {{'OriginShape': ..., 'slices': [...]}}")
        parts = []
        for part in spec["slices"]:
            value = out.pop(part, None) if isinstance(part, str) else None
            if not isinstance(value, np.ndarray) or value.ndim != 1 or id(value) in used:
                raise CheckpointFormatError(f"{where}: slice {str(part)[:40]!r} is not a 1-D array")
            used.add(id(value))
            parts.append(value)
        shape = spec.get("OriginShape")
        try:
            if not parts or len({p.dtype for p in parts}) != 1:
                raise ValueError("slices of different dtypes, or none")
            joined = np.concatenate(parts).reshape(shape)
        except (TypeError, ValueError) as e:
            raise CheckpointFormatError(f"{where}: the slices do not make the array: {e}") from None
        out[key] = joined
    del out[BIG_PARAM_INFO]
    return out


def split_big_arrays(obj: dict[str, Any], protocol: int) -> dict[str, Any]:
    """Paddle's ``_unpack_saved_dict``: under protocols 2 and 3, flatten arrays larger than
    ``MAX_ARRAY_BYTES`` into ``key@@.i`` slices and describe them in
    ``'UnpackBigParamInfor@@'``."""
    if not 1 < protocol < 4:
        return obj
    out: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray):
            per_slice = int(MAX_ARRAY_BYTES / value.dtype.itemsize)
            if value.size > per_slice:
                flat = value.reshape(-1)
                names = []
                for i in range(math.ceil(value.size / per_slice)):
                    names.append(f"{key}@@.{i}")
                    out[names[-1]] = flat[i * per_slice : (i + 1) * per_slice]
                info[key] = {"OriginShape": value.shape, "slices": names}
                continue
        out[key] = value
    if info:
        out[BIG_PARAM_INFO] = info
    return out


class _NamedArray:
    """Pickles as Paddle's Tensor form ``builtins.tuple((name, ndarray))``."""

    __slots__ = ("name", "array")

    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def __reduce__(self) -> tuple:
        return (tuple, ((self.name, self.array),))


def dump(obj: Any, file: IO[bytes], protocol: int = 4) -> None:
    """Pickle ``obj`` (numpy arrays, :class:`_NamedArray` wrappers, plain containers)."""
    if not isinstance(protocol, int) or isinstance(protocol, bool):
        raise ValueError(f"The 'protocol' MUST be `int`, but received {type(protocol)}")
    if protocol < 2 or protocol > 4:
        raise ValueError(f"Expected 1<'protocol'<5, but received protocol={protocol}")
    pickle.dump(obj, file, protocol=protocol)


def named_array(name: str, array: np.ndarray) -> _NamedArray:
    """A Tensor for generic pickling (see :func:`dump`)."""
    return _NamedArray(name, array)
