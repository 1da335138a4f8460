"""Bad-input cases for the Paddle and MindSpore dialects, run the same way on the real framework
and on polyoptim.

One case is one call the user could make with a bad value: a constructor argument, a group key,
``set_lr``, a learning-rate schedule argument, an integer or bool parameter, or a value arriving
through a load path (``set_state_dict``, ``load_param_into_net``). :func:`run` drives a case
through a *namespace* that holds the framework's API (``paddle.optimizer`` or
``polyoptim.paddle``, ``mindspore.nn`` or ``polyoptim.mindspore``) and a few helpers to make
parameters and gradients, and returns what happened: the exception (type and message) raised at
which stage, or that everything ran. tools/bad_inputs_golden.py records the real framework's
outcomes into ``tests/golden/<framework>/bad_inputs.json``; the tests compare the dialect with it.

Nothing here imports a framework; cases hold plain Python values (``T(...)`` stands for a
framework tensor).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class T:
    """A framework tensor of ``value`` (nested lists) and ``dtype`` (numpy's name)."""

    value: Any
    dtype: str = "float32"


@dataclass
class Case:
    """One bad input.

    Attributes:
        id: unique, says what is tried (``Adam.beta1=1.5``).
        kind: ``ctor`` (constructor keywords), ``group`` (a group dict's keys), ``set_lr``,
            ``schedule`` (a schedule class or function), ``dtype`` (a parameter of an integer
            or bool dtype), ``load`` (a checkpoint value).
        target: the optimizer or schedule name.
        args: keywords of the call under test (for ``load``: the entries to change).
        base: keywords of the optimizer the case builds first (``set_lr``, ``load``, ``group``).
    """

    id: str
    kind: str
    target: str
    args: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)


# -- messages ----------------------------------------------------------------------------------
_TENSOR = re.compile(r"<class '(?:torch|paddle|mindspore\.common\.tensor)\.Tensor'>")
_ACC = re.compile(r"\bw_([a-z0-9_]+?)_\d+\b")
_CPP = re.compile(r"\s*(\[Hint:|\(at /|C\+\+ Traceback|-{10,}).*", re.S)


def normalize(message: str) -> str:
    """The part of a message that is the framework's own text: the first line (after any
    banner), without the C++ hint, source location or call stack that Paddle and MindSpore
    append."""
    lines = [ln.strip() for ln in message.strip().splitlines()]
    # MindSpore opens some messages with a banner ("-----", "- Kernel select failed:")
    text = [ln for ln in lines if ln and not ln.startswith("-")]
    first = text[0] if text else ""
    # Paddle numbers accumulators with a process-wide counter (``w_moment1_40``); the
    # framework's tensor class is torch's in the dialect
    text = _ACC.sub(r"w_\1_N", _CPP.sub("", first).strip())
    return _TENSOR.sub("<class 'Tensor'>", text)


def outcome(stage: str, exc: BaseException | None = None) -> dict[str, Any]:
    if exc is None:
        return {"stage": stage, "error": None}
    return {"stage": stage, "error": type(exc).__name__, "message": normalize(str(exc))}


