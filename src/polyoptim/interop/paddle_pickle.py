"""Reading and writing Paddle's pickle checkpoints (``.pdparams``/``.pdopt``) without Paddle and
without running code from the file.

``paddle.save`` writes a pickle (protocol 2, 3 or 4) of

* a *state dict* -- ``{key: numpy.ndarray | plain dict}`` plus a name table
  ``'StructuredToParameterName@@'`` -- with arrays larger than 1 GiB split into
  ``key@@.i`` pieces described by ``'UnpackBigParamInfor@@'`` under protocols 2 and 3; or
* any other structure ("generic pickling"), where a Tensor is stored as
  ``builtins.tuple((name, ndarray))`` and a DenseTensor as ``builtins.eval('data', {'data':
  ndarray})`` -- this is how a state holding ``master_weights`` is written.

:func:`loads` reads such a pickle with an allow-list: numpy's array and scalar reconstructors,
``numpy.dtype``, ``_codecs.encode`` (byte strings under protocol 2), plain containers
(``tuple``, ``list``, ``dict``, ``set``, ``frozenset``, ``collections.OrderedDict``) and an
``eval`` stand-in that only returns ``env['data']`` for the DenseTensor form. Anything else --
``os.system``, ``subprocess``, ``torch`` classes, object arrays, persistent ids -- raises
:class:`UnsafeCheckpointError` before it is called. A truncated or malformed file raises
:class:`CheckpointFormatError`. Both are ``ValueError``\\ s (as ``paddle.load`` raises for files
it cannot parse); neither leaves partial results behind.

Example:
    >>> import io, numpy as np
    >>> buf = io.BytesIO(); dump({"w": np.ones(2, np.float32)}, buf); _ = buf.seek(0)
    >>> load(buf)["w"]
    array([1., 1.], dtype=float32)
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import pickletools
from collections import OrderedDict
from typing import IO, Any

import numpy as np

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


class CheckpointError(ValueError):
    """A checkpoint file could not be read."""


class CheckpointFormatError(CheckpointError):
    """The file is not a readable Paddle checkpoint (truncated, malformed, unknown format)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file asks to import or call something outside the allow-list: it was refused."""


_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_BUILTINS = ("builtins", "__builtin__")
_CONTAINERS = {"tuple": tuple, "list": list, "dict": dict, "set": set, "frozenset": frozenset}


def _checked_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise UnsafeCheckpointError("refusing a numpy array of Python objects")
    return dtype


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain ``ndarray`` only (no subclasses)."""
    if subtype is not np.ndarray:
        raise UnsafeCheckpointError(f"refusing to rebuild an array of type {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _scalar(dtype: Any, data: Any = None) -> Any:
    """numpy's ``scalar`` for non-object dtypes."""
    dtype = _checked_dtype(dtype)
    if not isinstance(data, bytes):
        raise UnsafeCheckpointError("a numpy scalar must be built from bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


class _SafeDtype:
    """Stands in for ``numpy.dtype`` during unpickling (object dtypes refused)."""

    def __new__(cls, spec: Any, align: bool = False, copy: bool = False) -> Any:  # type: ignore[misc]
        dtype = np.dtype(spec, align, copy)
        return _checked_dtype(dtype)


def _encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it: a str to bytes, nothing else."""
    if not isinstance(text, str) or encoding.lower() not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafeCheckpointError("refusing _codecs.encode outside str → bytes")
    return codecs.encode(text, encoding)


def _eval_data(expr: Any, env: Any = None, *_: Any) -> np.ndarray:
    """Paddle's DenseTensor form ``eval('data', {'data': ndarray})``: return ``env['data']``."""
    if expr != "data" or not isinstance(env, dict) or not isinstance(env.get("data"), np.ndarray):
        raise UnsafeCheckpointError(f"refusing builtins.eval({expr!r}, ...)")
    return env["data"]


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in _NUMPY_CORE and name == "_reconstruct":
            return _reconstruct
        if module in _NUMPY_CORE and name == "scalar":
            return _scalar
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return _SafeDtype
        if module == "_codecs" and name == "encode":
            return _encode
        if module in _BUILTINS and name in _CONTAINERS:
            return _CONTAINERS[name]
        if module in _BUILTINS and name == "eval":
            return _eval_data
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise UnsafeCheckpointError(
            f"refusing to load: the file imports {module}.{name}, which a Paddle checkpoint "
            "never needs (only numpy arrays and plain containers are allowed)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError("refusing to load: the file uses pickle persistent ids")


def _protocol(data: bytes) -> int | None:
    try:
        op, arg, _ = next(pickletools.genops(io.BytesIO(data)))
    except Exception:  # noqa: BLE001 -- not a pickle at all
        return None
    return arg if op.name == "PROTO" else 0


def _check_arrays(obj: Any) -> None:
    """Refuse object arrays that slipped in through ``__setstate__``."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise UnsafeCheckpointError("refusing a numpy array of Python objects")
    elif isinstance(obj, dict):
        for v in obj.values():
            _check_arrays(v)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _check_arrays(v)


def loads(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle a Paddle checkpoint's bytes with the allow-list (see the module docstring).

    Args:
        data: the file's contents.
        source: a name for error messages.

    Raises:
        UnsafeCheckpointError: the pickle imports or calls something not allowed.
        CheckpointFormatError: the data is not a complete pickle of protocol 2 to 5.
    """
    proto = _protocol(data)
    if proto is None or not 2 <= proto <= 5:
        what = "not a pickle" if proto is None else f"pickle protocol {proto}"
        raise CheckpointFormatError(
            f"cannot parse {source}: {what} (Paddle checkpoints are pickles of protocol 2 to 4)"
        )
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafeCheckpointError:
        raise
    except RecursionError as e:
        raise CheckpointFormatError(f"cannot parse {source}: nested too deeply") from e
    except Exception as e:  # noqa: BLE001 -- truncated/malformed: one clear error
        raise CheckpointFormatError(f"cannot parse {source}: {type(e).__name__}: {e}") from None
    _check_arrays(obj)
    return obj


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
    return join_big_arrays(loads(data, source=str(source)))


def join_big_arrays(obj: Any) -> Any:
    """Paddle's ``_pack_loaded_dict``: join ``key@@.i`` pieces listed in
    ``'UnpackBigParamInfor@@'`` back into ``key`` with its original shape."""
    if not isinstance(obj, dict) or BIG_PARAM_INFO not in obj:
        return obj
    info = obj[BIG_PARAM_INFO]
    if not isinstance(info, dict):
        raise CheckpointFormatError(f"{BIG_PARAM_INFO} must be a dict")
    out = dict(obj)
    for key, spec in info.items():
        try:
            parts = [out.pop(part) for part in spec["slices"]]
            out[key] = np.concatenate(parts).reshape(spec["OriginShape"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointFormatError(f"broken split array {key!r}: {e}") from None
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
