"""Gradient transforms: what happens to gradients around the rule.

Whole-gradient transforms (this package's public functions) run across all param groups before
any update, in the order they were added with :meth:`polyoptim.Optimizer.add_transform`::

    opt = polyoptim.AdamW(model.parameters(), lr=1e-3)
    opt.add_transform(polyoptim.transforms.clip_by_global_norm(1.0))

Per-element transforms (``maximize``, weight decay) fuse into the rule instead: see
:mod:`polyoptim.transforms.elementwise`.
"""

from .centralize import centralize
from .clip import clip_by_global_norm, clip_by_norm, clip_by_value
from .decay import l1_regularize, l2_regularize
from .scale import scale

__all__ = [
    "centralize",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "l1_regularize",
    "l2_regularize",
    "scale",
]