def same(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    """Same stage, exception type and (normalized) message, or both ran."""
    return (expected["stage"], expected["error"], expected.get("message")) == (
        got["stage"],
        got["error"],
        got.get("message"),
    )


# -- the cases ---------------------------------------------------------------------------------
def _vals(*values: Any) -> list[Any]:
    return list(values)


BAD_RATE = _vals(-1.0, NAN, INF, 0, "0.1", None)
BAD_NONNEG = _vals(-1.0, NAN, INF, "x")
BAD_UNIT = _vals(1.5, -0.1, 1.0, NAN, "x")


def _name(v: Any) -> str:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    return repr(v)


def _ctor(target: str, arg: str, values: list[Any], **base: Any) -> list[Case]:
    return [Case(f"{target}.{arg}={_name(v)}", "ctor", target, {**base, arg: v}) for v in values]


#: Paddle's optimizers: (class, required keywords, {argument: bad values})
PADDLE_ARGS: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "SGD": ({}, {"learning_rate": BAD_RATE, "weight_decay": BAD_NONNEG}),
    "Momentum": (
        {},
        {"learning_rate": BAD_RATE, "momentum": _vals(-1.0, NAN, 1.5, "x", None)},
    ),
    "Adam": (
        {},
        {
            "learning_rate": BAD_RATE,
            "beta1": BAD_UNIT,
            "beta2": BAD_UNIT,
            "epsilon": _vals(-1e-8, NAN, 0.0, "x"),
            "weight_decay": BAD_NONNEG,
        },
    ),
    "AdamW": (
        {},
        {
            "beta1": BAD_UNIT,
            "epsilon": _vals(-1e-8, NAN),
            "weight_decay": _vals(-1.0, NAN, "x"),
            "lr_ratio": _vals("x"),
        },
    ),
    "Adamax": ({}, {"beta1": BAD_UNIT, "beta2": _vals(1.5, NAN), "epsilon": _vals(-1.0, NAN)}),
    "Adagrad": (
        {"learning_rate": 0.1},
        {"epsilon": _vals(-1.0, NAN), "initial_accumulator_value": _vals(-1.0, NAN)},
    ),
    "Adadelta": ({}, {"epsilon": _vals(-1.0, NAN), "rho": _vals(-1.0, 1.5, NAN)}),
    "RMSProp": (
        {"learning_rate": 0.1},
        {
            "rho": _vals(-1.0, 1.5, NAN),
            "epsilon": _vals(-1.0, NAN),
            "momentum": _vals(-1.0, NAN),
        },
    ),
    "Lamb": (
        {},
        {
            "beta1": _vals(1.5, -0.1, NAN),
            "beta2": _vals(1.5, NAN),
            "epsilon": _vals(-1.0, NAN),
            "lamb_weight_decay": _vals(-1.0, NAN),
        },
    ),
    "NAdam": (
        {},
        {"beta1": _vals(1.5, NAN), "epsilon": _vals(-1.0, NAN), "momentum_decay": _vals(-1.0)},
    ),
    "RAdam": ({}, {"beta1": _vals(1.5, NAN), "beta2": _vals(-0.1), "epsilon": _vals(-1.0)}),
    "ASGD": ({}, {"batch_num": _vals(0, -1, 1.5)}),
    "Rprop": (
        {},
        {
            "learning_rate_range": _vals((1.0, 0.1), (-1.0, 1.0)),
            "etas": _vals((1.5, 1.2), (0.5, 0.9)),
        },
    ),
}


