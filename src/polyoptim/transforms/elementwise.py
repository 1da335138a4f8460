"""Gradient transforms that act per element and therefore fuse into a rule's update.

torch.optim applies, before each algorithm's own math: negation for ``maximize``, then weight
decay, either coupled (``g ← g + λ p``, classic L2) or decoupled (``p ← p (1 − γ λ)``, AdamW).
Written once here and composed with any rule.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import replace
from typing import Any

from ..rules.base import Rule


def torch_prologue(rule: Rule, *, decoupled_key: str | None = "decoupled_weight_decay") -> Rule:
    """Compose ``maximize`` and weight decay (coupled or decoupled) in front of ``rule``.

    The update becomes::

        g ← −g                      if maximize
        p ← p · (1 − γ λ)           if λ ≠ 0 and decoupled
        g ← g + λ p                 if λ ≠ 0 and coupled
        (p, buffers) ← rule(p, g, buffers)

    Args:
        rule: the algorithm.
        decoupled_key: the group key that switches decay to decoupled, or None if the
            algorithm only has coupled decay.
    """
    inner_update, inner_prepare = rule.update, rule.prepare

    def update(ops, p, g, *buffers, maximize, weight_decay, decay_factor, **scalars):
        if maximize:
            g = -g
        if weight_decay != 0:
            if decay_factor is not None:
                p = p * decay_factor
            else:
                g = ops.add(g, p, weight_decay)
        return inner_update(ops, p, g, *buffers, **scalars)

    def prepare(hp: Mapping[str, Any], state: MutableMapping[str, Any], fresh: bool):
        scalars = inner_prepare(hp, state, fresh)
        wd = hp.get("weight_decay", 0)
        decoupled = bool(decoupled_key and hp.get(decoupled_key, False))
        scalars.update(
            maximize=hp.get("maximize", False),
            weight_decay=wd,
            decay_factor=(1 - float(hp["lr"]) * wd) if (decoupled and wd != 0) else None,
        )
        return scalars

    return replace(rule, update=update, prepare=prepare)
