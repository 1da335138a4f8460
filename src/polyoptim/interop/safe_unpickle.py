"""A pickle reader for checkpoint files that runs no code and costs what the file is worth.

Python's unpickler builds whatever a file asks for and trusts it: a ``find_class`` allow-list stops
code execution, but a 183-byte file of nested lists sharing their children still costs its
*paths* (2^N) to anything that walks the result, a 1 MB file of nested tuples used as a dict key
crashes the interpreter (tuple hashing recurses in C), ``numpy.ndarray(shape, dtype, b"x", 0,
strides)`` makes a 16 GiB array out of one byte, and ``numpy.ndarray(shape)`` hands out
uninitialised memory. :func:`unpickle` is instead a small pickle machine of its own that supports
exactly what checkpoint pickles use (protocols 2 to 5, as :mod:`pickle` writes them) and keeps
every cost linear in the file:

* **No code runs.** Globals resolve to tokens from a fixed table (numpy's array, scalar, dtype
  and protocol-5 ``_frombuffer`` reconstructors, ``_codecs.encode``, plain containers,
  ``bytes()``, and Paddle's ``eval('data', {'data': array})`` DenseTensor form); a token is
  interpreted here, never called. Anything else -- ``os.system``, classes to instantiate
  (``NEWOBJ``, ``INST``), persistent ids, the extension registry, object arrays -- raises
  :class:`~.errors.UnsafeCheckpointError`.
* **Arrays come from their own bytes.** An array is built only as numpy pickles it
  (``_reconstruct`` then ``BUILD`` with the shape, dtype and raw bytes): its bytes must be exactly
  ``prod(shape) * itemsize``, so it is always C or Fortran contiguous, never a view with zero or
  negative strides, never without data. Calling ``numpy.ndarray`` directly is refused. dtypes are
  plain numbers, bools and strings (no structured, object or zero-size dtypes) and cannot be
  changed once used.
* **Linear budgets.** The arrays, the bytes ``_codecs.encode`` produces and the elements copied by
  container constructors (``list(x)``, ``dict(x)``, ...) may each total at most the file's
  length, so memo references cannot multiply memory (a memoised 1 MB string encoded a thousand
  times is refused, not allocated).
* **Hashing is safe.** Dict keys and set elements must be ``str``, ``bytes``, ``bool``, ``None``
  or an ``int`` below 2**61 in magnitude: these hash without recursion, and distinct ones never
  share a hash value, so crafted keys cannot make dict insertion quadratic.
* **Shape of the result.** After loading, one walk over the result (each shared object once)
  refuses cycles and nesting deeper than ``max_depth`` containers, so whoever walks the result
  next, recursively or not, walks a tree-shaped DAG of bounded depth. Shared objects stay shared.

Every refusal is a :class:`~.errors.CheckpointFormatError` (a ``ValueError``) naming the source
and the byte offset and opcode, or the path of keys, where the problem is.

Example:
    >>> import pickle, numpy as np
    >>> unpickle(pickle.dumps({"w": np.arange(3, dtype=np.float32)}, protocol=4))["w"]
    array([0., 1., 2.], dtype=float32)
    >>> try:
    ...     unpickle(pickle.dumps(print))
    ... except UnsafeCheckpointError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    <bytes>: refusing to load: the file imports builtins.print, ... (at byte 30, STACK_GLOBAL)
"""

from __future__ import annotations

import codecs
import gc
import math
import pickle
import re
import struct
from collections import OrderedDict
from typing import Any

import numpy as np

from .errors import CheckpointFormatError, UnsafeCheckpointError

__all__ = ["MAX_DEPTH", "MAX_DIMS", "resolve_global", "unpickle"]

MAX_DEPTH = 100
"""Containers nested deeper than this are refused (real checkpoints nest a handful)."""
MAX_DIMS = 32
"""Arrays with more dimensions are refused (numpy and torch allow 64; no checkpoint has 32)."""
_SAFE_INT = 2**61 - 1  # ints smaller in magnitude hash to themselves: no two share a hash
_MAX_ELEMENTS = 2**62  # numpy's and torch's sizes are signed 64-bit