def paddle_cases() -> list[Case]:
    cases: list[Case] = []
    for target, (base, args) in PADDLE_ARGS.items():
        for arg, values in args.items():
            cases += _ctor(target, arg, values, **base)
    for key, values in {
        "learning_rate": _vals(None, -1.0, NAN, "x"),
        "weight_decay": _vals(-1.0, NAN, "x"),
        "beta1": _vals(1.5, NAN),
        "epsilon": _vals(-1.0),
    }.items():
        for v in values:
            cases.append(Case(f"group.Adam.{key}={_name(v)}", "group", "Adam", {key: v}))
    cases.append(Case("group.Adam.no_params", "group", "Adam", {"params": None}))
    for key, values in {"momentum": _vals(-1.0, NAN), "learning_rate": _vals(None)}.items():
        for v in values:
            cases.append(Case(f"group.Momentum.{key}={_name(v)}", "group", "Momentum", {key: v}))
    for v in _vals(-1.0, NAN, INF, 0, "x", None, T([0.1])):
        cases.append(Case(f"set_lr={_name(v)}", "set_lr", "Adam", {"value": v}))
    for target, args in [
        ("StepDecay", {"learning_rate": 0.1, "step_size": 0}),
        ("StepDecay", {"learning_rate": 0.1, "step_size": 2, "gamma": 1.5}),
        ("StepDecay", {"learning_rate": 0.1, "step_size": 1.5}),
        ("StepDecay", {"learning_rate": "x", "step_size": 2}),
        ("MultiStepDecay", {"learning_rate": 0.1, "milestones": [3, 1]}),
        ("MultiStepDecay", {"learning_rate": 0.1, "milestones": [1, 3], "gamma": 2.0}),
        ("ExponentialDecay", {"learning_rate": 0.1, "gamma": -1.0}),
        ("ExponentialDecay", {"learning_rate": 0.1, "gamma": 1.5}),
        ("ExponentialDecay", {"learning_rate": -1.0, "gamma": 0.5}),
        ("CosineAnnealingDecay", {"learning_rate": 0.1, "T_max": 0}),
        ("CosineAnnealingDecay", {"learning_rate": 0.1, "T_max": 1.5}),
        ("CosineAnnealingDecay", {"learning_rate": 0.1, "T_max": 10, "eta_min": "x"}),
        ("PiecewiseDecay", {"boundaries": [3, 6], "values": [0.1, 0.01]}),
        ("LinearWarmup", {"learning_rate": 0.1, "warmup_steps": 0, "start_lr": 0.0, "end_lr": 0.1}),
        (
            "LinearWarmup",
            {"learning_rate": 0.1, "warmup_steps": 1.5, "start_lr": 0.0, "end_lr": 0.1},
        ),
        ("PolynomialDecay", {"learning_rate": 0.1, "decay_steps": 0}),
        ("PolynomialDecay", {"learning_rate": 0.1, "decay_steps": 10, "power": -1.0}),
        ("NoamDecay", {"d_model": 0, "warmup_steps": 10}),
        ("LambdaDecay", {"learning_rate": 0.1, "lr_lambda": 3}),
        ("OneCycleLR", {"max_learning_rate": 0.1, "total_steps": 0}),
        ("OneCycleLR", {"max_learning_rate": 0.1, "total_steps": 10, "phase_pct": 1.5}),
        ("OneCycleLR", {"max_learning_rate": "x", "total_steps": 10}),
        ("CyclicLR", {"base_learning_rate": 0.1, "max_learning_rate": 0.2, "step_size_up": 0}),
        (
            "CyclicLR",
            {"base_learning_rate": 0.1, "max_learning_rate": 0.2, "step_size_up": 2, "mode": "x"},
        ),
        ("ReduceOnPlateau", {"learning_rate": 0.1, "factor": 1.5}),
        ("ReduceOnPlateau", {"learning_rate": 0.1, "mode": "x"}),
        ("ReduceOnPlateau", {"learning_rate": 0.1, "threshold_mode": "x"}),
        ("LinearLR", {"learning_rate": 0.1, "total_steps": 0}),
        ("LinearLR", {"learning_rate": 0.1, "total_steps": 5, "start_factor": 2.0}),
        ("CosineAnnealingWarmRestarts", {"learning_rate": 0.1, "T_0": 0}),
        ("CosineAnnealingWarmRestarts", {"learning_rate": 0.1, "T_0": 2, "T_mult": 0}),
    ]:
        label = ",".join(f"{k}={_name(v)}" for k, v in args.items())
        cases.append(Case(f"lr.{target}({label})", "schedule", target, args))
    for target in [*PADDLE_ARGS, "LBFGS"]:
        for dtype in ("int64", "int32", "bool"):
            base = PADDLE_ARGS[target][0] if target in PADDLE_ARGS else {}
            cases.append(
                Case(f"{target}.param_dtype={dtype}", "dtype", target, {"dtype": dtype}, base)
            )
    for args in [
        {"moment1": T([1.0, 2.0, 3.0])},
        {"moment1": "x"},
        {"beta1_pow_acc": T([[0.9, 0.9]])},
        {"moment2": T([[NAN, 1.0], [1.0, 1.0]])},
        {"moment1": T([[1, 2], [3, 4]], "int64")},
        {"moment1": None},
        {"LR_Scheduler": {"last_epoch": "x", "last_lr": 0.1}},
        # a good entry before a bad one: nothing may be loaded
        {"moment1": T([[9.0, 9.0], [9.0, 9.0]]), "moment2": T([1.0, 2.0, 3.0])},
        {"moment1": T([[9.0, 9.0], [9.0, 9.0]]), "beta2_pow_acc": None},
    ]:
        label = ",".join(f"{k}={_name(v)}" for k, v in args.items())
        cases.append(Case(f"set_state_dict.Adam({label})", "load", "Adam", args))
    return cases


