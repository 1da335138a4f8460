"""Hostile ``.pdopt``/``.pdparams`` files: every read returns or raises ``CheckpointFormatError``
within a time and memory bound linear in the file (tests/interop/bounded.py), never runs code,
and legitimate pickles still read as :mod:`pickle` reads them.

The regression tests each reproduce an attack that hung, blew up memory, crashed the interpreter
or returned garbage before ``interop.safe_unpickle``; the property tests mutate and truncate the
real files Paddle wrote (tests/golden/paddle/checkpoints) and assemble random pickle programs.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import hostile_files as H
import numpy as np
import pytest
from bounded import read_within_bounds, refused
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyoptim import paddle as P
from polyoptim.interop import paddle_pickle as pp
from polyoptim.interop import safe_unpickle as su

REAL = H.golden(H.PADDLE_FILES, (".pdopt", ".pdparams"))


def load_all_ways(data: bytes, label: str) -> list:
    """``P.load`` (tensors and numpy) and ``pp.loads``, each within the bounds."""
    outs = []
    for read in (
        lambda: P.load(io.BytesIO(data)),
        lambda: P.load(io.BytesIO(data), return_numpy=True),
        lambda: pp.loads(data),
    ):
        outs.append(read_within_bounds(read, len(data), label))
    return outs


# -- the attacks of issue 11, and the ones found while fixing them ---------------------------
def test_shared_dag_costs_its_size_not_its_paths() -> None:
    data = H.dag(30)  # 2**30 paths in 245 bytes: the old walks never finished
    for out in load_all_ways(data, "dag30"):
        assert out.error is None
        top = out.value
        assert top[0] is top[1]  # shared stays shared
    assert len(data) < 300


@pytest.mark.parametrize("numpy", [False, True])
def test_zero_stride_view_is_refused(numpy: bool) -> None:
    data = H.ndarray_call((2**26,), b"x", (0,))  # 64 MiB declared over one byte
    err = refused(lambda: P.load(io.BytesIO(data), return_numpy=numpy), len(data), "stride0")
    assert isinstance(err, pp.UnsafeCheckpointError) and "numpy.ndarray" in str(err)
    assert "at byte" in str(err)


def test_array_without_buffer_is_refused() -> None:
    data = H.ndarray_call((2**20,), None)  # uninitialised heap memory
    err = refused(lambda: P.load(io.BytesIO(data), return_numpy=True), len(data), "nobuffer")
    assert "uninitialised" in str(err)


def test_reconstruct_without_data_is_refused() -> None:
    data = H.reconstruct_only(2**16)  # numpy's own _reconstruct, never given its bytes
    err = refused(lambda: P.load(io.BytesIO(data), return_numpy=True), len(data), "nobuild")
    assert "before its data" in str(err) or "no BUILD" in str(err)


@pytest.mark.parametrize("depth", [101, 2000, 100_000])
def test_deep_nesting_is_a_format_error(depth: int) -> None:
    data = H.nested_lists(depth)
    err = refused(lambda: P.load(io.BytesIO(data)), len(data), f"deep{depth}")
    assert f"nested deeper than {su.MAX_DEPTH}" in str(err) and "[0][0]" in str(err)


def test_nesting_up_to_the_limit_reads() -> None:
    data = H.nested_lists(su.MAX_DEPTH)
    assert read_within_bounds(lambda: pp.loads(data), len(data), "deep100").error is None


def test_self_reference_is_a_format_error() -> None:
    err = refused(lambda: P.load(io.BytesIO(H.self_list())), 20, "selfref")
    assert "cycle" in str(err) and "at [0]" in str(err)


def test_deep_tuple_key_does_not_crash_the_interpreter() -> None:
    """Hashing a tuple nested 400 000 deep overflows the C stack (a segfault with pickle)."""
    code = (
        "import io, sys; sys.path[:0] = sys.argv[1:]; import hostile_files as H; "
        "from polyoptim import paddle as P; from polyoptim.interop import paddle_pickle as pp\n"
        "try:\n    P.load(io.BytesIO(H.deep_tuple_key(400_000)))\n"
        "except pp.CheckpointFormatError as e:\n    print('refused:', str(e)[:200])\n"
    )
    here = os.path.dirname(__file__)
    src = os.path.dirname(os.path.dirname(os.path.dirname(P.__file__)))
    run = subprocess.run(
        [sys.executable, "-c", code, here, src], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "refused:" in run.stdout and "a tuple" in run.stdout


def test_colliding_int_keys_are_refused_in_linear_time() -> None:
    """60 000 keys sharing one hash: pickle's dict insertion is quadratic (~90 s)."""
    data = H.colliding_keys(60_000)
    err = refused(lambda: P.load(io.BytesIO(data), return_numpy=True), len(data), "collide")
    assert "2**61" in str(err)


