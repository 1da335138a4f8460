r"""MindSpore ``.ckpt`` files, read and written without MindSpore and without protobuf.

A ``.ckpt`` file (MindSpore 2.x, ``mindspore/train/checkpoint.proto``, proto2) is a
concatenation of serialized ``Checkpoint`` messages, which protobuf parses as one message::

    message Checkpoint {
      message Value {
        required string tag = 1;
        oneof value { TensorProto tensor = 2; MapTensorProto maptensor = 3; }
      }
      repeated Value value = 1;
    }
    message TensorProto {
      repeated int64 dims = 1;            // not packed: one varint field per dimension
      required string tensor_type = 2;    // "Float32", "Int32", "BFloat16", "Bool", "str", ...
      required bytes tensor_content = 3;  // raw little-endian C-order bytes
    }

* a tensor larger than 512 MiB is written as several ``Value``\ s with the same tag, whose
  contents are concatenated;
* ``crc_check=True`` appends ``b"crc_num"`` and the CRC32 (zlib's, over every serialized
  message in order) as 10 big-endian bytes;
* strings (``append_dict`` values) are numpy ``U`` arrays: UTF-32-LE, type ``"str"``, dims
  ``[0]`` (MindSpore writes them so and ignores the dims; it also reads a tensor of dims ``[0]``
  holding one element as a scalar).

Reading executes no code: :func:`decode` is a small protobuf wire-format decoder that checks
every length against the data (and against the enclosing message: a nested length cannot lie)
and refuses anything it does not understand with a
:class:`~polyoptim.interop.errors.CheckpointFormatError` (a :class:`CheckpointError`, a
``ValueError``) naming the file and the byte offset: truncated varints and fields, varints of
2**64 or more, strings that are not UTF-8 / UTF-32, more than :data:`MAX_DIMS` dimensions,
dimensions whose product overflows or needs more bytes than the tensor holds, ``Bool`` bytes
other than 0 and 1, ``str`` tensors with dimensions. Its cost is linear in the file: each
tensor is exactly its content bytes. Nothing is returned for a malformed or truncated file.

Example:
    >>> import torch, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.ckpt")
    >>> write_checkpoint(path, [("w", torch.ones(2, 3)), ("global_step", torch.tensor([2],
    ...     dtype=torch.int32)), ("note", "hi")], crc_check=True)
    >>> d = read_checkpoint(path, crc_check=True)
    >>> list(d), d["w"].shape, d["note"]
    (['w', 'global_step', 'note'], torch.Size([2, 3]), 'hi')
"""

from __future__ import annotations

import binascii
import math
import os
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError, CheckpointFormatError

__all__ = [
    "CRC_MARKER",
    "CheckpointError",
    "CheckpointFormatError",
    "MAX_DIMS",
    "SLICE_BYTES",
    "decode",
    "encode",
    "read_checkpoint",
    "write_checkpoint",
]

Value = torch.Tensor | str

CRC_MARKER = b"crc_num"
_CRC_FOOTER = len(CRC_MARKER) + 10
SLICE_BYTES = 512 * 1024 * 1024
"""Tensors with more content bytes than this are written as several same-tag Values."""

# MindSpore tensor_type -> (numpy little-endian dtype, torch dtype)
_TYPES: dict[str, tuple[str, torch.dtype]] = {
    "Bool": ("|b1", torch.bool),
    "Int8": ("|i1", torch.int8),
    "UInt8": ("|u1", torch.uint8),
    "Int16": ("<i2", torch.int16),
    "UInt16": ("<u2", torch.uint16),
    "Int32": ("<i4", torch.int32),
    "UInt32": ("<u4", torch.uint32),
    "Int64": ("<i8", torch.int64),
    "UInt64": ("<u8", torch.uint64),
    "Float16": ("<f2", torch.float16),
    "BFloat16": ("<u2", torch.bfloat16),  # read as raw 16-bit patterns, then viewed
    "Float32": ("<f4", torch.float32),
    "Float64": ("<f8", torch.float64),
}
_TORCH_TO_MS = {tdt: name for name, (_, tdt) in _TYPES.items()}