#: MindSpore's optimizers: (class, required keywords, {argument: bad values})
MS_ARGS: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "Momentum": (
        {"learning_rate": 0.1, "momentum": 0.9},
        {
            "learning_rate": _vals(-1.0, NAN, INF, "x", None, -1),
            "momentum": _vals(-1.0, NAN, 2.0, 1, "x"),
            "weight_decay": _vals(-1.0, NAN, "x"),
            "loss_scale": _vals(0.0, -1.0, NAN, 1),
            "use_nesterov": _vals(1, "x"),
        },
    ),
    "SGD": (
        {},
        {
            "momentum": _vals(-1.0, NAN),
            "dampening": _vals(-1.0, NAN),
            "nesterov": _vals(1),
            "learning_rate": _vals(-1.0, NAN),
        },
    ),
    "Adam": (
        {},
        {
            "beta1": _vals(1.0, 0.0, -0.1, NAN, 1),
            "beta2": _vals(1.0, NAN),
            "eps": _vals(0.0, -1e-8, NAN, 1),
            "weight_decay": _vals(-1.0, NAN),
            "use_locking": _vals(1),
            "learning_rate": _vals(T([[0.1]]), T([0.1], "int32")),
        },
    ),
    "AdamWeightDecay": (
        {},
        {"beta1": _vals(1.0, NAN), "eps": _vals(0.0, NAN), "weight_decay": _vals(-1.0)},
    ),
    "LazyAdam": ({}, {"beta1": _vals(1.0, NAN), "eps": _vals(0.0)}),
    "AdamOffload": ({}, {"beta1": _vals(1.0), "eps": _vals(0.0)}),
    "AdaMax": ({}, {"beta1": _vals(1.0, NAN), "beta2": _vals(1.0), "eps": _vals(0.0, NAN)}),
    "Adagrad": (
        {},
        {"accum": _vals(-1.0, NAN), "update_slots": _vals(1), "learning_rate": _vals(-1.0)},
    ),
    "Adadelta": ({}, {"rho": _vals(-0.1, 1.5, NAN), "epsilon": _vals(-1.0, NAN)}),
    "RMSProp": (
        {"learning_rate": 0.1},
        {
            "decay": _vals(-0.1, NAN),
            "momentum": _vals(-1.0, NAN),
            "epsilon": _vals(0.0, NAN),
            "centered": _vals(1),
        },
    ),
    "Rprop": (
        {},
        {
            "etas": _vals((1.5, 1.2), (0.5, 0.9), (0.5,)),
            "step_sizes": _vals((1.0, 0.1), (-1.0, 1.0)),
        },
    ),
    "ASGD": ({}, {"lambd": _vals(-1.0, NAN), "alpha": _vals(-1.0), "t0": _vals(-1.0, NAN)}),
    "FTRL": (
        {},
        {
            "initial_accum": _vals(-1.0, NAN),
            "learning_rate": _vals(0.0, -1.0),
            "lr_power": _vals(0.5, NAN),
            "l1": _vals(-1.0),
            "l2": _vals(-1.0),
        },
    ),
    "ProximalAdagrad": ({}, {"accum": _vals(-1.0), "l1": _vals(-1.0, NAN), "l2": _vals(-1.0)}),
    "Lamb": (
        {"learning_rate": 0.1},
        {"beta1": _vals(1.0, NAN), "beta2": _vals(1.0), "eps": _vals(0.0, NAN)},
    ),
    "AdaFactor": (
        {},
        {
            "eps": _vals((1e-30,), (-1.0, 1e-3)),
            "clip_threshold": _vals(-1.0),
            "decay_rate": _vals(1.5, NAN),
            "beta1": _vals(1.5),
            "weight_decay": _vals(-1.0),
        },
    ),
}


