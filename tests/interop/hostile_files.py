"""Hostile checkpoint files, built byte by byte: pickles for the Paddle reader, protobuf for the
MindSpore one. Shared by the regression tests and the hypothesis strategies."""

from __future__ import annotations

import os
import pickle
import struct

from hypothesis import strategies as st

GOLDEN = os.path.join(os.path.dirname(__file__), os.pardir, "golden")
PADDLE_FILES = os.path.join(GOLDEN, "paddle", "checkpoints")
MINDSPORE_FILES = os.path.join(GOLDEN, "mindspore", "checkpoints")


def golden(folder: str, suffixes: tuple[str, ...]) -> dict[str, bytes]:
    """The real framework-written files of a golden folder, by name."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(suffixes):
            with open(os.path.join(folder, name), "rb") as f:
                out[name] = f.read()
    return out


# -- pickles (protocol 4 opcodes) ------------------------------------------------------------
def u(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) < 256:
        return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def b(raw: bytes) -> bytes:
    if len(raw) < 256:
        return pickle.SHORT_BINBYTES + bytes([len(raw)]) + raw
    return pickle.BINBYTES + struct.pack("<I", len(raw)) + raw


def i(value: int) -> bytes:
    if 0 <= value < 256:
        return pickle.BININT1 + bytes([value])
    if -(2**31) <= value < 2**31:
        return pickle.BININT + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(raw)]) + raw


def glob(module: str, name: str) -> bytes:
    return u(module) + u(name) + pickle.STACK_GLOBAL


def tup(*parts: bytes) -> bytes:
    return pickle.MARK + b"".join(parts) + pickle.TUPLE


def get(k: int) -> bytes:
    return pickle.BINGET + bytes([k]) if k < 256 else pickle.LONG_BINGET + struct.pack("<I", k)


def pk(body: bytes) -> bytes:
    return pickle.PROTO + b"\x04" + body + pickle.STOP


def dtype_ops(spec: str, endian: str = "<", elsize: int = -1) -> bytes:
    """``numpy.dtype(spec, False, True)`` with its ``BUILD`` state, as numpy pickles it."""
    state = tup(i(3), u(endian), b"NNN", i(elsize), i(-1), i(0))
    return (
        glob("numpy", "dtype")
        + u(spec)
        + pickle.NEWFALSE
        + pickle.NEWTRUE
        + pickle.TUPLE3
        + pickle.REDUCE
        + state
        + pickle.BUILD
    )


def array_ops(shape: tuple, dtype: bytes, raw: bytes, fortran: bool = False) -> bytes:
    """An ndarray as numpy pickles it: ``_reconstruct(ndarray, (0,), b'b')`` then ``BUILD``
    with ``(1, shape, dtype, fortran, raw)``; ``dtype`` is the ops that push the dtype."""
    return (
        glob("numpy._core.multiarray", "_reconstruct")
        + glob("numpy", "ndarray")
        + i(0)
        + pickle.TUPLE1
        + b(b"b")
        + pickle.TUPLE3
        + pickle.REDUCE
        + tup(
            i(1),
            tup(*(i(d) for d in shape)),
            dtype,
            pickle.NEWTRUE if fortran else pickle.NEWFALSE,
            b(raw),
        )
        + pickle.BUILD
    )


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + pickle.REDUCE


def dag_ops(levels: int) -> bytes:
    """Ops pushing ``a`` after ``a = []; a = [a, a]`` ``levels`` times: 2**levels paths."""
    body = pickle.EMPTY_LIST + pickle.MEMOIZE + pickle.POP  # memo 0: level 0
    for k in range(levels):  # memo k + 1: [level k, level k]
        body += pickle.EMPTY_LIST + pickle.MARK + get(k) + get(k) + pickle.APPENDS
        body += pickle.MEMOIZE + pickle.POP
    return body + get(levels)


def dag(levels: int) -> bytes:
    return pk(dag_ops(levels))


def nested_lists(depth: int) -> bytes:
    return pk(pickle.EMPTY_LIST * depth + pickle.APPEND * (depth - 1))


def self_list() -> bytes:
    return pk(pickle.EMPTY_LIST + pickle.MEMOIZE + get(0) + pickle.APPEND)


def deep_tuple_key(depth: int) -> bytes:
    """A dict keyed by a tuple nested ``depth`` deep: hashing it recurses in C."""
    return pk(
        pickle.EMPTY_DICT + pickle.NONE + pickle.TUPLE1 * depth + pickle.NONE + pickle.SETITEM
    )


def colliding_keys(n: int) -> bytes:
    """A dict of ``n`` int keys that all hash to the same value (multiples of 2**61 - 1)."""
    keys = b"".join(i(k * (2**61 - 1)) + pickle.NONE for k in range(1, n + 1))
    return pk(pickle.EMPTY_DICT + pickle.MARK + keys + pickle.SETITEMS)


def encode_amplified(size: int, copies: int) -> bytes:
    """One memoised str of ``size`` chars, ``_codecs.encode``-d ``copies`` times."""
    body = glob("_codecs", "encode") + pickle.MEMOIZE + u("x" * size) + pickle.MEMOIZE
    body += pickle.EMPTY_LIST + pickle.MARK
    body += (get(0) + get(1) + pickle.TUPLE1 + pickle.REDUCE) * copies
    return pk(body + pickle.APPENDS)


def list_copies(size: int, copies: int) -> bytes:
    """One memoised list of ``size`` items, copied by ``list(...)`` ``copies`` times."""
    body = glob("builtins", "list") + pickle.MEMOIZE
    body += pickle.EMPTY_LIST + pickle.MEMOIZE + pickle.MARK + pickle.NONE * size + pickle.APPENDS
    body += pickle.EMPTY_LIST + pickle.MARK
    body += (get(0) + get(1) + pickle.TUPLE1 + pickle.REDUCE) * copies
    return pk(body + pickle.APPENDS)


def ndarray_call(shape: tuple, buffer: bytes | None, strides: tuple | None = None) -> bytes:
    """``numpy.ndarray(shape, 'u1'[, buffer, 0, strides])`` called directly."""
    args = [tup(*(i(d) for d in shape)), u("u1")]
    if buffer is not None:
        args += [b(buffer), i(0), tup(*(i(s) for s in strides or ()))]
    return pk(call(glob("numpy", "ndarray"), *args))


def reconstruct_only(n: int) -> bytes:
    """``_reconstruct(ndarray, (n,), b'b')`` with no ``BUILD``: an array of no data."""
    return pk(
        call(
            glob("numpy._core.multiarray", "_reconstruct"),
            glob("numpy", "ndarray"),
            tup(i(n)),
            b(b"b"),
        )
    )


def dtype_changed_after_use() -> bytes:
    """An ``S1`` array of 4 bytes whose dtype is then rebuilt with 1 MiB elements: numpy's own
    ``__setstate__`` lets the array claim 4 MiB over its 4 bytes."""
    body = dtype_ops("S1", "|", 1) + pickle.MEMOIZE  # memo 0: the dtype
    body += array_ops((4,), get(0), b"abcd") + pickle.MEMOIZE  # memo 1: the array
    body += get(0) + tup(i(3), u("|"), b"NNN", i(2**20), i(1), i(0)) + pickle.BUILD + pickle.POP
    return pk(body + get(1))


def split_amplified(size: int, copies: int) -> bytes:
    """One array of ``size`` bytes under ``copies`` keys, all listed as slices of one big array
    in ``UnpackBigParamInfor@@``: joining them would copy it ``copies`` times."""
    body = pickle.EMPTY_DICT + pickle.MARK
    body += u("k0") + array_ops((size,), dtype_ops("u1", "|"), b"\0" * size) + pickle.MEMOIZE
    names = [f"k{n}" for n in range(copies)]
    # memo: 0 is the array (the first MEMOIZE) -- the dtype and globals are not memoised
    body += b"".join(u(n) + get(0) for n in names[1:])
    info = pickle.EMPTY_DICT + u("big") + pickle.EMPTY_DICT + pickle.MARK
    info += u("OriginShape") + tup(i(size * copies)) + u("slices") + pickle.EMPTY_LIST + pickle.MARK
    info += b"".join(u(n) for n in names) + pickle.APPENDS + pickle.SETITEMS + pickle.SETITEM
    body += u("UnpackBigParamInfor@@") + info + pickle.SETITEMS
    return pk(body)


def bool_array(raw: bytes) -> bytes:
    return pk(
        pickle.EMPTY_DICT
        + u("w")
        + array_ops((len(raw),), dtype_ops("b1", "|"), raw)
        + pickle.SETITEM
    )


# -- MindSpore protobuf --------------------------------------------------------------------
def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def tensor(dims: list[int], tensor_type: str | bytes, content: bytes) -> bytes:
    tt = tensor_type.encode() if isinstance(tensor_type, str) else tensor_type
    return b"".join(varint(1 << 3) + varint(d) for d in dims) + field(2, tt) + field(3, content)


def value(tag: str | bytes, tensor_msg: bytes) -> bytes:
    raw = tag.encode() if isinstance(tag, str) else tag
    return field(1, field(1, raw) + field(2, tensor_msg))


def ckpt(*entries: tuple) -> bytes:
    """A checkpoint of ``(tag, dims, tensor_type, content)`` entries."""
    return b"".join(value(tag, tensor(dims, tt, content)) for tag, dims, tt, content in entries)


# -- mutations of real files ----------------------------------------------------------------
@st.composite
def mutated(draw, files: dict[str, bytes]):
    """A real file, then a few edits: bytes replaced, runs deleted or repeated, random bytes
    inserted, a truncation."""
    data = bytearray(files[draw(st.sampled_from(sorted(files)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "delete", "repeat", "insert", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 8))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        else:
            del data[at:]
    return bytes(data)