_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_BUILTINS = ("builtins", "__builtin__")
_CONTAINERS: dict[str, type] = {
    "tuple": tuple,
    "list": list,
    "dict": dict,
    "set": set,
    "frozenset": frozenset,
    "OrderedDict": OrderedDict,
}
_DTYPE_SPEC = re.compile(r"[<>|=]?[biufcSUOV]\d{0,9}")  # numpy's own: 'f4', 'U5', 'b1', ...
_DTYPE_KINDS = "biufcSU"  # bool, ints, floats, complex, byte and unicode strings


class _Global:
    """A resolved global: interpreted by :meth:`_Machine._call`, never called itself."""

    __slots__ = ("module", "name", "kind")

    def __init__(self, module: str, name: str, kind: str) -> None:
        self.module, self.name, self.kind = module, name, kind


class _ArraySpec:
    """What ``_reconstruct`` returns: an array waiting for its ``BUILD``."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None


class _DtypeSpec:
    """What ``numpy.dtype(...)`` returns: a dtype its ``BUILD`` may adjust until first use."""

    __slots__ = ("dtype", "used")

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype, self.used = dtype, False


_SPECS = (_ArraySpec, _DtypeSpec)


def resolve_global(module: str, name: str) -> str:
    """The kind of token a pickle's ``module.name`` global becomes, or
    :class:`~.errors.UnsafeCheckpointError` if it is not on the allow-list.

    Example:
        >>> resolve_global("numpy", "dtype")
        'dtype'
    """
    if module in _NUMPY_CORE and name in ("_reconstruct", "scalar"):
        return "reconstruct" if name == "_reconstruct" else "scalar"
    if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        return "frombuffer"
    if module == "numpy" and name in ("ndarray", "dtype"):
        return name
    if module == "_codecs" and name == "encode":
        return "encode"
    if module in _BUILTINS and name in (
        "tuple",
        "list",
        "dict",
        "set",
        "frozenset",
        "eval",
        "bytes",
    ):
        return name
    if module == "collections" and name == "OrderedDict":
        return name
    raise UnsafeCheckpointError(
        f"refusing to load: the file imports {module}.{name}, which a checkpoint never needs "
        "(only numpy arrays and plain containers are allowed)"
    )


def _checked_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.hasobject:
        raise UnsafeCheckpointError("refusing a numpy array of Python objects")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in _DTYPE_KINDS:
        raise CheckpointFormatError(
            f"dtype {dtype.str!r} is not a plain number, bool or string dtype"
        )
    if dtype.itemsize == 0:
        raise CheckpointFormatError(f"dtype {dtype.str!r} has zero-size elements")
    return dtype


class _Machine:
    """The pickle machine: a stack, a mark stack and a memo, one opcode at a time."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.pos = 0
        self.op_pos = 0
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.bytes_left = len(data)  # budget for array bytes and encoded bytes (each)
        self.encoded_left = len(data)
        self.items_left = len(data)  # budget for elements copied by container constructors

    # -- errors and reading ----------------------------------------------------------------
    def _where(self) -> str:
        if self.op_pos >= len(self.data):
            return f"(at byte {self.op_pos}, the end of the file)"
        code = self.data[self.op_pos]
        name = _OPS[code][0] if code in _OPS else f"opcode {bytes([code])!r}"
        return f"(at byte {self.op_pos}, {name})"

    def fail(self, msg: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{self.source}: {msg} {self._where()}")

    def unsafe(self, msg: str) -> UnsafeCheckpointError:
        return UnsafeCheckpointError(f"{self.source}: {msg} {self._where()}")

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise self.fail(
                f"truncated: {n} bytes needed, {len(self.data) - self.pos} left in the file"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def line(self) -> str:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise self.fail("truncated: a line without its newline")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("a global's name is not UTF-8") from None

    def text(self, n: int) -> str:
        try:
            return self.take(n).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise self.fail("a string is not valid UTF-8") from None

    # -- the stacks ------------------------------------------------------------------------
    def pop(self) -> Any:
        if not self.stack:
            raise self.fail("the stack is empty")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise self.fail("the stack is empty")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.fail("no MARK to pop to")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def settle(self, x: Any) -> Any:
        """A value as it may be stored in a container or returned: arrays must have their
        data, dtypes are fixed from now on."""
        kind = type(x)
        if kind is _ArraySpec:
            if x.array is None:
                raise self.fail("an array is used before its data (no BUILD)")
            return x.array
        if kind is _DtypeSpec:
            x.used = True
            return x.dtype
        return x

    def key(self, k: Any) -> Any:
        """A dict key or set element: only types that hash without recursion and without
        crafted collisions."""
        k = self.settle(k)
        if type(k) in (str, bytes, bool) or k is None:
            return k
        if type(k) is int and -_SAFE_INT < k < _SAFE_INT:
            return k
        what = "an int of 2**61 or more" if type(k) is int else f"a {type(k).__name__}"
        raise self.fail(f"a dict key or set element is {what}; checkpoints key by str or small int")

    def setitems(self, target: Any, items: list[Any]) -> None:
        if not isinstance(target, dict):
            raise self.fail(f"SETITEM on a {type(target).__name__}, not a dict")
        if len(items) % 2:
            raise self.fail("SETITEMS with an odd number of items")
        for i in range(0, len(items), 2):
            target[self.key(items[i])] = self.settle(items[i + 1])

    def additems(self, target: Any, items: list[Any]) -> None:
        if type(target) is not set:
            raise self.fail(f"ADDITEMS on a {type(target).__name__}, not a set")
        target.update(self.key(x) for x in items)

    def memo_get(self, idx: int) -> None:
        if idx not in self.memo:
            raise self.fail(f"memo entry {idx} was never stored")
        self.stack.append(self.memo[idx])

    # -- calls -----------------------------------------------------------------------------
    def _container(self, kind: str, args: tuple) -> Any:
        if len(args) > 1:
            raise self.fail(f"{kind}() with {len(args)} arguments")
        src = args[0] if args else ()
        if type(src) not in (list, tuple, dict, OrderedDict, set, frozenset):
            raise self.fail(f"{kind}() of a {type(src).__name__}")
        self.items_left -= len(src)
        if self.items_left < 0:
            raise self.fail("container copies add up to more elements than the file has bytes")
        if kind in ("tuple", "list"):
            return _CONTAINERS[kind](src)
        if kind in ("set", "frozenset"):
            return _CONTAINERS[kind](self.key(x) for x in src)
        out = _CONTAINERS[kind]()
        pairs = src.items() if isinstance(src, dict) else src
        for pair in pairs:
            if type(pair) not in (tuple, list) or len(pair) != 2:
                raise self.fail(f"{kind}() of something that is not a list of pairs")
            out[self.key(pair[0])] = pair[1]
        return out

    def _bytes(self, raw: Any, what: str) -> bytes:
        """Raw data as numpy pickles it: bytes, or (protocol 2 from Python 2) a latin-1 str."""
        if isinstance(raw, (bytes, bytearray)):
            return bytes(raw)
        if isinstance(raw, str):
            self.encoded_left -= len(raw)
            if self.encoded_left < 0:
                raise self.fail("encoded strings add up to more bytes than the file holds")
            try:
                return raw.encode("latin1")
            except UnicodeEncodeError:
                raise self.fail(f"{what} is a str that is not latin-1") from None
        raise self.fail(f"{what} is a {type(raw).__name__}, not bytes")

    def _dtype(self, args: tuple) -> _DtypeSpec:
        if not 1 <= len(args) <= 3 or type(args[0]) is not str:
            raise self.fail("numpy.dtype() takes a type string such as 'f4'")
        spec = args[0]
        if not _DTYPE_SPEC.fullmatch(spec):
            raise self.fail(f"numpy.dtype({spec[:40]!r}) is not a plain dtype")
        try:
            dtype = np.dtype(spec)
        except TypeError:
            raise self.fail(f"numpy.dtype({spec!r}) is not a dtype") from None
        try:
            return _DtypeSpec(_checked_dtype(dtype))
        except CheckpointFormatError as exc:
            raise (self.unsafe if isinstance(exc, UnsafeCheckpointError) else self.fail)(
                str(exc)
            ) from None

    def _scalar(self, args: tuple) -> Any:
        if len(args) != 2 or not isinstance(args[0], np.dtype):
            raise self.fail("numpy scalar() takes a dtype and its bytes")
        dtype = args[0]
        data = self._bytes(args[1], "a numpy scalar's data")
        if len(data) != dtype.itemsize:
            raise self.fail(
                f"a {dtype.str} scalar needs {dtype.itemsize} bytes, the file gives {len(data)}"
            )
        if dtype.kind == "b" and data[0] > 1:
            raise self.fail("a bool scalar holds a byte other than 0 and 1")
        return np.frombuffer(data, dtype=dtype, count=1)[0]

    def _encode(self, args: tuple) -> bytes:
        if not 1 <= len(args) <= 2 or type(args[0]) is not str:
            raise self.unsafe("refusing _codecs.encode outside str → bytes")
        encoding = args[1] if len(args) == 2 else "utf-8"
        if not isinstance(encoding, str) or encoding.lower() not in (
            "latin1",
            "latin-1",
            "utf-8",
            "utf8",
        ):
            raise self.unsafe("refusing _codecs.encode outside str → bytes")
        self.encoded_left -= len(args[0]) * (1 if "lat" in encoding.lower() else 4)
        if self.encoded_left < 0:
            raise self.fail("encoded strings add up to more bytes than the file holds")
        try:
            return codecs.encode(args[0], encoding)
        except UnicodeEncodeError:
            raise self.fail(f"a str that {encoding} cannot encode") from None

    def call(self, func: Any, args: Any) -> Any:
        """``REDUCE``: interpret an allow-listed global applied to ``args``."""
        if type(func) is not _Global:
            raise self.unsafe(f"refusing to call a {type(func).__name__}")
        if type(args) is not tuple:
            raise self.fail(f"the arguments of {func.module}.{func.name} are not a tuple")
        kind = func.kind
        if kind in _CONTAINERS:
            return self._container(kind, args)
        if kind == "reconstruct":
            if len(args) != 3 or type(args[0]) is not _Global or args[0].kind != "ndarray":
                raise self.unsafe("_reconstruct of anything but a plain numpy.ndarray")
            return _ArraySpec()
        if kind == "dtype":
            return self._dtype(args)
        if kind == "scalar":
            return self._scalar(args)
        if kind == "frombuffer":
            return self._frombuffer(args)
        if kind == "encode":
            return self._encode(args)
        if kind == "bytes":  # protocols 2 and 3 write b"" as bytes()
            if args:
                raise self.unsafe("refusing builtins.bytes(...) other than bytes()")
            return b""
        if kind == "eval":
            if (
                len(args) < 2
                or args[0] != "data"
                or type(args[1]) is not dict
                or not isinstance(args[1].get("data"), np.ndarray)
            ):
                raise self.unsafe("refusing builtins.eval other than eval('data', {'data': array})")
            return args[1]["data"]
        raise self.unsafe(
            "refusing numpy.ndarray(...) called directly: an array is only built from its own "
            "bytes (no views with chosen strides, no uninitialised memory)"
        )

    # -- BUILD -----------------------------------------------------------------------------
    def _build_dtype(self, spec: _DtypeSpec, state: Any) -> None:
        if spec.used:
            raise self.fail("a dtype is changed after it was used")
        if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise self.fail("a dtype's state is not numpy's (version 3 or 4, 8 or 9 fields)")
        endian, sub, names, fields, elsize = state[1:6]
        if endian not in ("<", ">", "|", "=") or sub is not None or names is not None:
            raise self.fail("a dtype's state describes a structured or subarray dtype")
        if fields is not None or (len(state) == 9 and state[8] is not None):
            raise self.fail("a dtype's state has fields or metadata")
        if any(type(v) is not int for v in state[5:8]):
            raise self.fail("a dtype's state has sizes that are not ints")
        dtype = spec.dtype
        if elsize != -1 and elsize != dtype.itemsize:
            if dtype.kind not in "SU" or not 0 < elsize <= 2**31 or elsize % dtype.alignment:
                raise self.fail(f"a {dtype.str} dtype cannot have {elsize}-byte elements")
            dtype = np.dtype(f"{dtype.kind}{elsize // (4 if dtype.kind == 'U' else 1)}")
        if endian in "<>=":
            dtype = dtype.newbyteorder(endian)
        spec.dtype = dtype

    def _build_array(self, spec: _ArraySpec, state: Any) -> np.ndarray:
        if spec.array is not None:
            raise self.fail("an array is given its data twice")
        if type(state) is tuple and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if type(state) is not tuple or len(state) != 4:
            raise self.fail("an array's state is not (version, shape, dtype, fortran, bytes)")
        shape, dtype, fortran, raw = state
        if fortran not in (0, 1) or type(fortran) not in (bool, int):
            raise self.fail("an array's order flag is not a bool")
        spec.array = self._array(shape, dtype, "F" if fortran else "C", raw, native=True)
        return spec.array

    def _array(
        self, shape: Any, dtype: Any, order: str, raw: Any, axes: Any = None, native: bool = False
    ) -> np.ndarray:
        """An array that owns a copy of exactly ``raw``: ``prod(shape) * itemsize`` bytes
        (``native``: in native byte order, as numpy's ``__setstate__`` makes it)."""
        if type(shape) is not tuple or any(type(d) is not int or d < 0 for d in shape):
            raise self.fail("an array's shape is not a tuple of non-negative ints")
        if len(shape) > MAX_DIMS:
            raise self.fail(f"an array has {len(shape)} dimensions (at most {MAX_DIMS})")
        if not isinstance(dtype, np.dtype):
            raise self.fail("an array's dtype is not a numpy dtype")
        raw = self._bytes(raw, "an array's data")
        count = math.prod(shape)
        if math.prod(d for d in shape if d) * dtype.itemsize > _MAX_ELEMENTS:
            raise self.fail(f"an array of shape {list(shape)} is too large for numpy")
        nbytes = count * dtype.itemsize
        if nbytes != len(raw):
            raise self.fail(
                f"an array of shape {list(shape)} and dtype {dtype.str} needs {nbytes} bytes, "
                f"the file gives {len(raw)}"
            )
        self.bytes_left -= nbytes
        if self.bytes_left < 0:
            raise self.fail("arrays add up to more bytes than the file holds")
        flat = np.frombuffer(raw, dtype=dtype, count=count)
        if dtype.kind == "b" and count and int(flat.view(np.uint8).max()) > 1:
            raise self.fail("a bool array holds bytes other than 0 and 1")
        if axes is not None:  # numpy's order 'K': C order, then the axes permuted
            if type(axes) not in (tuple, list) or sorted(axes) != list(range(len(shape))):
                raise self.fail("an array's axis order is not a permutation of its axes")
            return flat.reshape(shape).copy().transpose(axes)
        shaped = flat.reshape(shape, order=order)
        if native and not dtype.isnative:
            return shaped.astype(dtype.newbyteorder("="), order="K")
        return shaped.copy(order="K")

    def _frombuffer(self, args: tuple) -> np.ndarray:
        """numpy's ``_frombuffer(buffer, dtype, shape, order[, axis_order])`` (protocol 5)."""
        if not 4 <= len(args) <= 5 or args[3] not in ("C", "F", "K"):
            raise self.fail("_frombuffer takes (bytes, dtype, shape, 'C' | 'F' | 'K'[, axes])")
        axes = args[4] if len(args) == 5 else None
        if (args[3] == "K") != (axes is not None):
            raise self.fail("_frombuffer: order 'K' comes with an axis order, and only it")
        return self._array(args[2], args[1], args[3], args[0], axes)

    def build(self, state: Any) -> None:
        inst = self.top()
        if type(inst) is _DtypeSpec:
            self._build_dtype(inst, state)
        elif type(inst) is _ArraySpec:
            self.stack[-1] = self._build_array(inst, state)
        else:
            raise self.unsafe(f"refusing BUILD (setting the state) of a {type(inst).__name__}")

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> Any:
        handlers = _HANDLERS
        data = self.data
        end = len(data)
        # The machine makes no reference cycles a collection could free before it ends (a file
        # can make one, which is refused afterwards and freed then): without the collector's
        # passes over the young objects a file of a million tiny containers reads ~3x faster.
        collecting = gc.isenabled()
        gc.disable()
        try:
            while True:
                pos = self.pos
                if pos >= end:
                    self.op_pos = pos
                    raise self.fail("truncated: the file ends before STOP")
                self.op_pos = pos
                self.pos = pos + 1
                if handlers[data[pos]](self):
                    return self.settle(self.pop())
        finally:
            if collecting:
                gc.enable()


def _op_proto(m: _Machine) -> None:
    version = m.uint(1)
    if version > pickle.HIGHEST_PROTOCOL:
        raise m.fail(f"unsupported pickle protocol {version}")


def _op_frame(m: _Machine) -> None:
    size = m.uint(8)
    if size > len(m.data) - m.pos:
        raise m.fail(f"truncated: a frame of {size} bytes, {len(m.data) - m.pos} left")


def _op_tuple(m: _Machine) -> None:
    items = m.pop_mark()  # first: it replaces m.stack
    m.stack.append(tuple(m.settle(x) for x in items))


def _op_tuple_n(n: int):
    def op(m: _Machine) -> None:
        stack = m.stack
        if len(stack) < n:
            raise m.fail("the stack is empty")
        items = stack[-n:]
        if any(type(x) in _SPECS for x in items):
            items = [m.settle(x) for x in items]
        stack[-n:] = [tuple(items)]

    return op


def _op_list(m: _Machine) -> None:
    items = m.pop_mark()
    m.stack.append([m.settle(x) for x in items])


def _op_append(m: _Machine) -> None:
    value = m.pop()
    target = m.top()
    if type(target) is not list:
        raise m.fail(f"APPEND to a {type(target).__name__}, not a list")
    target.append(m.settle(value))


def _op_appends(m: _Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    if type(target) is not list:
        raise m.fail(f"APPENDS to a {type(target).__name__}, not a list")
    target.extend(m.settle(x) for x in items)


def _op_dict(m: _Machine) -> None:
    items = m.pop_mark()
    out: dict[Any, Any] = {}
    m.setitems(out, items)
    m.stack.append(out)


def _op_setitem(m: _Machine) -> None:
    value = m.pop()
    key = m.pop()
    m.setitems(m.top(), [key, value])


def _op_setitems(m: _Machine) -> None:
    items = m.pop_mark()
    m.setitems(m.top(), items)


def _op_additems(m: _Machine) -> None:
    items = m.pop_mark()
    m.additems(m.top(), items)


def _op_frozenset(m: _Machine) -> None:
    items = m.pop_mark()
    m.stack.append(frozenset(m.key(x) for x in items))


def _op_global(m: _Machine, module: str, name: str) -> None:
    try:
        kind = resolve_global(module, name)
    except UnsafeCheckpointError as exc:
        raise m.unsafe(str(exc)) from None
    m.stack.append(_Global(module, name, kind))


def _op_stack_global(m: _Machine) -> None:
    name = m.pop()
    module = m.pop()
    if type(module) is not str or type(name) is not str:
        raise m.fail("STACK_GLOBAL of something that is not two strs")
    _op_global(m, module, name)


def _op_reduce(m: _Machine) -> None:
    args = m.pop()
    func = m.pop()
    m.stack.append(m.call(func, args))


def _op_put(size: int | None):
    def op(m: _Machine) -> None:
        idx = len(m.memo) if size is None else m.uint(size)
        m.memo[idx] = m.top()

    return op


def _refuse(msg: str, unsafe: bool):
    def op(m: _Machine) -> None:
        raise (m.unsafe if unsafe else m.fail)(msg)

    return op


def _push(make):
    def op(m: _Machine) -> None:
        m.stack.append(make(m))

    return op


def _signed(m: _Machine, size: int) -> int:
    return int.from_bytes(m.take(size), "little", signed=True)


def _long4(m: _Machine) -> int:
    n = _signed(m, 4)
    if n < 0:
        raise m.fail("LONG4 with a negative length")
    return int.from_bytes(m.take(n), "little", signed=True)


def _binstring(m: _Machine) -> str:
    n = _signed(m, 4)
    if n < 0:
        raise m.fail("BINSTRING with a negative length")
    return m.take(n).decode("latin1")  # Python 2 str, read as paddle.load does (latin-1)


def _op_mark(m: _Machine) -> None:
    m.marks.append(m.stack)
    m.stack = []


def _op_pop_mark(m: _Machine) -> None:
    m.pop_mark()


def _pop_op(m: _Machine) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


_TEXT = "protocol-0 text opcodes are not used by checkpoints (pickle protocols 2 to 5)"
_P = pickle  # opcode constants (bytes of length 1)
_TABLE: dict[bytes, tuple[str, Any]] = {
    _P.PROTO: ("PROTO", _op_proto),
    _P.FRAME: ("FRAME", _op_frame),
    _P.STOP: ("STOP", lambda m: True),
    _P.MARK: ("MARK", _op_mark),
    _P.POP: ("POP", _pop_op),
    _P.POP_MARK: ("POP_MARK", _op_pop_mark),
    _P.DUP: ("DUP", _push(lambda m: m.top())),
    _P.NONE: ("NONE", _push(lambda m: None)),
    _P.NEWTRUE: ("NEWTRUE", _push(lambda m: True)),
    _P.NEWFALSE: ("NEWFALSE", _push(lambda m: False)),
    _P.BININT: ("BININT", _push(lambda m: _signed(m, 4))),
    _P.BININT1: ("BININT1", _push(lambda m: m.uint(1))),
    _P.BININT2: ("BININT2", _push(lambda m: m.uint(2))),
    _P.LONG1: ("LONG1", _push(lambda m: _signed(m, m.uint(1)))),
    _P.LONG4: ("LONG4", _push(_long4)),
    _P.BINFLOAT: ("BINFLOAT", _push(lambda m: struct.unpack(">d", m.take(8))[0])),
    _P.BINSTRING: ("BINSTRING", _push(_binstring)),
    _P.SHORT_BINSTRING: ("SHORT_BINSTRING", _push(lambda m: m.take(m.uint(1)).decode("latin1"))),
    _P.BINBYTES: ("BINBYTES", _push(lambda m: m.take(m.uint(4)))),
    _P.SHORT_BINBYTES: ("SHORT_BINBYTES", _push(lambda m: m.take(m.uint(1)))),
    _P.BINBYTES8: ("BINBYTES8", _push(lambda m: m.take(m.uint(8)))),
    _P.BYTEARRAY8: ("BYTEARRAY8", _push(lambda m: bytearray(m.take(m.uint(8))))),
    _P.BINUNICODE: ("BINUNICODE", _push(lambda m: m.text(m.uint(4)))),
    _P.SHORT_BINUNICODE: ("SHORT_BINUNICODE", _push(lambda m: m.text(m.uint(1)))),
    _P.BINUNICODE8: ("BINUNICODE8", _push(lambda m: m.text(m.uint(8)))),
    _P.EMPTY_TUPLE: ("EMPTY_TUPLE", _push(lambda m: ())),
    _P.TUPLE: ("TUPLE", _op_tuple),
    _P.TUPLE1: ("TUPLE1", _op_tuple_n(1)),
    _P.TUPLE2: ("TUPLE2", _op_tuple_n(2)),
    _P.TUPLE3: ("TUPLE3", _op_tuple_n(3)),
    _P.EMPTY_LIST: ("EMPTY_LIST", _push(lambda m: [])),
    _P.LIST: ("LIST", _op_list),
    _P.APPEND: ("APPEND", _op_append),
    _P.APPENDS: ("APPENDS", _op_appends),
    _P.EMPTY_DICT: ("EMPTY_DICT", _push(lambda m: {})),
    _P.DICT: ("DICT", _op_dict),
    _P.SETITEM: ("SETITEM", _op_setitem),
    _P.SETITEMS: ("SETITEMS", _op_setitems),
    _P.EMPTY_SET: ("EMPTY_SET", _push(lambda m: set())),
    _P.ADDITEMS: ("ADDITEMS", _op_additems),
    _P.FROZENSET: ("FROZENSET", _op_frozenset),
    _P.GLOBAL: ("GLOBAL", lambda m: _op_global(m, m.line(), m.line())),
    _P.STACK_GLOBAL: ("STACK_GLOBAL", _op_stack_global),
    _P.REDUCE: ("REDUCE", _op_reduce),
    _P.BUILD: ("BUILD", lambda m: m.build(m.pop())),
    _P.BINPUT: ("BINPUT", _op_put(1)),
    _P.LONG_BINPUT: ("LONG_BINPUT", _op_put(4)),
    _P.MEMOIZE: ("MEMOIZE", _op_put(None)),
    _P.BINGET: ("BINGET", lambda m: m.memo_get(m.uint(1))),
    _P.LONG_BINGET: ("LONG_BINGET", lambda m: m.memo_get(m.uint(4))),
    _P.PERSID: ("PERSID", _refuse("refusing to load: the file uses pickle persistent ids", True)),
    _P.BINPERSID: (
        "BINPERSID",
        _refuse("refusing to load: the file uses pickle persistent ids", True),
    ),
    _P.EXT1: ("EXT1", _refuse("refusing the pickle extension registry", True)),
    _P.EXT2: ("EXT2", _refuse("refusing the pickle extension registry", True)),
    _P.EXT4: ("EXT4", _refuse("refusing the pickle extension registry", True)),
    _P.INST: ("INST", _refuse("refusing to instantiate a class", True)),
    _P.OBJ: ("OBJ", _refuse("refusing to instantiate a class", True)),
    _P.NEWOBJ: ("NEWOBJ", _refuse("refusing to instantiate a class", True)),
    _P.NEWOBJ_EX: ("NEWOBJ_EX", _refuse("refusing to instantiate a class", True)),
    _P.NEXT_BUFFER: ("NEXT_BUFFER", _refuse("out-of-band buffers are not in checkpoints", False)),
    _P.READONLY_BUFFER: (
        "READONLY_BUFFER",
        _refuse("out-of-band buffers are not in checkpoints", False),
    ),
    **{
        code: (name, _refuse(_TEXT, False))
        for code, name in (
            (_P.INT, "INT"),
            (_P.LONG, "LONG"),
            (_P.FLOAT, "FLOAT"),
            (_P.STRING, "STRING"),
            (_P.UNICODE, "UNICODE"),
            (_P.GET, "GET"),
            (_P.PUT, "PUT"),
        )
    },
}
_OPS: dict[int, tuple[str, Any]] = {code[0]: entry for code, entry in _TABLE.items()}
_HANDLERS = [
    _OPS[code][1] if code in _OPS else _refuse("not a pickle opcode a checkpoint uses", False)
    for code in range(256)
]


# -- the shape of the result -----------------------------------------------------------------
def _label(key: Any) -> str:
    text = repr(key)
    return f"[{text[:40]}…]" if len(text) > 40 else f"[{text}]"


def _children(obj: Any):
    if isinstance(obj, dict):
        return ((_label(k), v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return ((f"[{i}]", v) for i, v in enumerate(obj))
    return iter(())  # sets hold only keys (atoms)


def check_structure(root: Any, source: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse cycles, nesting deeper than ``max_depth`` containers and leftover tokens, in one
    walk that visits each shared container once (iterative: no recursion limit).

    Raises:
        CheckpointFormatError: naming ``source`` and the path of keys to the problem.
    """
    containers = (list, tuple, dict, set, frozenset)

    def fail(msg: str, path: list[str]) -> CheckpointFormatError:
        where = "".join(path) or "the top level"
        if len(where) > 200:
            where = where[:80] + " … " + where[-80:]
        return CheckpointFormatError(f"{source}: {msg} at {where}")

    def leaf(x: Any, path: list[str]) -> None:
        if type(x) is _Global:
            raise fail(f"a reference to {x.module}.{x.name} is left in the data", path)

    if not isinstance(root, containers):
        leaf(root, [])
        return
    height: dict[int, int] = {}  # finished containers: their nesting, counting themselves
    on_path = {id(root)}
    path: list[str] = []
    frames: list[list[Any]] = [[root, _children(root), 0]]
    while frames:
        frame = frames[-1]
        for label, child in frame[1]:
            if not isinstance(child, containers):
                leaf(child, [*path, label])
                continue
            cid = id(child)
            if cid in on_path:
                raise fail("a container holds itself (a cycle)", [*path, label])
            done = height.get(cid)
            if (
                done is None
                and len(frames) + 1 > max_depth
                or (done is not None and len(frames) + done > max_depth)
            ):
                raise fail(f"containers nested deeper than {max_depth}", [*path, label])
            if done is not None:
                frame[2] = max(frame[2], done)
                continue
            frames.append([child, _children(child), 0])
            path.append(label)
            on_path.add(cid)
            break
        else:
            frames.pop()
            h = frame[2] + 1
            height[id(frame[0])] = h
            on_path.discard(id(frame[0]))
            if frames:
                path.pop()
                frames[-1][2] = max(frames[-1][2], h)


def unpickle(data: bytes, *, source: str = "<bytes>", max_depth: int = MAX_DEPTH) -> Any:
    """Read a checkpoint pickle safely (see the module docstring).

    Args:
        data: the file's contents.
        source: the file's name, for error messages.
        max_depth: the deepest nesting of containers accepted.

    Returns:
        The unpickled object: numpy arrays and scalars, plain containers, numbers, strings.

    Raises:
        UnsafeCheckpointError: the pickle imports or calls something not allowed.
        CheckpointFormatError: anything else that is not a well-formed checkpoint pickle.
    """
    machine = _Machine(bytes(data), source)
    result = machine.run()
    del machine
    check_structure(result, source, max_depth)
    return result