def mindspore_cases() -> list[Case]:
    cases: list[Case] = []
    for target, (base, args) in MS_ARGS.items():
        for arg, values in args.items():
            cases += _ctor(target, arg, values, **base)
    for key, values in {
        "lr": _vals(-1.0, NAN, "x"),
        "weight_decay": _vals(-1.0, NAN, "x"),
        "grad_centralization": _vals(1, "x"),
        "order_params": _vals("x"),
    }.items():
        for v in values:
            cases.append(Case(f"group.Momentum.{key}={_name(v)}", "group", "Momentum", {key: v}))
    cases.append(Case("group.Momentum.no_params", "group", "Momentum", {"params": None}))
    cases.append(Case("group.Momentum.unknown_key", "group", "Momentum", {"betas": 0.5}))
    for target, args in [
        ("ExponentialDecayLR", {"learning_rate": -1.0, "decay_rate": 0.9, "decay_steps": 2}),
        ("ExponentialDecayLR", {"learning_rate": 0.1, "decay_rate": NAN, "decay_steps": 2}),
        ("ExponentialDecayLR", {"learning_rate": 0.1, "decay_rate": 0.9, "decay_steps": 0}),
        (
            "ExponentialDecayLR",
            {"learning_rate": 0.1, "decay_rate": 0.9, "decay_steps": 2, "is_stair": 1},
        ),
        ("CosineDecayLR", {"min_lr": 0.2, "max_lr": 0.1, "decay_steps": 2}),
        ("CosineDecayLR", {"min_lr": -1.0, "max_lr": 0.1, "decay_steps": 2}),
        (
            "PolynomialDecayLR",
            {"learning_rate": 0.1, "end_learning_rate": 0.01, "decay_steps": 2, "power": -1.0},
        ),
        (
            "PolynomialDecayLR",
            {"learning_rate": 0.1, "end_learning_rate": -0.01, "decay_steps": 2, "power": 1.0},
        ),
        ("WarmUpLR", {"learning_rate": 0.1, "warmup_steps": 0}),
        ("WarmUpLR", {"learning_rate": NAN, "warmup_steps": 2}),
        ("InverseDecayLR", {"learning_rate": 0.1, "decay_rate": -0.5, "decay_steps": 2}),
        ("NaturalExpDecayLR", {"learning_rate": 0.1, "decay_rate": 0.5, "decay_steps": 1.5}),
        ("piecewise_constant_lr", {"milestone": [3, 1], "learning_rates": [0.1, 0.01]}),
        ("piecewise_constant_lr", {"milestone": [1, 3], "learning_rates": [0.1]}),
        (
            "exponential_decay_lr",
            {
                "learning_rate": -1.0,
                "decay_rate": 0.9,
                "total_step": 4,
                "step_per_epoch": 2,
                "decay_epoch": 1,
            },
        ),
        (
            "exponential_decay_lr",
            {
                "learning_rate": 0.1,
                "decay_rate": 0.9,
                "total_step": 0,
                "step_per_epoch": 2,
                "decay_epoch": 1,
            },
        ),
        (
            "cosine_decay_lr",
            {"min_lr": 0.1, "max_lr": -0.1, "total_step": 4, "step_per_epoch": 2, "decay_epoch": 1},
        ),
        (
            "polynomial_decay_lr",
            {
                "learning_rate": 0.1,
                "end_learning_rate": 0.01,
                "total_step": 4,
                "step_per_epoch": 2,
                "decay_epoch": 1,
                "power": 0.0,
            },
        ),
        (
            "warmup_lr",
            {"learning_rate": 0.1, "total_step": 4, "step_per_epoch": 2, "warmup_epoch": 0},
        ),
    ]:
        label = ",".join(f"{k}={_name(v)}" for k, v in args.items())
        cases.append(Case(f"{target}({label})", "schedule", target, args))
    for target in MS_ARGS:
        for dtype in ("int64", "int32", "bool"):
            base = MS_ARGS[target][0]
            cases.append(
                Case(f"{target}.param_dtype={dtype}", "dtype", target, {"dtype": dtype}, base)
            )
    mom = {"learning_rate": 0.1, "momentum": 0.9}
    for args in [
        {"momentum": T(-1.0)},
        {"momentum": T(2.0)},
        {"momentum": T(NAN)},
        {"learning_rate": T(NAN)},
        {"learning_rate": T(-1.0)},
        {"learning_rate": T([0.1, 0.2])},
        {"moments.w": T([1.0, 2.0])},
        {"moments.w": T([[1, 2], [3, 4]], "int32")},
        {"global_step": T([-1], "int32")},
        {"global_step": T([1.5])},
        {"w": T([[NAN, 1.0], [1.0, 1.0]])},
        {"w": T([[1, 2], [3, 4]], "int32")},
        {"w": T([[True, False], [True, True]], "bool")},
        {"global_step": T([3], "int64")},
        {"moments.w": T([[1.0, 2.0], [3.0, 4.0]], "float16")},
    ]:
        key = next(iter(args))
        cases.append(
            Case(
                f"load_param_into_net.Momentum.{key}={_name(args[key].value)}",
                "load",
                "Momentum",
                args,
                mom,
            )
        )
        if key != "w":  # the same after new weights: the weights must not be written either
            args = {"w": T([[9.0, 9.0], [9.0, 9.0]]), **args}
            cases.append(
                Case(
                    f"load_param_into_net.Momentum.w+{key}={_name(args[key].value)}",
                    "load",
                    "Momentum",
                    args,
                    mom,
                )
            )
    return cases


