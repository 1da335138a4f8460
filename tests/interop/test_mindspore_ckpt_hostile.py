"""Hostile ``.ckpt`` files: every read returns or raises ``CheckpointFormatError`` naming the
file and the byte, within a time and memory bound linear in the file (tests/interop/bounded.py).

Regression tests for the attacks of issue 11 (bare ``UnicodeDecodeError``/numpy ``ValueError``,
``Bool`` bytes of 7, ``str`` tensors with dimensions, ...); property tests that mutate and
truncate the real files MindSpore wrote (tests/golden/mindspore/checkpoints) and assemble random
protobuf; and a round trip of random tensors through the writer.
"""

from __future__ import annotations

import os
import tempfile

import hostile_files as H
import numpy as np
import pytest
import torch
from bounded import read_within_bounds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyoptim import mindspore as nn
from polyoptim.interop import mindspore_ckpt as ckpt
from polyoptim.interop.errors import CheckpointFormatError

REAL = H.golden(H.MINDSPORE_FILES, (".ckpt",))


def read_file(data: bytes, label: str, crc_check: bool = False):
    """``nn.load_checkpoint`` on ``data`` written to a file, within the bounds."""
    fd, path = tempfile.mkstemp(suffix=".ckpt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return read_within_bounds(
            lambda: nn.load_checkpoint(path, crc_check=crc_check), len(data), label
        )
    finally:
        os.remove(path)


def refused_file(data: bytes, label: str) -> CheckpointFormatError:
    out = read_file(data, label)
    assert out.error is not None, f"{label}: accepted"
    assert "Failed to read the checkpoint file tmp" in str(out.error)  # the file's name
    assert "byte" in str(out.error)  # and where in it
    return out.error


# -- the attacks of issue 11 ------------------------------------------------------------------
def test_bad_utf32_string() -> None:
    err = refused_file(H.ckpt(("note", [0], "str", b"\x00\x00\x11\x00")), "utf32")
    assert "not valid UTF-32" in str(err)


@pytest.mark.parametrize("dims", [[0, 2**62], [2**62, 0, 3], [0, 2**63 - 1, 2**63 - 1]])
def test_overflowing_dims(dims) -> None:
    err = refused_file(H.ckpt(("w", dims, "Float32", b"")), "dims-overflow")
    assert "too large" in str(err)


def test_too_many_dims() -> None:
    err = refused_file(H.ckpt(("w", [1] * 70, "Float32", b"\0" * 4)), "70dims")
    assert f"more than {ckpt.MAX_DIMS} dimensions" in str(err)


def test_dims_needing_more_bytes_than_present() -> None:
    err = refused_file(H.ckpt(("w", [2**20, 2**20], "Float32", b"\0" * 16)), "dims-bytes")
    assert "needs 4398046511104 bytes, the file holds 16" in str(err)


def test_bool_bytes_are_0_or_1() -> None:
    err = refused_file(H.ckpt(("b", [2], "Bool", b"\x01\x07")), "bool7")
    assert "other than 0 and 1" in str(err)
    ok = read_file(H.ckpt(("b", [2], "Bool", b"\x01\x00")), "bool01")
    assert ok.value["b"].tolist() == [True, False]


def test_str_tensors_have_no_dims() -> None:
    err = refused_file(H.ckpt(("s", [2, 3], "str", "hi".encode("utf-32-le"))), "strdims")
    assert "has dimensions [2, 3]" in str(err)
    for dims in ([], [0]):  # MindSpore writes [0] for a str and ignores it
        ok = read_file(H.ckpt(("s", dims, "str", "hi".encode("utf-32-le"))), "str")
        assert ok.value == {"s": "hi"}


def test_dims_0_holding_one_element_is_a_scalar_as_in_mindspore() -> None:
    ok = read_file(H.ckpt(("x", [0], "Float32", np.float32(2.5).tobytes())), "dims0")
    assert ok.value["x"].shape == () and float(ok.value["x"]) == 2.5


def test_varint_of_2_64_or_more() -> None:
    data = H.field(1, H.field(1, b"w") + H.field(2, b"\x08" + b"\xff" * 9 + b"\x7f"))
    err = refused_file(data, "varint65")
    assert "2**64 or more" in str(err)