def test_memo_references_cannot_multiply_encoded_bytes() -> None:
    data = H.encode_amplified(2**16, 2000)  # 78 kB of file asking for 128 MiB of bytes
    err = refused(lambda: P.load(io.BytesIO(data), return_numpy=True), len(data), "encode")
    assert "more bytes than the file holds" in str(err)


def test_memo_references_cannot_multiply_container_copies() -> None:
    data = H.list_copies(10_000, 2000)  # 22 kB asking for 20 million list slots
    err = refused(lambda: P.load(io.BytesIO(data), return_numpy=True), len(data), "listcopy")
    assert "more elements than the file has bytes" in str(err)


def test_a_dtype_cannot_change_under_an_array() -> None:
    """numpy's ``dtype.__setstate__`` grows the elements of an array already built: 4 bytes
    then read as 4 MiB of the heap."""
    data = H.dtype_changed_after_use()
    err = refused(lambda: P.load(io.BytesIO(data), return_numpy=True), len(data), "dtypemut")
    assert "changed after it was used" in str(err)


def test_split_arrays_cannot_repeat_one_array() -> None:
    data = H.split_amplified(2**16, 1000)  # one 64 KiB array joined 1000 times
    err = refused(lambda: P.load(io.BytesIO(data), return_numpy=True), len(data), "split")
    assert "UnpackBigParamInfor@@" in str(err)


def test_bool_arrays_hold_only_0_and_1() -> None:
    data = H.bool_array(b"\x00\x07")
    err = refused(lambda: P.load(io.BytesIO(data)), len(data), "bool7")
    assert "0 and 1" in str(err)
    assert P.load(io.BytesIO(H.bool_array(b"\x00\x01")))["w"].tolist() == [False, True]