# -- the grid: every number or flag of every constructor, from the recorded signatures ----------
#: the bad values tried for an argument, by the type of its default
GRID = {
    float: _vals(-1.0, NAN, INF, 1, "x", None),
    int: _vals(-1, 0, 1.5, "x"),
    bool: _vals(1, "x", None),
}
#: what a required argument gets when another one is under test (optimizers and schedules)
REQUIRED: dict[str, Any] = {
    "learning_rate": 0.1,
    "momentum": 0.9,
    # Paddle's schedulers
    "d_model": 16,
    "warmup_steps": 2,
    "boundaries": [2, 4],
    "values": [0.1, 0.01, 0.001],
    "gamma": 0.5,
    "decay_steps": 4,
    "start_lr": 0.0,
    "end_lr": 0.1,
    "milestones": [2, 4],
    "step_size": 2,
    "T_max": 10,
    "max_learning_rate": 0.1,
    "total_steps": 10,
    "base_learning_rate": 0.01,
    "step_size_up": 2,
    "T_0": 2,
    # MindSpore's schedules and dynamic_lr functions
    "decay_rate": 0.9,
    "min_lr": 0.01,
    "max_lr": 0.1,
    "end_learning_rate": 0.01,
    "power": 1.0,
    "total_step": 4,
    "step_per_epoch": 2,
    "decay_epoch": 1,
    "warmup_epoch": 1,
    "milestone": [2, 4],
    "learning_rates": [0.1, 0.01],
}
#: schedules and arguments the grid leaves alone (their own cases cover them)
GRID_SKIP = {"params", "parameters", "name", "optimizer", "grad_clip", "lr_ratio"}


def grid_cases(
    signatures: dict[str, dict[str, Any]], classes: list[str], kind: str = "ctor"
) -> list[Case]:
    """One case per (class, argument, bad value) for the numeric and boolean arguments of
    ``classes``; ``signatures`` maps a class to ``{argument: default or "<required>"}``;
    ``kind`` is ``ctor`` (optimizers) or ``schedule``."""
    cases = []
    for target in classes:
        sig = signatures[target]
        base = {k: REQUIRED[k] for k, v in sig.items() if v == "<required>" and k in REQUIRED}
        for arg, default in sig.items():
            if arg in GRID_SKIP or arg.startswith("**"):
                continue
            typ = type(REQUIRED.get(arg)) if default == "<required>" else type(default)
            for v in GRID.get(typ, ()):
                args = {**base, arg: v}
                cases.append(Case(f"grid:{target}.{arg}={_name(v)}", kind, target, args))
    return cases


