"""Argument checks with MindSpore's exception types and messages (``mindspore._checkparam``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

_REL = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _prefix(prim_name: str | None) -> str:
    return f"For '{prim_name}', the " if prim_name else "The "


def _check_number(value: Any, bound: float, rel: str, arg_type: type, name: str, prim: str | None):
    info = _prefix(prim) + (f"'{name}'" if name else "input value")
    if not isinstance(value, arg_type) or isinstance(value, bool):
        raise TypeError(f"{info} must be {arg_type.__name__}, but got '{type(value).__name__}'")
    if math.isinf(value) or math.isnan(value):
        raise ValueError(f"{info} must be a legal value, but got '{value}'.")
    ok = {"gt": value > bound, "ge": value >= bound, "lt": value < bound, "le": value <= bound}[rel]
    if not ok:
        raise ValueError(
            f"{info} must be {arg_type.__name__} and must {_REL[rel]} {bound}, "
            f"but got '{value}' with type '{type(value).__name__}'."
        )
    return value


def check_positive_int(value: Any, name: str = "", prim: str | None = None) -> int:
    return _check_number(value, 0, "gt", int, name, prim)


def check_positive_float(value: Any, name: str = "", prim: str | None = None) -> float:
    return _check_number(value, 0, "gt", float, name, prim)


def check_non_negative_float(value: Any, name: str = "", prim: str | None = None) -> float:
    return _check_number(value, 0, "ge", float, name, prim)


def check_non_positive_float(value: Any, name: str = "", prim: str | None = None) -> float:
    return _check_number(value, 0, "le", float, name, prim)


def check_is_float(value: Any, name: str = "", prim: str | None = None) -> float:
    p = "The" if not prim else f"For '{prim}', the"
    arg = f"'{name}'" if name else "input value"
    if not isinstance(value, float) or isinstance(value, bool):
        raise TypeError(f"{p} type of {arg} must be 'float', but got '{type(value).__name__}'.")
    if math.isinf(value) or math.isnan(value):
        raise ValueError(f"{p} {arg} must be a legal float, but got '{value}'.")
    return value


def check_value_type(name: str, value: Any, valid: Iterable[type] | type, prim: str | None = None):
    """TypeError unless ``value`` is an instance of one of ``valid`` (bool only if listed)."""
    types = tuple(valid) if isinstance(valid, Iterable) else (valid,)
    bad = (isinstance(value, bool) and bool not in types) or not isinstance(value, types)
    if bad:
        names = [t.__name__ for t in types]
        p = f"For '{prim}', the" if prim else "The"
        one = names[0] if len(names) == 1 else names
        raise TypeError(
            f"{p} type of '{name}' should be {'one of ' if len(names) > 1 else ''}'{one}', "
            f"but got type '{type(value).__name__}'."
        )
    return value


def check_bool(value: Any, name: str = "", prim: str | None = None) -> bool:
    if not isinstance(value, bool):
        p = f"For '{prim}', the" if prim else "The"
        arg = f"'{name}'" if name else "input value"
        raise TypeError(f"{p} {arg} must be a bool, but got {type(value).__name__}.")
    return value


def check_float_range(
    value: Any, lower: float, upper: float, include: str, name: str, prim: str | None = None
) -> float:
    """``include`` is ``"neither"``, ``"left"``, ``"right"`` or ``"both"``."""
    p = f"For '{prim}', the" if prim else "The"
    if not isinstance(value, float) or isinstance(value, bool):
        raise TypeError(f"{p} '{name}' must be 'float',  but got '{type(value).__name__}'.")
    # written as MindSpore writes it: out of range is "below or above", so NaN passes
    lo_bad = value < lower if include in ("left", "both") else value <= lower
    hi_bad = value > upper if include in ("right", "both") else value >= upper
    if lo_bad or hi_bad:
        left = "[" if include in ("left", "both") else "("
        right = "]" if include in ("right", "both") else ")"
        raise ValueError(
            f"{p} '{name}' must be in range of {left}{lower}, {upper}{right}, "
            f"but got {value} with type '{type(value).__name__}'."
        )
    return value