MAX_DIMS = 32
"""Tensors with more dimensions are refused (numpy and torch allow 64)."""
_MAX_BYTES = 2**62  # numpy's and torch's sizes are signed 64-bit


# -- wire format -------------------------------------------------------------------------------
def _varint(buf: memoryview, pos: int, end: int, what: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise CheckpointFormatError(f"truncated varint in {what} at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result >> 64:
                raise CheckpointFormatError(f"varint of 2**64 or more in {what} at byte {pos - 1}")
            return result, pos
        shift += 7
        if shift >= 70:
            raise CheckpointFormatError(f"varint longer than 10 bytes in {what} at byte {pos}")


def _fields(buf: memoryview, start: int, end: int, what: str):
    """Yield ``(field number, wire type, value, offset)``; value is an int (varint/fixed) or a
    ``(start, end)`` slice for length-delimited fields, offset where the field starts."""
    pos = start
    while pos < end:
        at = pos
        key, pos = _varint(buf, pos, end, what)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise CheckpointFormatError(f"invalid field number 0 in {what} at byte {pos}")
        if wire == 0:
            value, pos = _varint(buf, pos, end, what)
            yield number, wire, value, at
        elif wire == 2:
            length, pos = _varint(buf, pos, end, what)
            if length > end - pos:
                raise CheckpointFormatError(
                    f"truncated {what}: a field of {length} bytes at byte {pos} runs past "
                    f"the end ({end - pos} bytes left)"
                )
            yield number, wire, (pos, pos + length), at
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if size > end - pos:
                raise CheckpointFormatError(f"truncated fixed-width field in {what} at byte {pos}")
            yield number, wire, int.from_bytes(buf[pos : pos + size], "little"), at
            pos += size
        else:
            raise CheckpointFormatError(
                f"unsupported protobuf wire type {wire} in {what} at byte {pos}"
            )


def _text(buf: memoryview, span: tuple[int, int], what: str) -> str:
    try:
        return bytes(buf[span[0] : span[1]]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointFormatError(
            f"{what} is not valid UTF-8 (byte {span[0] + exc.start})"
        ) from None


def _tensor_proto(buf: memoryview, start: int, end: int, tag: str):
    dims: list[int] = []
    tensor_type = None
    content = None
    for number, wire, value, at in _fields(buf, start, end, f"tensor {tag!r}"):
        if number == 1 and wire == 0:
            dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif number == 1 and wire == 2:  # packed dims (protobuf parsers accept both)
            pos, stop = value
            while pos < stop:
                d, pos = _varint(buf, pos, stop, f"dims of {tag!r}")
                dims.append(d - (1 << 64) if d >= 1 << 63 else d)
        elif number == 2 and wire == 2:
            tensor_type = _text(buf, value, f"tensor_type of {tag!r}")
        elif number == 3 and wire == 2:
            content = bytes(buf[value[0] : value[1]])
        else:
            raise CheckpointFormatError(
                f"unexpected field {number} (wire type {wire}) in tensor {tag!r} at byte {at}"
            )
        if len(dims) > MAX_DIMS:
            raise CheckpointFormatError(
                f"tensor {tag!r} has more than {MAX_DIMS} dimensions (at byte {start})"
            )
    if tensor_type is None or content is None:
        raise CheckpointFormatError(
            f"tensor {tag!r} lacks its tensor_type or tensor_content (at byte {start})"
        )
    if any(d < 0 for d in dims):
        raise CheckpointFormatError(
            f"tensor {tag!r} has a negative dimension: {dims} (at byte {start})"
        )
    return dims, tensor_type, content


def _values(buf: memoryview, end: int):
    """Yield ``(tag, offset, dims, tensor_type, content)`` for every Value in file order."""
    for number, wire, value, at in _fields(buf, 0, end, "checkpoint"):
        if number != 1 or wire != 2:
            raise CheckpointFormatError(
                f"not a MindSpore checkpoint: field {number} (wire type {wire}) at top level "
                f"at byte {at}"
            )
        tag = None
        tensor = None
        for vnum, vwire, vval, vat in _fields(buf, value[0], value[1], "value"):
            if vnum == 1 and vwire == 2:
                tag = _text(buf, vval, "a tag")
            elif vnum == 2 and vwire == 2:
                tensor = vval
            elif vnum == 3:
                raise CheckpointFormatError(
                    f"value {tag!r} is a MapTensor, which polyoptim does not read (at byte {vat})"
                )
            else:
                raise CheckpointFormatError(
                    f"unexpected field {vnum} (wire type {vwire}) in a value at byte {vat}"
                )
        if tag is None or tensor is None:
            raise CheckpointFormatError(f"a value at byte {value[0]} lacks its tag or its tensor")
        yield (tag, tensor[0], *_tensor_proto(buf, tensor[0], tensor[1], tag))


def _split_footer(data: bytes, crc_check: bool) -> bytes:
    has_footer = len(data) >= _CRC_FOOTER and data[-_CRC_FOOTER:-10] == CRC_MARKER
    if not has_footer:
        if crc_check:
            raise CheckpointFormatError(
                f"crc_check=True but the file has no CRC footer (its last {_CRC_FOOTER} bytes)"
            )
        return data
    body = data[:-_CRC_FOOTER]
    if crc_check:
        stored = int.from_bytes(data[-10:], "big")
        actual = binascii.crc32(body)
        if stored != actual:
            raise CheckpointFormatError(
                f"CRC mismatch: the footer (at byte {len(body)}) says {stored:#010x}, the "
                f"content gives {actual:#010x}"
            )
    return body


def _to_value(tag: str, where: int, dims: list[int], tensor_type: str, content: bytes) -> Value:
    at = f"(tensor at byte {where})"
    if tensor_type == "str":
        if dims not in ([], [0]):  # MindSpore writes [0] and ignores it
            raise CheckpointFormatError(f"string {tag!r} has dimensions {dims[:8]} {at}")
        if len(content) % 4:
            raise CheckpointFormatError(
                f"string {tag!r} is not UTF-32 (length {len(content)}) {at}"
            )
        try:
            return content.decode("utf-32-le").rstrip("\x00")
        except UnicodeDecodeError as exc:
            raise CheckpointFormatError(
                f"string {tag!r} is not valid UTF-32 (its byte {exc.start}) {at}"
            ) from None
    if tensor_type not in _TYPES:
        raise CheckpointFormatError(
            f"tensor {tag!r} has unsupported tensor_type {tensor_type[:40]!r} {at}"
        )
    np_dtype, torch_dtype = _TYPES[tensor_type]
    itemsize = np.dtype(np_dtype).itemsize
    if dims == [0] and len(content) == itemsize:  # MindSpore reads dims [0] as a scalar
        dims = []
    if math.prod(d for d in dims if d) * itemsize > _MAX_BYTES:
        raise CheckpointFormatError(f"tensor {tag!r} has dimensions {dims} too large {at}")
    expected = math.prod(dims) * itemsize
    if len(content) != expected:
        raise CheckpointFormatError(
            f"tensor {tag!r} ({tensor_type}{dims}) needs {expected} bytes, the file holds "
            f"{len(content)} {at}"
        )
    arr = np.frombuffer(content, dtype=np_dtype).reshape(dims)
    if torch_dtype is torch.bool and content and max(content) > 1:
        raise CheckpointFormatError(f"Bool tensor {tag!r} holds bytes other than 0 and 1 {at}")
    if sys.byteorder != "little":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    out = torch.from_numpy(arr.copy())
    return out.view(torch.bfloat16) if torch_dtype is torch.bfloat16 else out


def decode(data: bytes, *, crc_check: bool = False) -> dict[str, Value]:
    """Parse the bytes of a ``.ckpt`` file into ``{name: tensor or str}`` in file order.

    Args:
        data: the whole file.
        crc_check: require a CRC footer and verify it (MindSpore's ``crc_check=True``);
            without it a footer is stripped unchecked, as MindSpore does.

    Raises:
        CheckpointError: on any malformed, truncated or unsupported content.
    """
    body = _split_footer(bytes(data), crc_check)
    buf = memoryview(body)
    parts: dict[str, list] = {}
    for tag, where, dims, tensor_type, content in _values(buf, len(body)):
        if tag in parts:  # a tensor split in 512 MiB slices: same tag, contents joined
            first = parts[tag]
            if first[2] != tensor_type or first[1] != dims:
                raise CheckpointFormatError(
                    f"slices of {tag!r} disagree on their type or dimensions (at byte {where})"
                )
            first[3].append(content)
        else:
            parts[tag] = [where, dims, tensor_type, [content]]
    return {
        tag: _to_value(tag, where, dims, tensor_type, b"".join(chunks))
        for tag, (where, dims, tensor_type, chunks) in parts.items()
    }


def read_checkpoint(path: str | os.PathLike, *, crc_check: bool = False) -> dict[str, Value]:
    """Read a ``.ckpt`` file (see :func:`decode`)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return decode(data, crc_check=crc_check)
    except CheckpointError as exc:
        raise CheckpointFormatError(f"{os.fspath(path)}: {exc}") from None


# -- writing -----------------------------------------------------------------------------------
def _enc_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _enc_varint(number << 3) + _enc_varint(value)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _enc_varint(number << 3 | 2) + _enc_varint(len(payload)) + payload


def _as_entry(name: str, value: Any) -> tuple[list[int], str, bytes]:
    if isinstance(value, str):
        return [], "str", np.array(value).astype("<U").tobytes()
    if isinstance(value, bool):
        value = torch.tensor(value)
    elif isinstance(value, int):
        value = torch.tensor(value, dtype=torch.int64)
    elif isinstance(value, float):
        value = torch.tensor(value, dtype=torch.float32)
    elif isinstance(value, np.ndarray | np.generic):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"cannot write {name!r}: {type(value).__name__} is not a tensor or str")
    t = value.detach().to("cpu").contiguous()
    if t.dtype not in _TORCH_TO_MS:
        raise TypeError(f"cannot write {name!r}: dtype {t.dtype} has no MindSpore tensor_type")
    tensor_type = _TORCH_TO_MS[t.dtype]
    raw = t.view(torch.uint16) if t.dtype is torch.bfloat16 else t
    arr = raw.numpy()
    content = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    return list(t.shape), tensor_type, content


def encode(name: str, value: Any) -> list[bytes]:
    """Serialize one entry as ``Checkpoint`` messages (one per :data:`SLICE_BYTES` slice).

    ``value`` is a tensor, a numpy array or scalar, a Python bool/int/float (written as
    ``Bool``/``Int64``/``Float32`` scalars, as MindSpore's ``append_dict`` does) or a str.
    """
    dims, tensor_type, content = _as_entry(name, value)
    chunks = [content[i : i + SLICE_BYTES] for i in range(0, len(content), SLICE_BYTES)] or [b""]
    messages = []
    for chunk in chunks:
        tensor = b"".join(_field_varint(1, d) for d in dims)
        tensor += _field_bytes(2, tensor_type.encode()) + _field_bytes(3, chunk)
        value_msg = _field_bytes(1, name.encode("utf-8")) + _field_bytes(2, tensor)
        messages.append(_field_bytes(1, value_msg))
    return messages


def write_checkpoint(
    path: str | os.PathLike, entries: Iterable[tuple[str, Any]], *, crc_check: bool = False
) -> None:
    """Write ``(name, value)`` entries as a ``.ckpt`` file MindSpore's ``load_checkpoint``
    reads, byte-identical to what ``mindspore.save_checkpoint`` writes for the same tensors.

    The file is written to a temporary name and renamed, so a failure leaves no partial file.
    """
    messages = [m for name, value in entries for m in encode(name, value)]
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    crc = 0
    try:
        with open(tmp, "wb") as f:
            for m in messages:
                crc = binascii.crc32(m, crc)
                f.write(m)
            if crc_check:
                f.write(CRC_MARKER + crc.to_bytes(10, "big"))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