#: the classes the grid covers, per framework
GRID_CLASSES = {
    "paddle": [
        "SGD", "Momentum", "Adam", "AdamW", "Adamax", "Adagrad", "Adadelta", "RMSProp", "Lamb",
        "NAdam", "RAdam", "ASGD", "Rprop",
    ],
    "mindspore": [
        "Momentum", "SGD", "Adam", "AdamWeightDecay", "LazyAdam", "AdamOffload", "AdaMax",
        "Adagrad", "Adadelta", "RMSProp", "Rprop", "ASGD", "FTRL", "ProximalAdagrad", "Lamb",
        "AdaFactor",
    ],
}  # fmt: skip


#: the schedules the grid covers (Paddle's ``LambdaDecay``/``MultiplicativeDecay`` take
#: functions, their own cases cover them)
GRID_SCHEDULES = {
    "paddle": [
        "NoamDecay", "PiecewiseDecay", "NaturalExpDecay", "InverseTimeDecay", "PolynomialDecay",
        "LinearWarmup", "ExponentialDecay", "MultiStepDecay", "StepDecay", "ReduceOnPlateau",
        "CosineAnnealingDecay", "OneCycleLR", "CyclicLR", "LinearLR",
        "CosineAnnealingWarmRestarts",
    ],
    "mindspore": [
        "ExponentialDecayLR", "NaturalExpDecayLR", "InverseDecayLR", "CosineDecayLR",
        "PolynomialDecayLR", "WarmUpLR", "exponential_decay_lr", "natural_exp_decay_lr",
        "inverse_decay_lr", "cosine_decay_lr", "polynomial_decay_lr", "warmup_lr",
    ],
}  # fmt: skip


def all_cases(framework: str, signatures: dict[str, dict[str, Any]]) -> list[Case]:
    """The hand-written cases and the grid, for ``paddle`` or ``mindspore``."""
    hand = paddle_cases() if framework == "paddle" else mindspore_cases()
    grid = grid_cases(signatures, GRID_CLASSES[framework])
    return hand + grid + grid_cases(signatures, GRID_SCHEDULES[framework], "schedule")


def signature_of(obj: Any) -> dict[str, Any]:
    """``{argument: default or "<required>"}`` of a class's constructor (JSON-safe)."""
    import inspect

    out: dict[str, Any] = {}
    for name, p in inspect.signature(obj).parameters.items():
        if p.kind is p.VAR_KEYWORD:
            out["**" + name] = None
        elif p.default is p.empty:
            out[name] = "<required>"
        elif isinstance(p.default, (bool, int, float, str)) or p.default is None:
            out[name] = p.default
        else:
            out[name] = repr(p.default)
    return out


# -- running a case ----------------------------------------------------------------------------
@dataclass
class Namespace:
    """What :func:`run` needs from a framework (or from the dialect).

    Attributes:
        framework: ``paddle`` or ``mindspore``.
        optim: the optimizer classes (``paddle.optimizer`` / ``mindspore.nn``).
        lr: where the schedule classes and functions live.
        param: ``param(name, values, dtype)`` -> a trainable parameter.
        tensor: ``tensor(values, dtype)`` -> a tensor.
        step: ``step(opt, params, grads)`` with ``grads`` as numpy-compatible lists.
        snapshot: ``snapshot(opt, params)`` -> something ``==``-comparable (numbers as text).
        load: ``load(opt, entries)`` loads the checkpoint of ``opt`` with ``entries`` changed.
    """

    framework: str
    optim: Any
    lr: Any
    param: Callable[..., Any]
    tensor: Callable[..., Any]
    step: Callable[..., Any]
    snapshot: Callable[..., Any]
    load: Callable[..., Any]


W = [[0.5, -1.0], [2.0, 0.25]]
G = [[0.1, 0.2], [-0.3, 0.4]]


def _resolve(ns: Namespace, v: Any) -> Any:
    if isinstance(v, T):
        return ns.tensor(v.value, v.dtype)
    return v


def _build(ns: Namespace, target: str, kwargs: dict[str, Any], params: list[Any]) -> Any:
    cls = getattr(ns.optim, target)
    kwargs = {k: _resolve(ns, v) for k, v in kwargs.items()}
    if ns.framework == "paddle":
        return cls(parameters=params, **kwargs)
    return cls(params, **kwargs)