@pytest.mark.parametrize(
    "data, match",
    [
        (H.pk(H.array_ops((3,), H.dtype_ops("f4"), b"\0" * 8)), "needs 12 bytes"),
        (H.pk(H.array_ops((2**40, 2**40), H.dtype_ops("f4"), b"")), "too large"),
        (H.pk(H.array_ops((2**20,), H.dtype_ops("f4"), b"")), "needs 4194304 bytes"),
        (H.pk(H.array_ops((0, 2**62), H.dtype_ops("f4"), b"")), "too large"),
        (H.pk(H.array_ops((1,) * 33, H.dtype_ops("u1"), b"\0")), "33 dimensions"),
        (H.pk(H.array_ops((-1,), H.dtype_ops("u1"), b"")), "non-negative"),
        (H.pk(H.array_ops((1,), H.dtype_ops("V1"), b"\0")), "not a plain"),
        (H.pk(H.array_ops((1,), H.dtype_ops("S0"), b"")), "zero-size"),
        (H.pk(H.array_ops((1,), H.dtype_ops("S1", "|", 0), b"")), "0-byte"),
        (H.pk(H.dtype_ops("f4") + H.tup(H.i(3)) + b"b"), "state"),
        (H.pk(H.u("x") * 2 + b"\x95" + b"\xff" * 8), "frame"),
        (H.pk(b"\x8e" + b"\xff" * 8), "truncated"),
        (H.pk(b"h\x05"), "memo entry 5"),
        (H.pk(b"e"), "no MARK"),
        (H.pk(b"I1\n"), "text opcodes"),
        (H.pk(b"\x81"), "instantiate"),
        (b"\x80\x04N", "before STOP"),
        (H.pk(H.glob("builtins", "dict") + H.tup(H.tup(H.i(1))) + b"R"), "pairs"),
        (H.pk(H.glob("builtins", "list") + b"N\x85R"), "list() of a NoneType"),
        (H.pk(b"}" + H.tup() + b"Ns"), "a tuple"),
        (
            H.pk(
                H.call(
                    H.glob("numpy.core.multiarray", "scalar"), H.dtype_ops("b1", "|"), H.b(b"\x07")
                )
            ),
            "bool scalar",
        ),
        (
            H.pk(
                H.call(H.glob("numpy.core.multiarray", "scalar"), H.dtype_ops("f4"), H.b(b"\0" * 3))
            ),
            "needs 4 bytes",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_malformed_pickles_name_the_problem_and_the_byte(data: bytes, match: str) -> None:
    err = refused(lambda: P.load(io.BytesIO(data)), len(data), match)
    assert match in str(err), str(err)
    assert "<file>" in str(err) and "at byte" in str(err)


def test_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "evil.pdopt"
    path.write_bytes(H.self_list())
    with pytest.raises(pp.CheckpointFormatError, match=r"evil\.pdopt: a container holds itself"):
        P.load(str(path))


def test_every_refusal_is_a_format_error_and_a_value_error() -> None:
    assert issubclass(pp.UnsafeCheckpointError, pp.CheckpointFormatError)
    assert issubclass(pp.CheckpointFormatError, ValueError)
    from polyoptim.paddle import checkpoint

    assert checkpoint.CheckpointFormatError is pp.CheckpointFormatError


# -- legitimate pickles read as pickle reads them ---------------------------------------------
_DTYPES = ["f2", "f4", "f8", ">f4", "i1", "i2", "<i4", ">i8", "u1", "u2", "u4", "u8", "b1", "c8",
           "c16", "U3", "S2"]  # fmt: skip


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    raw = np.random.default_rng(draw(st.integers(0, 2**32))).integers(
        0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8
    )
    if dtype.kind == "b":
        raw %= 2
    arr = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(shape)
    if dtype.kind in "fc":
        arr = np.nan_to_num(arr)  # NaN != NaN would fail the comparison, not the reader
    return np.asfortranarray(arr) if draw(st.booleans()) else arr.copy()


_ATOMS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | arrays()
    | st.sampled_from(_DTYPES).map(np.dtype)
    | st.sampled_from([np.float32(1.5), np.int64(-3), np.bool_(True), np.uint16(7)])
)
_KEYS = st.text(max_size=6) | st.integers(-(2**40), 2**40)
_VALUES = st.recursive(
    _ATOMS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(_KEYS, inner, max_size=4)
        | st.dictionaries(_KEYS, inner, max_size=4).map(OrderedDict)
        | st.frozensets(_KEYS, max_size=4)
        | st.sets(_KEYS, max_size=4)
    ),
    max_leaves=20,
)


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes(order="A") == b.tobytes(order="A")
            and (a.size < 2 or a.flags.f_contiguous == b.flags.f_contiguous)
        )
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_VALUES, st.sampled_from([2, 3, 4, 5]))
def test_legitimate_pickles_read_as_pickle_reads_them(obj, protocol: int) -> None:
    data = pickle.dumps(obj, protocol=protocol)
    out = read_within_bounds(lambda: su.unpickle(data), len(data), "legit")
    assert out.error is None
    assert same(out.value, pickle.loads(data))
    assert all(a.flags.writeable for a in _arrays(out.value))