@pytest.mark.parametrize(
    "data, match",
    [
        (H.ckpt(("w", [2], "Float32", b"\0" * 8))[:-3], "truncated"),
        (b"\x0a\x85", "truncated varint"),
        (b"\x0a" + b"\xff" * 11, "longer than 10 bytes"),
        # a tensor that claims more bytes than its value holds (the file has them)
        (
            H.field(1, H.field(1, b"w") + b"\x12\x20" + H.tensor([2], "Float32", b"\0" * 8))
            + b"\0" * 64,
            "runs past the end",
        ),
        (H.field(1, H.field(1, b"w") + H.field(2, b"\x08\x02\x1a")), "truncated"),
        (
            H.field(1, H.field(1, b"\xff\xfe") + H.field(2, H.tensor([], "Float32", b"\0" * 4))),
            "not valid UTF-8",
        ),
        (H.ckpt(("w", [1], b"Float\xff", b"\0" * 4)), "not valid UTF-8"),
        (H.ckpt(("w", [1], "Complex64", b"\0" * 8)), "unsupported tensor_type"),
        (H.ckpt(("w", [2], "Float32", b"\0" * 8), ("w", [3], "Float32", b"\0" * 12)), "disagree"),
        (H.field(1, H.field(1, b"w") + H.field(3, b"")), "MapTensor"),
        (H.field(1, H.field(1, b"w")), "lacks its tag or its tensor"),
        (H.field(1, H.field(1, b"w") + H.field(2, H.field(3, b""))), "lacks its tensor_type"),
        (b"\x0b", "wire type 3"),
        (b"\x00", "field number 0"),
        (b"\x12\x00", "top level"),
        (H.ckpt(("w", [-1], "Float32", b"")), "negative dimension"),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_malformed_files_name_the_problem_and_the_byte(data: bytes, match: str) -> None:
    err = refused_file(data, match)
    assert match in str(err), str(err)


# -- property tests -----------------------------------------------------------------------
_TYPES = [*ckpt._TYPES, "str", "Int4", "", "Float32\x00"]


@st.composite
def protobuf(draw):
    """Random checkpoints: plausible values with random dims, types and contents, sometimes
    a length that lies, a junk field, a CRC footer."""
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        dims = draw(
            st.lists(
                st.integers(0, 4) | st.sampled_from([-1, 2**31, 2**62, 2**63 - 1, 2**64 - 1]),
                max_size=draw(st.sampled_from([3, 3, 3, 40])),
            )
        )
        tt = draw(st.sampled_from(_TYPES))
        size = draw(st.integers(0, 4)) * (
            int(np.prod(dims)) if all(0 <= d < 5 for d in dims) else 1
        )
        content = draw(st.binary(min_size=size, max_size=size)) if size < 512 else b"\0" * size
        tag = draw(st.text(max_size=4).map(str.encode) | st.binary(max_size=3))
        msg = H.value(tag, H.tensor(dims, tt, content))
        if draw(st.integers(0, 5)) == 0:  # a length that lies by a few bytes
            delta = draw(st.integers(-3, 3))
            msg = msg[:1] + H.varint(max(len(msg) - 2 + delta, 0)) + msg[2:]
        if draw(st.integers(0, 8)) == 0:
            msg += draw(st.binary(max_size=6))
        out += msg
    if draw(st.booleans()):
        import binascii

        out += ckpt.CRC_MARKER + binascii.crc32(out).to_bytes(10, "big")
    return out


def check(data: bytes) -> None:
    for crc in (False, True):
        read_within_bounds(lambda c=crc: ckpt.decode(data, crc_check=c), len(data), "fuzz")
    read_file(data, "fuzz")


def _fuzz(strategy, examples: int):
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def run(data: bytes) -> None:
        check(data)

    return run


test_mutated_real_files = _fuzz(H.mutated(REAL), 120)
test_random_protobuf = _fuzz(protobuf(), 150)
test_mutated_real_files_long = pytest.mark.slow(_fuzz(H.mutated(REAL), 4000))
test_random_protobuf_long = pytest.mark.slow(_fuzz(protobuf(), 4000))


@pytest.mark.parametrize("name", sorted(REAL))
def test_every_truncation_of_a_real_file(name: str) -> None:
    data = REAL[name]
    for n in range(len(data)):
        read_within_bounds(lambda n=n: ckpt.decode(data[:n]), n, f"{name}[:{n}]")


def test_real_files_read_within_bounds() -> None:
    for name, data in REAL.items():
        out = read_file(data, name)
        assert (out.error is None) == ("truncated" not in name), name


_DT = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8,
       torch.int16, torch.int32, torch.int64, torch.bool, torch.uint16, torch.uint32]  # fmt: skip


@st.composite
def entries(draw):
    out = []
    for k in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 4)) == 0:
            out.append((f"s{k}", draw(st.text(max_size=6).filter(lambda s: not s.endswith("\0")))))
            continue
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        dtype = draw(st.sampled_from(_DT))
        gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
        t = (torch.rand(shape, generator=gen) * 100).to(dtype)
        out.append((f"t{k}", t))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(), st.booleans())
def test_written_files_read_back(items, crc: bool) -> None:
    fd, path = tempfile.mkstemp(suffix=".ckpt")
    os.close(fd)
    try:
        ckpt.write_checkpoint(path, items, crc_check=crc)
        with open(path, "rb") as f:
            size = len(f.read())
        out = read_within_bounds(lambda: ckpt.read_checkpoint(path, crc_check=crc), size, "rt")
    finally:
        os.remove(path)
    assert out.error is None
    assert list(out.value) == [name for name, _ in items]
    for name, want in items:
        got = out.value[name]
        if isinstance(want, str):
            assert got == want
        else:
            assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want)