def run(case: Case, ns: Namespace) -> dict[str, Any]:
    """Drive ``case`` through ``ns``; the outcome, plus ``changed`` when a call that raised had
    changed the parameters or the state before raising."""
    if case.kind == "schedule":
        fn = getattr(ns.lr, case.target)
        try:
            sched = fn(**{k: _resolve(ns, v) for k, v in case.args.items()})
        except Exception as e:  # noqa: BLE001 - the outcome is the point
            return outcome("construct", e)
        try:
            if callable(getattr(sched, "step", None)) and case.target != "ReduceOnPlateau":
                for _ in range(3):
                    sched.step()
            elif case.target == "ReduceOnPlateau":
                sched.step(1.0)
            elif callable(sched) and ns.framework == "mindspore":
                sched(ns.tensor(1, "int32"))
        except Exception as e:  # noqa: BLE001
            return outcome("use", e)
        return outcome("ran")

    dtype = case.args.get("dtype", "float32") if case.kind == "dtype" else "float32"
    values = [[5, 3], [1, 0]] if dtype != "float32" else W
    if dtype == "bool":
        values = [[True, False], [True, True]]
    try:
        params = [ns.param("w", values, dtype)]
    except Exception as e:  # noqa: BLE001
        return outcome("param", e)
    grads = [[[1, 2], [3, 4]] if dtype != "float32" else G]
    if dtype == "bool":
        grads = [[[True, True], [False, True]]]

    if case.kind == "group":
        group: dict[str, Any] = {"params": params, **case.args}
        if case.args.get("params", ...) is None:
            del group["params"]
        base = dict(case.base)
        if ns.framework == "mindspore" and case.target == "Momentum":
            base = {"learning_rate": 0.1, "momentum": 0.9, **base}
        try:
            opt = _build_groups(ns, case.target, base, [group])
        except Exception as e:  # noqa: BLE001
            return outcome("construct", e)
        return _step(ns, opt, params, grads)

    args = case.args if case.kind == "ctor" else case.base
    try:
        opt = _build(ns, case.target, args, params)
    except Exception as e:  # noqa: BLE001
        return outcome("construct", e)
    if case.kind in ("ctor", "dtype"):
        return _step(ns, opt, params, grads)
    if case.kind == "set_lr":
        before = ns.snapshot(opt, params)
        try:
            opt.set_lr(_resolve(ns, case.args["value"]))
        except Exception as e:  # noqa: BLE001
            return _changed(outcome("set_lr", e), before, ns.snapshot(opt, params))
        return _step(ns, opt, params, grads)
    if case.kind == "load":
        ns.step(opt, params, grads)  # a state worth keeping
        before = ns.snapshot(opt, params)
        try:
            ns.load(
                opt,
                params,
                {
                    k: _resolve(ns, v) if not isinstance(v, dict) else v
                    for k, v in case.args.items()
                },
            )
        except Exception as e:  # noqa: BLE001
            return _changed(outcome("load", e), before, ns.snapshot(opt, params))
        return _step(ns, opt, params, grads)
    raise ValueError(f"unknown case kind {case.kind!r}")


def _build_groups(ns: Namespace, target: str, base: dict[str, Any], groups: list[dict]) -> Any:
    cls = getattr(ns.optim, target)
    groups = [{k: _resolve(ns, v) for k, v in g.items()} for g in groups]
    if ns.framework == "paddle":
        return cls(parameters=groups, **base)
    return cls(groups, **base)


def _step(ns: Namespace, opt: Any, params: list[Any], grads: list[Any]) -> dict[str, Any]:
    before = ns.snapshot(opt, params)
    try:
        ns.step(opt, params, grads)
    except Exception as e:  # noqa: BLE001
        return _changed(outcome("step", e), before, ns.snapshot(opt, params))
    return outcome("ran")


def _changed(result: dict[str, Any], before: Any, after: Any) -> dict[str, Any]:
    result["changed"] = before != after
    return result
