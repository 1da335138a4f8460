"""The ``ops`` of the fused CPU kernel: scalar functions compiled by Numba.

A rule's ``update`` calls ``ops.sqrt``, ``ops.lerp``, ... on whole tensors in the eager kernel.
In the fused kernel the same calls run on single elements inside one compiled loop; the
generated loop (see :mod:`polyoptim.kernels.codegen`) calls the functions of this module, which
reproduce torch's element-wise semantics (NaN propagation, ``lerp``'s two-sided formula, ``sign``
of NaN is 0). It also holds the low-level pieces the loop needs: turning a tensor's address into
an array, and bfloat16/float16 loads and stores (NumPy has no bfloat16).

Importing this module needs Numba; :mod:`polyoptim.kernels.cpu_fused` only imports it when Numba
is installed.

Example:
    >>> import numpy as np
    >>> from polyoptim.kernels import numba_ops as o
    >>> one = np.float32(1)
    >>> float(o.lerp(np.float32(1.0), np.float32(3.0), np.float32(0.25), one))
    1.5
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_JIT = dict(error_model="numpy", cache=True, nogil=True)

# -- raw memory -----------------------------------------------------------------------------------


@intrinsic
def vptr(typingctx, addr):
    """An integer address as a ``void*`` (for ``numba.carray``)."""
    sig = types.voidptr(addr)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``llvm.fma``, vectorizable)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None
    sig = a(a, b, c)

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty] * 3))
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def bf16_load(typingctx, bits):
    """bfloat16 bits (uint16) -> float32 (exact: the bits are the float's top half)."""
    if bits != types.uint16:
        return None
    sig = types.float32(bits)

    def codegen(context, builder, signature, args):
        wide = builder.shl(builder.zext(args[0], ir.IntType(32)), ir.Constant(ir.IntType(32), 16))
        return builder.bitcast(wide, ir.FloatType())

    return sig, codegen


@intrinsic
def bf16_store(typingctx, x):
    """float32 -> bfloat16 bits, rounded to nearest-even as torch rounds; NaN stays NaN."""
    if x != types.float32:
        return None
    sig = types.uint16(x)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        u = builder.bitcast(args[0], i32)
        lsb = builder.and_(builder.lshr(u, ir.Constant(i32, 16)), ir.Constant(i32, 1))
        rounded = builder.add(u, builder.add(lsb, ir.Constant(i32, 0x7FFF)))
        is_nan = builder.fcmp_unordered("uno", args[0], args[0])
        bits = builder.select(is_nan, ir.Constant(i32, 0x7FC00000), rounded)
        return builder.trunc(builder.lshr(bits, ir.Constant(i32, 16)), ir.IntType(16))

    return sig, codegen


@intrinsic
def _f16_to_f32(typingctx, bits):
    if bits != types.uint16:
        return None
    sig = types.float32(bits)

    def codegen(context, builder, signature, args):
        half = builder.bitcast(args[0], ir.HalfType())
        return builder.fpext(half, ir.FloatType())

    return sig, codegen


@intrinsic
def _f32_to_f16(typingctx, x):
    if x != types.float32:
        return None
    sig = types.uint16(x)

    def codegen(context, builder, signature, args):
        # fptrunc rounds to nearest-even, as torch's float -> half conversion
        half = builder.fptrunc(args[0], ir.HalfType())
        return builder.bitcast(half, ir.IntType(16))

    return sig, codegen


f16_load = _f16_to_f32  # float16 bits (uint16) -> float32, exact
f16_store = _f32_to_f16  # float32 -> float16 bits, rounded to nearest-even


#: alignment (bytes) :func:`stream_store` assumes of every vector of stores it makes
STREAM_ALIGN = 64


@intrinsic
def stream_store(typingctx, arr, idx, val):
    """``arr[idx] = val`` as a non-temporal (streaming) store.

    For an array the kernel writes without reading: a plain store first reads the cache line
    it lands in (write-allocate), so a write-only array costs twice its bytes; a streaming store
    writes the line to memory directly. Call :func:`store_fence` after the last one.
    """
    if not (isinstance(arr, types.Array) and isinstance(idx, types.Integer) and val == arr.dtype):
        return None
    sig = types.void(arr, idx, val)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        # LLVM vectorizes a streaming store only if it may assume vector alignment; the caller
        # streams only to 64-byte-aligned arrays whose rows start at multiples of 16 elements
        store = builder.store(args[2], builder.gep(ary.data, [args[1]]), align=STREAM_ALIGN)
        one = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        store.set_metadata("nontemporal", one)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def store_fence(typingctx):
    """A full memory fence: streaming stores are weakly ordered, so they are made visible to
    the thread that joins the parallel loop before it reads the arrays."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


# -- the element-wise ops a rule may call (torch's semantics) -------------------------------------


@njit(**_JIT)
def sqrt(x):
    """Square root; NaN for negative input."""
    return np.sqrt(x)


@njit(**_JIT)
def abs_(x):
    """Absolute value."""
    return np.abs(x)


@njit(**_JIT)
def sign(x, one):
    """-1, 0 or 1 (``one`` fixes the float type); 0 for NaN and ±0, as ``torch.sign``."""
    if x > 0:
        return one
    if x < 0:
        return -one
    return one - one


@njit(**_JIT)
def lerp(a, b, w, one):
    """torch's ``lerp``: ``a + w(b − a)`` for ``|w| < 0.5``, else ``b − (b − a)(1 − w)``; like
    torch's vectorized CPU kernel, the final multiply-add is fused (``fma``). ``one`` is 1 in
    the compute type (keeps the arithmetic in it)."""
    d = b - a
    if np.abs(w) < 0.5:
        return fma(w, d, a)
    return fma(w - one, d, b)


@njit(**_JIT)
def maximum(a, b):
    """Element-wise maximum; NaN if either is NaN (``torch.maximum``/``clamp_min``)."""
    if a != a or b != b:
        return a + b
    return a if a > b else b


@njit(**_JIT)
def minimum(a, b):
    """Element-wise minimum; NaN if either is NaN (``torch.minimum``/``clamp_max``)."""
    if a != a or b != b:
        return a + b
    return a if a < b else b


@njit(**_JIT)
def clamp(x, lo, hi):
    """``min(max(x, lo), hi)``; NaN ``x`` stays NaN (``torch.clamp``)."""
    if x != x:
        return x
    y = lo if x < lo else x
    return hi if y > hi else y


@njit(**_JIT)
def where(cond, a, b):
    """``a`` where ``cond`` else ``b`` (per element)."""
    return a if cond else b


@njit(**_JIT)
def pow_(x, y):
    """``x ** y`` in ``x``'s type."""
    return x**y
