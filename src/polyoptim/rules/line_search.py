r"""Strong-Wolfe line search along a fixed direction (minFunc's bracketing-and-zoom scheme).

Given :math:`\phi(t) = f(x + t d)` with :math:`\phi(0) = f`, :math:`\phi'(0) = g^\top d < 0`,
find a step :math:`t` satisfying the strong Wolfe conditions

.. math::
    \phi(t) \le f + c_1 t\,\phi'(0), \qquad |\phi'(t)| \le -c_2\,\phi'(0).

The search first walks outwards (extrapolating with cubic interpolation) until an interval
containing such a point is bracketed, then shrinks the bracket ("zoom") with safeguarded cubic
interpolation. Every comparison and arithmetic expression is evaluated in the same order and
with the same operand types (Python floats vs 0-d tensors) as torch.optim.LBFGS, because a
single flipped comparison would send the two searches down different paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

Number = Any  # a Python number or a 0-d tensor, kept as whichever the arithmetic produced


class Probe(NamedTuple):
    """One evaluated point of the line: step, loss, flat gradient, directional derivative."""

    t: Number
    f: Number
    g: torch.Tensor
    gtd: Number


def cubic_minimizer(
    x1: Number,
    f1: Number,
    g1: Number,
    x2: Number,
    f2: Number,
    g2: Number,
    bounds: tuple[Number, Number] | None = None,
) -> Number:
    """Minimiser of the cubic matching values and slopes at ``x1`` and ``x2``, clamped.

    Without ``bounds`` the result is clamped to the interval spanned by the two points. When
    the cubic has no real stationary point the midpoint of the bounds is returned.
    """
    if bounds is None:
        bounds = (x1, x2) if x1 <= x2 else (x2, x1)
    lo, hi = bounds
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1**2 - g1 * g2
    if not disc >= 0:  # also the NaN case
        return (lo + hi) / 2.0
    d2 = disc.sqrt() if torch.is_tensor(disc) else math.sqrt(disc)
    # Measure from the right-hand point; swapping the labels is exact (only sign flips).
    if not x1 <= x2:
        x1, g1, x2, g2 = x2, g2, x1, g1
    t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    return min(max(t, lo), hi)


def strong_wolfe(
    evaluate: Callable[[Number], tuple[float, torch.Tensor]],
    t: Number,
    d: torch.Tensor,
    f: float,
    g: torch.Tensor,
    gtd: Number,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, torch.Tensor, Number, int]:
    """Search along ``d`` from the current point for a strong-Wolfe step.

    Args:
        evaluate: ``evaluate(t) -> (loss, flat_grad)`` at ``x + t d`` (leaves ``x`` as it was).
        t: the initial trial step.
        d: the search direction (flat).
        f, g, gtd: loss, flat gradient and directional derivative at ``t = 0``.
        c1, c2: sufficient-decrease and curvature constants.
        tolerance_change: stop zooming once the bracket is this small (in parameter units).
        max_ls: the most evaluations after the first one.

    Returns:
        ``(loss, flat_grad, t, evaluations)`` at the accepted step.
    """
    d_norm = d.abs().max()
    start = Probe(0, f, g.clone(memory_format=torch.contiguous_format), gtd)
    evals, iters = 0, 0

    def probe(t: Number) -> Probe:
        nonlocal evals
        f_t, g_t = evaluate(t)
        evals += 1
        return Probe(t, f_t, g_t, g_t.dot(d))

    def armijo_fails(p: Probe) -> bool:
        return bool(p.f > (f + c1 * p.t * gtd))

    def curvature_holds(p: Probe) -> bool:
        return bool(abs(p.gtd) <= -c2 * gtd)

    def kept(p: Probe) -> Probe:
        # the bracket must own its gradients: later probes must not alias them
        return p._replace(g=p.g.clone(memory_format=torch.contiguous_format))

    # -- phase 1: walk out until a point or an interval satisfying the conditions is found --
    prev, cur = start, probe(t)
    bracket: list[Probe] | None = None
    done = False
    while iters < max_ls:
        if armijo_fails(cur) or (iters > 1 and cur.f >= prev.f):
            bracket = [prev, kept(cur)]
            break
        if curvature_holds(cur):
            bracket, done = [cur], True
            break
        if cur.gtd >= 0:
            bracket = [prev, kept(cur)]
            break
        t_next = cubic_minimizer(
            prev.t,
            prev.f,
            prev.gtd,
            cur.t,
            cur.f,
            cur.gtd,
            bounds=(cur.t + 0.01 * (cur.t - prev.t), cur.t * 10),
        )
        prev, cur = kept(cur), probe(t_next)
        iters += 1
    if iters == max_ls:
        # out of evaluations: fall back to the better of the start and the last probe
        bracket = [start, cur]
    assert bracket is not None

    # -- phase 2: zoom into the bracket ------------------------------------------------------
    lo, hi = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    insufficient = False
    while not done and iters < max_ls:
        a, b = bracket
        if abs(b.t - a.t) * d_norm < tolerance_change:
            break
        t_new = cubic_minimizer(a.t, a.f, a.gtd, b.t, b.f, b.gtd)
        t_new, insufficient = _keep_off_edges(t_new, a.t, b.t, insufficient)
        new = probe(t_new)
        iters += 1
        if armijo_fails(new) or new.f >= bracket[lo].f:
            bracket[hi] = kept(new)
            lo, hi = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
            continue
        if curvature_holds(new):
            done = True
        elif new.gtd * (bracket[hi].t - bracket[lo].t) >= 0:
            bracket[hi] = bracket[lo]
        bracket[lo] = kept(new)

    best = bracket[lo]
    return best.f, best.g, best.t, evals


def _keep_off_edges(t: Number, ta: Number, tb: Number, insufficient: bool) -> tuple[Number, bool]:
    """Safeguard a zoom trial that lands within 10% of the bracket's ends.

    A trial near an edge is allowed once; if the previous trial was also near an edge, or this
    one is on or past an edge, it is moved to 10% of the bracket's width inside it.
    """
    top, bottom = max(ta, tb), min(ta, tb)
    margin = 0.1 * (top - bottom)
    if not min(top - t, t - bottom) < margin:
        return t, False
    if not (insufficient or t >= top or t <= bottom):
        return t, True
    if abs(t - top) < abs(t - bottom):
        return top - margin, False
    return bottom + margin, False
