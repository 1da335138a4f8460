"""fp32 master weights for bfloat16/float16 parameters (a kernel concern: any kernel can use it).

With ``master_weights=True`` in a param group, each low-precision parameter gets a float32 copy
in its state (``master_param``) and float32 state buffers. The rule runs on the master copy with
the gradient widened to float32, and the result is rounded back into the parameter -- so small
updates are not lost to bfloat16 rounding. The fused CPU kernel does all of this in its one pass
(load the master, update it, store it and its rounded copy); the eager kernels run the rule on
the master tensors and copy back.

Example:
    >>> import torch, polyoptim
    >>> w = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    >>> opt = polyoptim.Adam([{"params": [w], "master_weights": True}], lr=1e-4)
    >>> w.grad = torch.ones_like(w); opt.step()
    >>> opt.state[w]["master_param"].dtype, opt.state[w]["exp_avg"].dtype
    (torch.float32, torch.float32)
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import torch

from ..rules.base import Rule

LOW_PRECISION = (torch.bfloat16, torch.float16)
MASTER_KEY = "master_param"


def wants_master(hp: Mapping[str, Any], p: torch.Tensor) -> bool:
    """Whether ``p`` is stepped through a float32 master copy in this group."""
    return bool(hp.get("master_weights")) and p.dtype in LOW_PRECISION


def ensure_master_state(
    rule: Rule, hp: Mapping[str, Any], p: torch.Tensor, state: MutableMapping[str, Any], fresh: bool
) -> None:
    """Give ``p`` a float32 master copy and float32 buffers (once; cheap afterwards).

    Buffers created this step are re-initialised from the master copy (an initial value such as
    Rprop's ``lr`` is then not rounded to bfloat16 first); older ones are widened.
    """
    master = state.get(MASTER_KEY)
    if master is None:
        master = p.detach().to(torch.float32, memory_format=torch.preserve_format).clone()
        state[MASTER_KEY] = master
    elif master.dtype != torch.float32:
        # torch's load_state_dict casts floating state to the parameter's dtype
        master = state[MASTER_KEY] = master.to(torch.float32)
    for b in rule.active_buffers(hp):
        buf = state.get(b.name)
        if buf is not None and buf.dtype != torch.float32:
            state[b.name] = b.init(master, hp) if fresh else buf.to(torch.float32)


def ensure_masters(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    fresh: Sequence[bool],
) -> None:
    """:func:`ensure_master_state` for every parameter of a group that keeps a master copy."""
    if hp.get("master_weights"):
        for p, st, f in zip(params, states, fresh):
            if wants_master(hp, p):
                ensure_master_state(rule, hp, p, st, f)


def run_on_master(
    kernel: Any,
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Mapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    """Run an eager ``kernel`` with each low-precision parameter replaced by its master copy,
    then round the masters back into the parameters."""
    ps, gs, low = [], [], []
    for p, g, st in zip(params, grads, states):
        m = st.get(MASTER_KEY) if wants_master(hp, p) else None
        if m is None:
            ps.append(p)
            gs.append(g)
        else:
            ps.append(m)
            gs.append(g.to(torch.float32))
            low.append((p, m))
    kernel(rule, hp, ps, gs, states, scalars)
    for p, m in low:
        p.detach().copy_(m)
