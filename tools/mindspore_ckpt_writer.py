"""A minimal MindSpore ``.ckpt`` writer: pure Python + numpy, no protobuf package, no mindspore.

It exists to prove that a MindSpore-loadable checkpoint can be produced without MindSpore:
``tools/mindspore_golden.py`` writes one file with it and checks that the real
``mindspore.load_checkpoint`` reads it back (the result is recorded in
``tests/golden/mindspore/checkpoints/index.json`` and the README there).

Format (MindSpore 2.10.0, ``mindspore/train/checkpoint.proto``, proto2)::

    message Checkpoint {
      message Value {
        required string tag = 1;
        oneof value { TensorProto tensor = 2; MapTensorProto maptensor = 3; }
      }
      repeated Value value = 1;
    }
    message TensorProto {
      repeated int64 dims = 1;            // proto2: not packed, one varint field per dim
      required string tensor_type = 2;    // "Float32", "Int32", "BFloat16", "Bool", "str", ...
      required bytes tensor_content = 3;  // raw little-endian C-order bytes
    }

MindSpore writes one serialized ``Checkpoint`` message per tensor (or per 512 MiB slice of a
tensor, each slice with the same tag) and concatenates them; protobuf parses the concatenation
as one message. With ``crc_check=True`` it appends ``b"crc_num"`` followed by the CRC32 (zlib
polynomial, seeded 0, running over every serialized message in order) as 10 big-endian bytes.
Strings (``append_dict`` values of type str) are stored as numpy ``U`` arrays, i.e. UTF-32-LE,
with ``tensor_type == "str"`` and no dims.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable

import numpy as np

# numpy dtype -> MindSpore tensor_type string (mindspore.train.serialization tensor_to_ms_type)
_NP_TO_MS = {
    np.dtype(np.float16): "Float16",
    np.dtype(np.float32): "Float32",
    np.dtype(np.float64): "Float64",
    np.dtype(np.int8): "Int8",
    np.dtype(np.uint8): "UInt8",
    np.dtype(np.int16): "Int16",
    np.dtype(np.uint16): "UInt16",
    np.dtype(np.int32): "Int32",
    np.dtype(np.uint32): "UInt32",
    np.dtype(np.int64): "Int64",
    np.dtype(np.uint64): "UInt64",
    np.dtype(np.bool_): "Bool",
}

SLICE_BYTES = 512 * 1024 * 1024  # MindSpore splits tensors larger than this into several Values


def _varint(value: int) -> bytes:
    if value < 0:  # int64 two's complement, as protobuf encodes negative int64
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
    return _varint(number << 3 | 0) + _varint(value)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def float32_to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (round-to-nearest-even) and return the uint16 bits."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    out = ((bits + rounding) >> 16).astype(np.uint16)
    out[nan] = 0x7FC0
    return out


class BFloat16:
    """Marks an array of uint16 bfloat16 bit patterns (numpy has no bfloat16 dtype)."""

    def __init__(self, bits: np.ndarray):
        self.bits = np.ascontiguousarray(bits, dtype=np.uint16)


def encode_value(name: str, value) -> list[bytes]:
    """Serialize one entry as a list of ``Checkpoint`` messages (one per slice)."""
    if isinstance(value, str):
        dims: tuple[int, ...] = ()
        tensor_type = "str"
        content = np.array(value).astype("<U").tobytes()  # UTF-32-LE
        chunks = [content]
    else:
        if isinstance(value, BFloat16):
            arr = value.bits
            tensor_type = "BFloat16"
        else:
            arr = np.asarray(value)
            try:
                tensor_type = _NP_TO_MS[arr.dtype]
            except KeyError:
                raise TypeError(f"unsupported dtype {arr.dtype} for {name!r}") from None
        dims = tuple(int(d) for d in arr.shape)
        content = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        chunks = [content[i : i + SLICE_BYTES] for i in range(0, len(content), SLICE_BYTES)]
        if not chunks:
            chunks = [b""]
    messages = []
    for chunk in chunks:
        tensor = b"".join(_field_varint(1, d) for d in dims)
        tensor += _field_bytes(2, tensor_type.encode())
        tensor += _field_bytes(3, chunk)
        value_msg = _field_bytes(1, name.encode("utf-8")) + _field_bytes(2, tensor)
        messages.append(_field_bytes(1, value_msg))
    return messages


def write_checkpoint(path: str, entries: Iterable[tuple[str, object]], crc_check=False) -> int:
    """Write ``entries`` (name, numpy array | BFloat16 | str) to ``path``; return the CRC32."""
    crc = 0
    with open(path, "wb") as f:
        for name, value in entries:
            for message in encode_value(name, value):
                crc = binascii.crc32(message, crc)
                f.write(message)
        if crc_check:
            f.write(b"crc_num" + crc.to_bytes(10, byteorder="big"))
    return crc
