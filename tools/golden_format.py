"""Reader for the golden fixture layout in tests/golden/<framework>/ (numpy only).

Every case is one ``.npz`` file holding a 0-d unicode array ``meta`` (JSON) and plain arrays:
``p{j}_init``, ``g{k}_{j}``, ``p{j}_step{k}``, ``lr{k}`` and ``state/<key>``; see
tests/golden/paddle/README.md for the full format. This module is framework-neutral: it never
imports torch, paddle or mindspore.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

__all__ = [
    "list_cases",
    "load_case",
    "load_index",
    "n_params",
    "n_steps",
    "params",
    "grads",
    "trajectory",
    "lrs",
    "state",
]

_INIT = re.compile(r"p(\d+)_init")
_STEP = re.compile(r"p\d+_step(\d+)")
_LR = re.compile(r"lr(\d+)")


def list_cases(folder: str | os.PathLike) -> list[str]:
    """Sorted paths of every case file (``*.npz``) directly inside ``folder``."""
    folder = os.fspath(folder)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".npz"))
    return [os.path.join(folder, n) for n in names]


def load_index(folder: str | os.PathLike) -> dict:
    """The parsed ``index.json`` of a fixture folder."""
    with open(os.path.join(os.fspath(folder), "index.json"), encoding="utf-8") as f:
        return json.load(f)


def load_case(path: str | os.PathLike) -> dict:
    """Load one case: ``{"meta": <parsed JSON>, "arrays": {key: ndarray}, "name": <case>}``.

    Arrays are loaded eagerly (the files are tiny) and ``allow_pickle`` stays off.
    """
    path = os.fspath(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")[()]))
    name = meta.get("case") or meta.get("name") or os.path.splitext(os.path.basename(path))[0]
    return {"name": name, "meta": meta, "arrays": arrays}


def n_params(case: dict) -> int:
    """Number of parameters (counted from the ``p{j}_init`` keys)."""
    return sum(1 for k in case["arrays"] if _INIT.fullmatch(k))


def n_steps(case: dict) -> int:
    """Number of recorded optimizer steps (largest k of ``p{j}_step{k}``), 0 if none."""
    ks = [int(m.group(1)) for k in case["arrays"] if (m := _STEP.fullmatch(k))]
    return max(ks, default=0)


def params(case: dict) -> list[np.ndarray]:
    """Initial parameter values ``p{j}_init`` in parameter order."""
    a = case["arrays"]
    return [a[f"p{j}_init"] for j in range(n_params(case))]


def grads(case: dict, k: int) -> list[np.ndarray]:
    """Gradients given at step ``k`` (1-based), one per parameter."""
    a = case["arrays"]
    return [a[f"g{k}_{j}"] for j in range(n_params(case))]


def trajectory(case: dict, k: int) -> list[np.ndarray]:
    """Parameter values after step ``k`` (1-based), one per parameter."""
    a = case["arrays"]
    return [a[f"p{j}_step{k}"] for j in range(n_params(case))]


def lrs(case: dict) -> dict[int, np.ndarray]:
    """Every recorded ``lr{k}`` as {k: array}, in increasing k."""
    found = {int(m.group(1)): v for k, v in case["arrays"].items() if (m := _LR.fullmatch(k))}
    return dict(sorted(found.items()))


def state(case: dict) -> dict[str, np.ndarray]:
    """Final optimizer state tensors, keyed by the framework's own names (``state/`` removed)."""
    return {k[len("state/") :]: v for k, v in case["arrays"].items() if k.startswith("state/")}
