"""The ``ops`` of the fused Triton kernel: element functions with torch's semantics.

The Triton twin of :mod:`polyoptim.kernels.numba_ops`: the generated kernel (see
:mod:`polyoptim.kernels.triton_codegen`) calls these on blocks of elements. They reproduce
torch's element-wise semantics (NaN propagation of ``maximum``/``clamp``, ``lerp``'s two-sided
formula, ``sign`` of NaN is 0) and do the bfloat16 conversions with integer arithmetic, so the
rounding is round-to-nearest-even on a GPU and in Triton's interpreter alike (the interpreter's
own float32 -> bfloat16 cast truncates).

Importing this module needs Triton; :mod:`polyoptim.kernels.triton_fused` imports it only when a
Triton kernel is generated.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def bf16_load(bits):
    """bfloat16 bits (uint16) -> float32 (exact: the bits are the float's top half)."""
    return (bits.to(tl.uint32) << 16).to(tl.float32, bitcast=True)


@triton.jit
def bf16_store(x):
    """float32 -> bfloat16 bits, rounded to nearest-even as torch rounds; NaN stays NaN."""
    u = x.to(tl.uint32, bitcast=True)
    r = u + (((u >> 16) & 1) + 0x7FFF)
    r = tl.where(x != x, 0x7FC00000, r)
    return (r >> 16).to(tl.uint16)


@triton.jit
def sign(x):
    """-1, 0 or 1 in ``x``'s type; 0 for NaN and ±0, as ``torch.sign``."""
    return tl.where(x > 0, 1, tl.where(x < 0, -1, 0)).to(x.dtype)


@triton.jit
def lerp(a, b, w):
    """torch's ``lerp``: ``a + w(b − a)`` for ``|w| < 0.5``, else ``b − (b − a)(1 − w)``, the
    final multiply-add fused."""
    d = b - a
    return tl.where(tl.abs(w) < 0.5, tl.fma(w, d, a), tl.fma(w - 1, d, b))


@triton.jit
def maximum(a, b):
    """Element-wise maximum; NaN if either is NaN (``torch.maximum``/``clamp_min``)."""
    return tl.where(a != a, a + b, tl.where(b != b, a + b, tl.where(a > b, a, b)))


@triton.jit
def minimum(a, b):
    """Element-wise minimum; NaN if either is NaN (``torch.minimum``/``clamp_max``)."""
    return tl.where(a != a, a + b, tl.where(b != b, a + b, tl.where(a < b, a, b)))


@triton.jit
def clamp(x, lo, hi):
    """``min(max(x, lo), hi)``; NaN ``x`` stays NaN (``torch.clamp``)."""
    y = tl.where(x < lo, lo, x)
    return tl.where(x != x, x, tl.where(y > hi, hi, y))


@triton.jit
def div(a, b):
    """``a / b`` correctly rounded (Triton's ``/`` on float32 is an approximation on GPUs;
    on float64 it is exact already)."""
    if a.dtype == tl.float64:  # (no early return: the compiler would build both branches)
        r = a / b
    else:
        r = tl.math.div_rn(a, b)
    return r


@triton.jit
def sqrt(x):
    """Square root, correctly rounded; NaN for negative input."""
    if x.dtype == tl.float64:
        r = tl.sqrt(x)
    else:
        r = tl.math.sqrt_rn(x)
    return r


@triton.jit
def pow_(x, y):
    """``x ** y`` in ``x``'s type."""
    return tl.extra.libdevice.pow(x, y)


@triton.jit
def pow_portable(x, y):
    """``x ** y`` through float64 ``exp2``/``log2`` (Triton's interpreter has no libdevice; the
    interpreter runs this in place of :func:`pow_`). Exact signs and special cases: ``x ** 0``
    is 1, a negative ``x`` gives NaN unless ``y`` is an integer."""
    xd = x.to(tl.float64)
    yd = y.to(tl.float64)
    r = tl.exp2(yd * tl.log2(tl.abs(xd)))
    whole = tl.floor(yd) == yd
    odd = whole & (tl.floor(yd * 0.5) * 2 != yd)
    r = tl.where(xd < 0, tl.where(whole, tl.where(odd, -r, r), tl.log2(xd * 0 - 1)), r)
    r = tl.where(yd == 0, 1.0, r)
    return r.to(x.dtype)