def _arrays(x):
    if isinstance(x, np.ndarray):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _arrays(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _arrays(v)


# -- property tests: mutated real files and random pickle programs ----------------------------
_OPS = [  # a pickle vocabulary: every opcode the reader knows, with plausible arguments
    b"]", b"}", b")", b"(", b"t", b"\x85", b"\x86", b"\x87", b"l", b"d", b"a", b"e", b"s", b"u",
    b"\x8f", b"\x90", b"\x91", b"0", b"1", b"2", b"N", b"\x88", b"\x89", b"\x94", b"R", b"b",
    b"\x81", b"\x93", b"h\x00", b"h\x01", b"h\x02", b"j\x03\x00\x00\x00", b"q\x00", b"q\x01",
    b"K\x00", b"K\x02", b"J\xff\xff\xff\xff", b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01",
    b"G\x7f\xf0\x00\x00\x00\x00\x00\x00", b"C\x04\x00\x00\x80?", b"C\x01\x07", H.u("f4"),
    H.u("data"), H.u("latin1"), H.u("|"), H.u("<"), H.u("U3"), H.u("O8"),
    H.glob("numpy._core.multiarray", "_reconstruct"), H.glob("numpy", "ndarray"),
    H.glob("numpy", "dtype"), H.glob("numpy.core.multiarray", "scalar"),
    H.glob("_codecs", "encode"), H.glob("builtins", "eval"), H.glob("builtins", "list"),
    H.glob("builtins", "set"), H.glob("collections", "OrderedDict"), H.glob("os", "system"),
    H.dtype_ops("f4"), H.dtype_ops("b1", "|"), H.dtype_ops("U1", "<", 4),
    H.array_ops((2,), H.dtype_ops("f4"), b"\0" * 8), H.array_ops((1,), b"h\x00", b"\x07"),
    b"\x95\x04\x00\x00\x00\x00\x00\x00\x00", b"\x8e\x10\x00\x00\x00\x00\x00\x00\x00",
]  # fmt: skip
programs = st.lists(st.sampled_from(_OPS), max_size=60).map(lambda ops: H.pk(b"".join(ops)))


def check(data: bytes) -> None:
    for read in (lambda: P.load(io.BytesIO(data)), lambda: pp.loads(data)):
        read_within_bounds(read, len(data), "fuzz")


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
test_random_pickle_programs = _fuzz(programs, 200)
test_mutated_real_files_long = pytest.mark.slow(_fuzz(H.mutated(REAL), 4000))
test_random_pickle_programs_long = pytest.mark.slow(_fuzz(programs, 6000))


@pytest.mark.parametrize("name", sorted(REAL))
def test_every_truncation_of_a_real_file(name: str) -> None:
    data = REAL[name]
    for n in range(len(data)):
        out = read_within_bounds(lambda n=n: pp.loads(data[:n]), n, f"{name}[:{n}]")
        assert out.error is not None  # a prefix never ends in STOP by luck: they all refuse


def test_real_files_read_within_bounds() -> None:
    """(What they read is compared with paddle.load's in tests/paddle/test_paddle_checkpoint.py.)"""
    for name, data in REAL.items():
        out = read_within_bounds(lambda d=data: P.load(io.BytesIO(d)), len(data), name)
        assert (out.error is None) == (name not in ("malicious.pdopt", "truncated.pdopt"))


# -- code execution: classic payloads, none of which may run ----------------------------------
class _Reduce:
    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _classic_payloads() -> dict[str, bytes]:
    import builtins
    import copyreg
    import subprocess as sp

    out = {}
    for name, (func, args) in {
        "os.system": (os.system, ("true",)),
        "os.popen": (os.popen, ("true",)),
        "subprocess.Popen": (sp.Popen, (["true"],)),
        "subprocess.call": (sp.call, (["true"],)),
        "eval": (builtins.eval, ("__import__('os').system('true')",)),
        "exec": (builtins.exec, ("import os",)),
        "__import__": (builtins.__import__, ("os",)),
        "getattr": (builtins.getattr, ("abc", "upper")),
        "open": (builtins.open, ("/etc/passwd",)),
        "compile": (builtins.compile, ("1", "x", "eval")),
        "copyreg": (copyreg._reconstructor, (object, object, None)),
        "np.load": (np.load, ("/dev/null",)),
        "np.fromfile": (np.fromfile, ("/dev/zero",)),
        "pickle.loads": (pickle.loads, (b"N.",)),
        "eval-data-string": (builtins.eval, ("data", {"data": "x"})),
        "encode-other-codec": (__import__("codecs").encode, ("x", "rot13")),
        "dtype-object": (np.dtype, ("O8",)),
    }.items():
        for proto in (2, 4):
            out[f"{name}-p{proto}"] = pickle.dumps(_Reduce(func, args), protocol=proto)
    # hand-assembled: opcodes that instantiate or import by other routes
    out["INST"] = b"\x80\x02(X\x04\x00\x00\x00trueios\nsystem\n."
    out["OBJ"] = b"\x80\x02(cos\nsystem\nX\x04\x00\x00\x00trueo."
    out["NEWOBJ-OrderedDict"] = H.pk(H.glob("collections", "OrderedDict") + b")\x81")
    out["EXT1"] = H.pk(b"\x82\x01")
    out["PERSID"] = b"\x80\x02Pos.system\n."
    out["BUILD-OrderedDict-__class__"] = H.pk(
        H.glob("collections", "OrderedDict") + b")R" + b"}" + H.u("__class__") + b"Ns" + b"b"
    )
    out["BUILD-list"] = H.pk(b"]}b")
    out["REDUCE-of-int"] = H.pk(H.i(3) + b")R")
    out["REDUCE-of-list-token"] = H.pk(
        H.glob("builtins", "list") + H.tup(H.glob("numpy", "ndarray")) + b"R"
    )
    out["eval-token-as-data"] = H.pk(b"]" + H.glob("builtins", "eval") + b"a")
    out["frombuffer-object"] = H.pk(
        H.call(H.glob("numpy._core.numeric", "_frombuffer"), H.b(b"\0" * 8), H.dtype_ops("O8"),
               H.tup(H.i(1)), H.u("C"))
    )  # fmt: skip
    return out


CLASSIC = _classic_payloads()


@pytest.fixture
def nothing_runs(monkeypatch):
    """Every entry point the payloads aim at records its call instead of acting."""
    import builtins
    import subprocess as sp

    calls: list[str] = []

    def recorder(name):
        return lambda *a, **k: calls.append(name)

    for mod, attr in [(os, "system"), (os, "popen"), (sp, "Popen"), (sp, "call"),
                      (np, "load"), (np, "fromfile")]:  # fmt: skip
        monkeypatch.setattr(mod, attr, recorder(f"{mod.__name__}.{attr}"))
    for attr in ("eval", "exec", "compile", "open", "__import__"):
        original = getattr(builtins, attr)

        def spy(*a, _name=attr, _orig=original, **k):
            if _name == "__import__" or _name == "open":  # imports and opens happen legitimately
                return _orig(*a, **k)
            calls.append(_name)
            return _orig(*a, **k)

        monkeypatch.setattr(builtins, attr, spy)
    yield calls
    assert calls == [], f"ran: {calls}"


@pytest.mark.parametrize("name", sorted(CLASSIC))
def test_classic_payloads_run_nothing(name: str, nothing_runs) -> None:
    data = CLASSIC[name]
    for read in (lambda: P.load(io.BytesIO(data)), lambda: pp.loads(data)):
        out = read_within_bounds(read, len(data), name)
        assert out.error is not None, f"{name} was accepted"
