"""Write golden optimizer trajectories and checkpoint files from the real MindSpore 2.10.0 (CPU).

Usage::

    bash tools/mindspore_env.sh
    .venv-mindspore/bin/python tools/mindspore_golden.py [--out tests/golden/mindspore]

The script never imports polyoptim or torch. It runs MindSpore in PYNATIVE mode on CPU, feeds
every optimizer fixed float32 gradients directly (``opt(grads)``, the MindSpore way) for 12
steps, and stores what MindSpore did. The file layout is described in
``tests/golden/mindspore/README.md``; in short, one ``.npz`` per case holding

* ``meta``: a 0-d unicode array with a JSON object (framework, version, optimizer, kwargs, ...);
* ``p{j}_init``, ``g{k}_{j}``, ``p{j}_step{k}``, ``lr{k}`` and ``state/<name>``;

plus ``index.json`` (every case with its meta, and every refusal with MindSpore's error), the
learning-rate schedules as cases of kind ``schedule``/``dynamic_lr``, and real ``.ckpt`` files
under ``checkpoints/`` with what ``mindspore.load_checkpoint`` returns for each.

Output is byte-for-byte reproducible: fixed seeds, and the npz zips are written with a fixed
timestamp.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import os
import platform
import re
import shutil
import sys
import traceback
import zipfile

import numpy as np

os.environ.setdefault("GLOG_v", "3")  # MindSpore: errors only
os.environ.setdefault("MS_SUBMODULE_LOG_v", "{ME:3}")

import mindspore as ms  # noqa: E402
from mindspore import Parameter, Tensor, jit, nn  # noqa: E402
from mindspore.common.sparse_tensor import RowTensorInner  # noqa: E402
from mindspore.nn import dynamic_lr as DLR  # noqa: E402
from mindspore.nn import learning_rate_schedule as LRS  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mindspore_ckpt_writer import BFloat16, float32_to_bfloat16_bits, write_checkpoint  # noqa: E402

STEPS = 12
FRAMEWORK = "mindspore"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# --------------------------------------------------------------------------------------------
# fixed data
# --------------------------------------------------------------------------------------------

PARAM_SETS = {
    # plain network: a weight and a bias
    "p2": [("fc.weight", (3, 2)), ("fc.bias", (2,))],
    # for weight decay: 'gamma'/'beta' are skipped by the default decay filter
    "p3": [("fc.weight", (3, 2)), ("bn.gamma", (2,)), ("bn.beta", (2,))],
    # RMSProp's CPU blocks-of-8 quirk: 19 = 2*8 + 3 elements
    "p19": [("fc.weight", (19,)), ("fc.bias", (2,))],
    # gradient centralization: shape[1] % 16 == 0 is centralized, shape[1] == 8 is skipped
    "gc16": [("conv.weight", (4, 16)), ("fc.bias", (2,))],
    "gc8": [("conv2.weight", (4, 8)), ("fc.bias", (2,))],
    # sparse (RowTensor) gradient for the first parameter
    "sparse": [("emb.weight", (6, 2)), ("fc.bias", (2,))],
}
INIT_SEED = 20240601
GRAD_SEED = 20240602
SPARSE_ROWS = 3  # rows per sparse gradient; two of them always share an index (a duplicate)


def param_init(pset):
    rng = np.random.default_rng(INIT_SEED)
    return [rng.standard_normal(shape).astype(np.float32) for _, shape in PARAM_SETS[pset]]


def grad_data(pset):
    """Gradients for steps 1..STEPS: list of lists (dense arrays), plus sparse index/values."""
    rng = np.random.default_rng(GRAD_SEED)
    dense, sparse = [], []
    for k in range(1, STEPS + 1):
        step_g, step_s = [], {}
        for j, (_, shape) in enumerate(PARAM_SETS[pset]):
            if pset == "sparse" and j == 0:
                rows = shape[0]
                idx = np.array([k % rows, (k + 3) % rows, (k + 3) % rows], dtype=np.int32)
                vals = rng.standard_normal((SPARSE_ROWS,) + shape[1:]).astype(np.float32)
                g = np.zeros(shape, np.float32)
                np.add.at(g, idx, vals)
                step_s[j] = (idx, vals)
            else:
                g = rng.standard_normal(shape).astype(np.float32)
            step_g.append(g)
        dense.append(step_g)
        sparse.append(step_s)
    return dense, sparse


# --------------------------------------------------------------------------------------------
# JSON encoding of constructor arguments
# --------------------------------------------------------------------------------------------


def sched(cls_name, **args):
    """A LearningRateSchedule that remembers its arguments for the meta JSON."""
    obj = getattr(LRS, cls_name)(**args)
    obj._golden_spec = {"__class__": cls_name, "args": args}
    return obj


def tensor_arg(values, dtype=np.float32):
    t = Tensor(np.asarray(values, dtype=dtype))
    value = values if np.ndim(values) == 0 else list(values)
    t._golden_spec = {"__class__": "Tensor", "dtype": np.dtype(dtype).name, "value": value}
    return t


def callable_source(fn) -> str:
    """A lambda's source text (e.g. LARS's default lars_filter), else its name."""
    try:
        line = inspect.getsource(fn).strip()
        match = re.search(r"lambda\b.*", line)
        if match and fn.__name__ == "<lambda>":
            return match.group(0).rstrip("):,").strip()
    except (OSError, TypeError):
        pass
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(fn))


def encode(obj):
    if hasattr(obj, "_golden_spec"):
        return obj._golden_spec
    if isinstance(obj, Parameter):
        return obj.name
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if callable(obj):
        return {"__callable__": getattr(obj, "_golden_src", None) or callable_source(obj)}
    raise TypeError(f"cannot encode {type(obj)}")


def short_error(exc: BaseException) -> str:
    """MindSpore's error text on one line, without call stacks, graph nodes, addresses, paths."""
    lines = []
    for line in str(exc).splitlines():
        t = line.strip()
        if t.startswith(("- The Function Call Stack", "- C++ Call Stack", "- Framework")):
            break
        if not t or set(t) <= {"-"}:
            continue
        lines.append(t)
    text = " ".join(lines) or repr(exc)
    text = re.sub(r",? Please confirm whether the device target .*?support list\.", "", text)
    text = re.sub(r" node: @.*", "", text)
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
    text = re.sub(r"(/[^\s'\"]+)*/([^/\s'\"]+\.ckpt)", r"\2", text)  # file name only
    return f"{type(exc).__name__}: {text}"[:600]


def signature_of(cls):
    """Constructor signature, looking through MindSpore's decorators (opt_init_args_register,
    deprecated, ...), which wrap ``__init__`` in ``(*args, **kwargs)`` functions."""
    fn = cls.__init__
    for _ in range(8):
        if hasattr(fn, "__wrapped__"):
            fn = fn.__wrapped__
            continue
        params = list(inspect.signature(fn).parameters.values())
        generic = all(
            p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self" for p in params
        )
        inner = [
            c.cell_contents
            for c in getattr(fn, "__closure__", None) or ()
            if inspect.isfunction(c.cell_contents)
        ]
        if not (generic and inner):
            break
        fn = inner[0]
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    out = {}
    for name, p in sig.parameters.items():
        if name in ("self",):
            continue
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            out[("**" if p.kind == p.VAR_KEYWORD else "*") + name] = None
        elif p.default is p.empty:
            out[name] = "<required>"
        else:
            try:
                out[name] = encode(p.default)
            except TypeError:
                out[name] = repr(p.default)
    return out


# --------------------------------------------------------------------------------------------
# npz writing (deterministic)
# --------------------------------------------------------------------------------------------


def write_npz(path, arrays: dict):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def dump_index(path, index: dict):
    """JSON with one line per list element (compact, yet diff-friendly)."""
    parts = []
    for key, value in index.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            rows = ",\n  ".join(json.dumps(v, ensure_ascii=False) for v in value)
            parts.append(f" {json.dumps(key)}: [\n  {rows}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(parts) + "\n}\n")


def meta_array(meta: dict) -> np.ndarray:
    return np.array(json.dumps(meta, sort_keys=False))


# --------------------------------------------------------------------------------------------
# optimizer cases
# --------------------------------------------------------------------------------------------


class Case:
    def __init__(
        self,
        name,
        optimizer,
        kwargs=None,
        pset="p2",
        groups=None,
        sparse=False,
        target=None,
        notes="",
        wrap=None,
        machine_dependent=None,
        expect_error=False,
    ):
        self.name = name
        self.optimizer = optimizer  # class name in mindspore.nn
        self.kwargs = dict(kwargs or {})
        self.pset = pset
        self.groups = groups  # callable(params_by_name) -> list of dicts, or None
        self.sparse = sparse
        self.target = target  # value assigned to opt.target before the first step
        self.notes = notes
        self.wrap = wrap  # (wrapper class name, wrapper kwargs) around the optimizer
        # why the numbers may differ when regenerated on another CPU (None: they should not)
        self.machine_dependent = machine_dependent
        # True: MindSpore is expected to reject the arguments (a documented validation error),
        # as opposed to a CPU refusal or a MindSpore bug
        self.expect_error = expect_error


class SparseStep(nn.Cell):
    """Feeds a RowTensor gradient for parameter 0 (PYNATIVE cannot take a RowTensor input)."""

    def __init__(self, opt, dense_shape):
        super().__init__(auto_prefix=False)
        self.opt = opt
        self.dense_shape = dense_shape

    @jit
    def construct(self, indices, values, g1):
        return self.opt((RowTensorInner(indices, values, self.dense_shape), g1))


def build_optimizer(case, first):
    cls = getattr(nn, case.optimizer)
    kwargs = dict(case.kwargs)
    if case.wrap:
        inner = cls(first, **kwargs)
        wcls, wkw = case.wrap
        opt = getattr(nn, wcls)(inner, **wkw)
    else:
        opt = cls(first, **kwargs)
    if case.target is not None:
        opt.target = case.target
    return opt


def inner_optimizer(opt):
    """The wrapped optimizer for LARS-style wrappers (their own parameters are fake ones)."""
    inner = getattr(opt, "opt", None)
    return inner if isinstance(inner, nn.Optimizer) else opt


def optimizer_param_order(opt):
    return [p.name for p in inner_optimizer(opt)._parameters]


def current_lrs(opt, params):
    """The lr each parameter will use at the coming step (before global_step is advanced).

    ``Optimizer.get_lr()`` has no side effect in 2.10.0; with group lrs it returns one value
    per parameter, in the optimizer's parameter order.
    """
    opt = inner_optimizer(opt)
    lrs = opt.get_lr()
    if getattr(opt, "is_group_lr", False):
        order = [p.name for p in opt._parameters]
        return np.array(
            [float(np.asarray(lrs[order.index(p.name)].asnumpy()).reshape(())) for p in params],
            dtype=np.float32,
        )
    return np.array(lrs.asnumpy(), dtype=np.float32).reshape(())


def optimizer_state(opt, params):
    own = {id(p) for p in params}
    state, seen = {}, set()
    for _, prm in opt.parameters_and_names():
        if id(prm) in own or id(prm) in seen:
            continue
        seen.add(id(prm))
        name = prm.name
        while name in state:
            name += "#dup"
        if prm.dtype == ms.bfloat16:
            state[name] = prm.astype(ms.float32).asnumpy()
        else:
            state[name] = prm.asnumpy().copy()
    return state


def run_case(case: Case, out_dir: str, versions: dict):
    names = [n for n, _ in PARAM_SETS[case.pset]]
    shapes = [list(s) for _, s in PARAM_SETS[case.pset]]
    inits = param_init(case.pset)
    dense, sparse = grad_data(case.pset)
    params = [Parameter(Tensor(a.copy()), name=n) for n, a in zip(names, inits)]
    first = case.groups({p.name: p for p in params}) if case.groups else list(params)
    arrays = {}
    stage = "construct"
    try:
        opt = build_optimizer(case, first)
        order = optimizer_param_order(opt)
        index_of = {n: j for j, n in enumerate(names)}
        stepper = SparseStep(opt, PARAM_SETS[case.pset][0][1]) if case.sparse else None
        for j, a in enumerate(inits):
            arrays[f"p{j}_init"] = a
        lr_known = True
        for k in range(1, STEPS + 1):
            stage = f"step {k}"
            try:
                arrays[f"lr{k}"] = current_lrs(opt, params)
            except Exception:  # noqa: BLE001 - lr not observable for this optimizer
                lr_known = False
            for j in range(len(names)):
                arrays[f"g{k}_{j}"] = dense[k - 1][j]
                if case.sparse and j in sparse[k - 1]:
                    idx, vals = sparse[k - 1][j]
                    arrays[f"gindices{k}_{j}"] = idx
                    arrays[f"gvalues{k}_{j}"] = vals
            if case.sparse:
                idx, vals = sparse[k - 1][0]
                stepper(Tensor(idx), Tensor(vals), Tensor(dense[k - 1][1]))
            else:
                grads = tuple(Tensor(dense[k - 1][index_of[n]]) for n in order)
                opt(grads)
            for j, p in enumerate(params):
                arrays[f"p{j}_step{k}"] = p.asnumpy().copy()
        if not lr_known:
            for k in range(1, STEPS + 1):
                arrays.pop(f"lr{k}", None)
        state = optimizer_state(opt, params)
    except Exception as exc:  # noqa: BLE001 - a refusal is a result
        return None, {
            "name": case.name,
            "optimizer": case.optimizer,
            "kwargs": encode(case.kwargs),
            "params": encode(first),
            "wrap": encode(case.wrap),
            "sparse_grads": case.sparse,
            "stage": stage,
            "error": short_error(exc),
            "expected_error": case.expect_error,
            "notes": case.notes,
        }
    for name, value in state.items():
        arrays[f"state/{name}"] = value
    meta = {
        "kind": "optimizer",
        "name": case.name,
        "framework": FRAMEWORK,
        "version": versions["mindspore"],
        "optimizer": case.optimizer,
        "kwargs": encode(case.kwargs),
        "params": encode(first),
        "wrap": encode(case.wrap),
        "param_names": names,
        "param_shapes": shapes,
        "opt_param_order": order,
        "steps": STEPS,
        "dtype": "float32",
        "mode": "PYNATIVE",
        "device": "CPU",
        "target": case.target,
        "sparse_grads": {names[0]: "RowTensor"} if case.sparse else {},
        "lr_recorded": "lr1" in arrays,
        "lr_per_param": bool(getattr(opt, "is_group_lr", False)),
        "state_names": list(state),
        "seeds": {"init": INIT_SEED, "grad": GRAD_SEED},
        "notes": case.notes,
        "machine_dependent": case.machine_dependent,
    }
    arrays = {"meta": meta_array(meta), **arrays}
    fname = case.name + ".npz"
    write_npz(os.path.join(out_dir, fname), arrays)
    return {"name": case.name, "file": fname, "meta": meta}, None


# ---- case list -------------------------------------------------------------------------------

# learning rate used by the generic variants, and base kwargs, per optimizer
BASE = {
    "Momentum": {"learning_rate": 0.1, "momentum": 0.9},
    "SGD": {"learning_rate": 0.1, "momentum": 0.9},
    "Adam": {"learning_rate": 0.01},
    "AdamWeightDecay": {"learning_rate": 0.01},
    "AdamOffload": {"learning_rate": 0.01},
    "LazyAdam": {"learning_rate": 0.01},
    "AdaMax": {"learning_rate": 0.01},
    "Adagrad": {"learning_rate": 0.1},
    "Adadelta": {"learning_rate": 1.0},
    "RMSProp": {"learning_rate": 0.01},
    "Rprop": {"learning_rate": 0.1},
    "ASGD": {"learning_rate": 0.1},
    "FTRL": {"learning_rate": 0.1},
    "ProximalAdagrad": {"learning_rate": 0.1},
    "Lamb": {"learning_rate": 0.01},
    "AdaFactor": {
        "learning_rate": 0.01,
        "relative_step": False,
        "scale_parameter": False,
        "warmup_init": False,
    },
}
NO_LOSS_SCALE = {"AdamWeightDecay", "Rprop", "ASGD", "Lamb"}
# the [4,8] "skipped" gradient centralization is recorded for a few optimizers only (size)
GC_SKIP_CASES = {"Momentum", "SGD", "Adam"}

SCHEDULES = [
    ("ExponentialDecayLR", lambda lr: {"learning_rate": lr, "decay_rate": 0.9, "decay_steps": 2}),
    (
        "NaturalExpDecayLR",
        lambda lr: {"learning_rate": lr, "decay_rate": 0.1, "decay_steps": 2, "is_stair": True},
    ),
    ("InverseDecayLR", lambda lr: {"learning_rate": lr, "decay_rate": 0.5, "decay_steps": 3}),
    ("CosineDecayLR", lambda lr: {"min_lr": lr * 0.1, "max_lr": lr, "decay_steps": 8}),
    (
        "PolynomialDecayLR",
        lambda lr: {
            "learning_rate": lr,
            "end_learning_rate": lr * 0.1,
            "decay_steps": 5,
            "power": 2.0,
            "update_decay_steps": True,
        },
    ),
    ("WarmUpLR", lambda lr: {"learning_rate": lr, "warmup_steps": 5}),
]


def lr_list(lr):
    return [round(lr * (1.0 - 0.06 * i), 6) for i in range(STEPS)]


def groups_standard(lr):
    """Absolute per-group lr and weight_decay, a group without either, and order_params."""

    def make(ps):
        return [
            {"params": [ps["fc.weight"]], "lr": lr * 0.5, "weight_decay": 0.1},
            {"params": [ps["bn.gamma"]], "weight_decay": 0.05},
            {"params": [ps["bn.beta"]]},
            {"order_params": [ps["bn.beta"], ps["fc.weight"], ps["bn.gamma"]]},
        ]

    return make


def groups_no_lr():
    def make(ps):
        return [
            {"params": [ps["fc.weight"]], "weight_decay": 0.1},
            {"params": [ps["bn.gamma"], ps["bn.beta"]], "weight_decay": 0.0},
            {"order_params": [ps["bn.beta"], ps["fc.weight"], ps["bn.gamma"]]},
        ]

    return make


def groups_gc(names):
    def make(ps):
        return [
            {"params": [ps[n] for n in names[:-1]], "grad_centralization": True},
            {"params": [ps[names[-1]]]},
        ]

    return make


def generic_cases(opt, sched_index):
    cases = _generic_cases(opt, sched_index)
    if opt == "FTRL":  # documented: FTRL rejects dynamic and group learning rates
        for c in cases:
            if c.name.split("_", 1)[1].startswith(("lrlist", "lrtensor", "sched", "groups")):
                c.expect_error = True
    return cases


def _generic_cases(opt, sched_index):
    base = BASE[opt]
    lr = base["learning_rate"]
    cases = []
    key = opt.lower()
    cases.append(
        Case(
            f"{key}_wd",
            opt,
            {**base, "weight_decay": 0.1},
            pset="p3",
            notes="default decay filter: names containing 'beta'/'gamma' not decayed",
        )
    )
    if opt not in NO_LOSS_SCALE:
        cases.append(
            Case(
                f"{key}_lossscale",
                opt,
                {**base, "weight_decay": 0.1, "loss_scale": 8.0},
                pset="p3",
                notes="gradients are given unscaled; the optimizer divides by loss_scale",
            )
        )
    cases.append(
        Case(
            f"{key}_lrlist",
            opt,
            {**base, "learning_rate": lr_list(lr)},
            notes="learning_rate as a Python list (dynamic): step k uses element k-1",
        )
    )
    if opt in ("Momentum", "SGD", "Adam", "FTRL"):
        cases.append(
            Case(
                f"{key}_lrtensor",
                opt,
                {**base, "learning_rate": tensor_arg(lr_list(lr))},
                notes="learning_rate as a 1-D float32 Tensor (dynamic)",
            )
        )
    sname, sargs = SCHEDULES[sched_index % len(SCHEDULES)]
    if opt != "Adam":  # Adam runs every schedule below
        cases.append(
            Case(
                f"{key}_sched_{sname}",
                opt,
                {**base, "learning_rate": sched(sname, **sargs(lr))},
                notes="learning_rate as a LearningRateSchedule",
            )
        )
    cases.append(
        Case(
            f"{key}_groups",
            opt,
            dict(base),
            pset="p3",
            groups=groups_standard(lr),
            notes="group lr is absolute; group weight_decay ignores the name filter",
        )
    )
    if opt in GC_SKIP_CASES:
        cases.append(
            Case(
                f"{key}_gc_skip",
                opt,
                dict(base),
                pset="gc8",
                groups=groups_gc(["conv2.weight", "fc.bias"]),
                notes="grad_centralization=True on a [4,8] parameter: "
                "shape[1] % 16 != 0 so it is skipped",
            )
        )
    cases.append(
        Case(
            f"{key}_gc16",
            opt,
            dict(base),
            pset="gc16",
            groups=groups_gc(["conv.weight", "fc.bias"]),
            notes="grad_centralization=True on a [4,16] parameter (centralized)",
        )
    )
    cases.append(
        Case(
            f"{key}_sparse",
            opt,
            dict(base),
            pset="sparse",
            sparse=True,
            notes="RowTensor gradient for emb.weight, with a duplicated row index",
        )
    )
    return cases


RMSPROP_CHUNKS = (
    "non-centered RMSProp CPU kernel: each parallel task uses sqrt(ms)+eps on its first "
    "floor(len/8)*8 elements and sqrt(ms+eps) on the rest; the task split changes after 5 "
    "launches (parallel auto-search) and depends on the thread count. Measured on 2 threads: "
    "steps 1-5 one task [0,n); steps 6+ tasks [0,ceil(n/2)) and [ceil(n/2),n)"
)


def all_cases():
    cases = []
    order = list(BASE)
    for i, opt in enumerate(order):
        cases.append(Case(f"{opt.lower()}_base", opt, dict(BASE[opt])))
        cases.extend(generic_cases(opt, i))

    def add(*a, **kw):
        cases.append(Case(*a, **kw))

    # Momentum
    add(
        "momentum_nesterov",
        "Momentum",
        {**BASE["Momentum"], "use_nesterov": True},
        notes="reference: the CPU ApplyMomentum kernel ignores use_nesterov",
    )
    # SGD
    add("sgd_plain", "SGD", {"learning_rate": 0.1})
    add("sgd_dampening", "SGD", {"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.3})
    add("sgd_nesterov", "SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True})
    add(
        "sgd_nesterov_dampening",
        "SGD",
        {"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.3, "nesterov": True},
        notes="nesterov requires dampening == 0",
        expect_error=True,
    )
    # Adam family
    add(
        "adam_eps0.1",
        "Adam",
        {"learning_rate": 0.01, "eps": 0.1},
        notes="large eps exposes the unscaled (TF-style) epsilon",
    )
    add("adam_betas", "Adam", {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6})
    add("adam_nesterov", "Adam", {"learning_rate": 0.01, "use_nesterov": True})
    add("adam_amsgrad", "Adam", {"learning_rate": 0.01, "use_amsgrad": True})
    add("adam_use_offload", "Adam", {"learning_rate": 0.01, "use_offload": True})
    add(
        "adam_use_lazy_sparse",
        "Adam",
        {"learning_rate": 0.01, "use_lazy": True},
        pset="sparse",
        sparse=True,
        notes="default target: python gather/scatter path, duplicate indices not merged",
    )
    add(
        "adam_sparse_targetcpu",
        "Adam",
        {"learning_rate": 0.01},
        pset="sparse",
        sparse=True,
        target="CPU",
        notes="opt.target='CPU': FusedSparseAdam kernel",
    )
    add(
        "adam_use_lazy_sparse_targetcpu",
        "Adam",
        {"learning_rate": 0.01, "use_lazy": True},
        pset="sparse",
        sparse=True,
        target="CPU",
        notes="opt.target='CPU': FusedSparseLazyAdam kernel",
    )
    add(
        "lazyadam_sparse_targetcpu",
        "LazyAdam",
        {"learning_rate": 0.01},
        pset="sparse",
        sparse=True,
        target="CPU",
        notes="opt.target='CPU': FusedSparseLazyAdam kernel",
    )
    add(
        "adam_amsgrad_lazy",
        "Adam",
        {"learning_rate": 0.01, "use_amsgrad": True, "use_lazy": True},
        notes="amsgrad cannot be combined with use_lazy",
        expect_error=True,
    )
    add(
        "adam_lr_0d_tensor",
        "Adam",
        {"learning_rate": tensor_arg(0.01)},
        notes="learning_rate as a 0-d Tensor (fixed)",
    )
    add(
        "adam_group_unknown_key",
        "Adam",
        {"learning_rate": 0.01},
        pset="p3",
        groups=lambda ps: [
            {"params": [ps["fc.weight"]], "foo": 1},
            {"params": [ps["bn.gamma"], ps["bn.beta"]]},
        ],
        expect_error=True,
    )
    add(
        "adam_order_params_extra_key",
        "Adam",
        {"learning_rate": 0.01},
        pset="p3",
        groups=lambda ps: [
            {"params": [ps["fc.weight"]]},
            {"params": [ps["bn.gamma"], ps["bn.beta"]]},
            {"order_params": [ps["bn.beta"], ps["fc.weight"], ps["bn.gamma"]], "lr": 0.1},
        ],
        expect_error=True,
    )
    # every schedule class also drives one other optimizer (see _generic_cases); Adam gets the
    # ones with a non-trivial shape inside 12 steps
    for sname, sargs in SCHEDULES:
        if sname in ("CosineDecayLR", "PolynomialDecayLR", "WarmUpLR"):
            add(f"adam_sched_{sname}", "Adam", {"learning_rate": sched(sname, **sargs(0.01))})
    for sname in ("ExponentialDecayLR",):
        sargs = dict(SCHEDULES[[s for s, _ in SCHEDULES].index(sname)][1](0.01), is_stair=True)
        add(f"adam_sched_{sname}_stair", "Adam", {"learning_rate": sched(sname, **sargs)})
    add(
        "adam_dynamic_weight_decay",
        "Adam",
        {
            "learning_rate": 0.01,
            "weight_decay": sched(
                "ExponentialDecayLR", learning_rate=0.1, decay_rate=0.5, decay_steps=2
            ),
        },
        pset="p3",
        notes="weight_decay as a Cell (dynamic), called with global_step",
    )

    def dyn_groups(ps):
        return [
            {
                "params": [ps["fc.weight"]],
                "lr": sched("WarmUpLR", learning_rate=0.02, warmup_steps=4),
            },
            {"params": [ps["bn.gamma"]], "lr": lr_list(0.01)},
            {"params": [ps["bn.beta"]], "lr": 0.005, "weight_decay": 0.1},
        ]

    add(
        "adam_groups_dynamic_lr",
        "Adam",
        {"learning_rate": 0.01},
        pset="p3",
        groups=dyn_groups,
        notes="a schedule, a list and a float as group lrs",
    )
    add(
        "adam_groups_lrlist_global",
        "Adam",
        {"learning_rate": lr_list(0.01)},
        pset="p3",
        groups=groups_standard(0.01),
        notes="global lr is a list; groups without 'lr' use it",
    )
    add(
        "adamweightdecay_wd_eps",
        "AdamWeightDecay",
        {"learning_rate": 0.01, "weight_decay": 0.1, "eps": 0.1},
        pset="p3",
    )
    add("adamoffload_nesterov", "AdamOffload", {"learning_rate": 0.01, "use_nesterov": True})
    add("adamax_eps0.1", "AdaMax", {"learning_rate": 0.01, "eps": 0.1, "beta1": 0.8, "beta2": 0.95})
    # Adagrad family
    add("adagrad_accum0.5", "Adagrad", {"learning_rate": 0.1, "accum": 0.5})
    add("adagrad_no_update_slots", "Adagrad", {"learning_rate": 0.1, "update_slots": False})
    add("adadelta_rho_eps", "Adadelta", {"learning_rate": 1.0, "rho": 0.5, "epsilon": 1e-3})
    # RMSProp
    add("rmsprop_centered", "RMSProp", {"learning_rate": 0.01, "centered": True})
    add("rmsprop_momentum", "RMSProp", {"learning_rate": 0.01, "momentum": 0.5})
    add(
        "rmsprop_centered_momentum",
        "RMSProp",
        {"learning_rate": 0.01, "centered": True, "momentum": 0.5, "decay": 0.8},
    )
    add(
        "rmsprop_eps1_n19",
        "RMSProp",
        {"learning_rate": 0.01, "epsilon": 1.0},
        pset="p19",
        notes="reference quirk: first floor(n/8)*8 elements use sqrt(ms)+eps, the rest "
        "sqrt(ms+eps)",
        machine_dependent=RMSPROP_CHUNKS,
    )
    add(
        "rmsprop_eps1_n19_centered",
        "RMSProp",
        {"learning_rate": 0.01, "epsilon": 1.0, "centered": True},
        pset="p19",
    )
    # Rprop, ASGD
    add(
        "rprop_etas_stepsizes",
        "Rprop",
        {"learning_rate": 0.1, "etas": (0.3, 1.5), "step_sizes": (0.01, 0.2)},
    )
    add(
        "asgd_t0",
        "ASGD",
        {"learning_rate": 0.1, "lambd": 0.01, "alpha": 0.75, "t0": 4.0},
        notes="t0 small so that ax is averaged within 12 steps",
    )
    # FTRL, ProximalAdagrad
    add(
        "ftrl_l1",
        "FTRL",
        {"learning_rate": 0.1, "l1": 0.3},
        notes="reference quirk: CPU kernel uses +l1 regardless of sign(lin)",
    )
    add("ftrl_l2", "FTRL", {"learning_rate": 0.1, "l2": 0.2})
    add(
        "ftrl_l1_l2_power",
        "FTRL",
        {"learning_rate": 0.1, "l1": 0.1, "l2": 0.1, "lr_power": -0.3, "initial_accum": 0.5},
    )
    add(
        "ftrl_groups_no_lr",
        "FTRL",
        dict(BASE["FTRL"]),
        pset="p3",
        groups=groups_no_lr(),
        notes="groups with weight_decay only (FTRL rejects group lr)",
    )
    add(
        "ftrl_sparse_targetcpu",
        "FTRL",
        {"learning_rate": 0.1, "l1": 0.1},
        pset="sparse",
        sparse=True,
        target="CPU",
    )
    add(
        "ftrl_sparse_l1",
        "FTRL",
        {"learning_rate": 0.1, "l1": 0.1},
        pset="sparse",
        sparse=True,
        notes="default target: SparseApplyFtrl kernel",
    )
    add("proximaladagrad_l1", "ProximalAdagrad", {"learning_rate": 0.1, "l1": 0.05})
    add("proximaladagrad_l2", "ProximalAdagrad", {"learning_rate": 0.1, "l2": 0.1})
    add(
        "proximaladagrad_l1_l2",
        "ProximalAdagrad",
        {"learning_rate": 0.1, "l1": 0.05, "l2": 0.1, "accum": 0.5},
    )
    # LARS
    lars_filter = lambda p: "bias" not in p.name  # noqa: E731
    lars_filter._golden_src = "lambda p: 'bias' not in p.name"
    add(
        "lars_momentum",
        "Momentum",
        dict(BASE["Momentum"]),
        wrap=("LARS", {"epsilon": 1e-5, "coefficient": 0.001}),
    )
    add(
        "lars_momentum_filter",
        "Momentum",
        dict(BASE["Momentum"]),
        wrap=("LARS", {"coefficient": 0.01, "lars_filter": lars_filter}),
    )
    add("lars_momentum_clip", "Momentum", dict(BASE["Momentum"]), wrap=("LARS", {"use_clip": True}))
    # AdaFactor
    add(
        "adafactor_default",
        "AdaFactor",
        {},
        notes="learning_rate=None, relative_step=True, scale_parameter=True: the step size is "
        "computed inside the optimizer; lr{k} is the stored (unused) learning_rate",
    )
    add("adafactor_warmup_init", "AdaFactor", {"warmup_init": True})
    add("adafactor_no_scale_parameter", "AdaFactor", {"scale_parameter": False})
    add(
        "adafactor_no_beta1",
        "AdaFactor",
        {"beta1": 0.0},
        notes="beta1=0: no first moment (exp_avg are unnamed scalar Parameters)",
    )
    add(
        "adafactor_clip_decay",
        "AdaFactor",
        {**BASE["AdaFactor"], "clip_threshold": 0.5, "decay_rate": 0.6, "eps": (1e-30, 1e-2)},
    )
    add("adafactor_compression", "AdaFactor", {**BASE["AdaFactor"], "compression": True})
    add(
        "adafactor_groups_no_lr",
        "AdaFactor",
        dict(BASE["AdaFactor"]),
        pset="p3",
        groups=groups_no_lr(),
        notes="groups with weight_decay only",
    )
    return cases


def other_refusals(versions):
    """Optimizers that need more than parameters: thor, AdaSum wrappers, OptTFTWrapper."""
    out = []

    def attempt(name, optimizer, fn, notes=""):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            out.append(
                {
                    "name": name,
                    "optimizer": optimizer,
                    "error": short_error(exc),
                    "stage": "construct+step",
                    "expected_error": False,
                    "notes": notes,
                }
            )
        else:
            out.append(
                {
                    "name": name,
                    "optimizer": optimizer,
                    "error": None,
                    "stage": "ran",
                    "notes": notes + " (ran without error; not recorded)",
                }
            )

    def thor():
        from mindspore.nn.layer.thor_layer import DenseThor

        class Net(nn.Cell):
            def __init__(self):
                super().__init__()
                self.fc = DenseThor(4, 2)

            def construct(self, x):
                return self.fc(x)

        net = Net()
        opt = nn.thor(
            net,
            Tensor(np.full(STEPS, 0.1, np.float32)),
            Tensor(np.full(STEPS, 0.03, np.float32)),
            0.9,
            batch_size=2,
        )
        opt(tuple(Tensor(np.ones(p.shape, np.float32)) for p in net.trainable_params()))

    def adasum(wrapper):
        def fn():
            p = [Parameter(Tensor(np.ones((3, 2), np.float32)), name="fc.weight")]
            opt = getattr(nn, wrapper)(nn.Momentum(p, 0.1, 0.9))
            opt((Tensor(np.ones((3, 2), np.float32)),))

        return fn

    def tft():
        p = [Parameter(Tensor(np.ones((3, 2), np.float32)), name="fc.weight")]
        opt = nn.OptTFTWrapper(nn.Momentum(p, 0.1, 0.9))
        opt((Tensor(np.ones((3, 2), np.float32)),))

    attempt("thor", "thor", thor, notes="nn.thor(net=DenseThor(4, 2), lr, damping, 0.9)")
    attempt("adasum_by_grad", "AdaSumByGradWrapCell", adasum("AdaSumByGradWrapCell"))
    attempt(
        "adasum_by_delta_weight",
        "AdaSumByDeltaWeightWrapCell",
        adasum("AdaSumByDeltaWeightWrapCell"),
    )
    attempt("opt_tft_wrapper", "OptTFTWrapper", tft)
    return out


# --------------------------------------------------------------------------------------------
# learning-rate schedules and dynamic_lr
# --------------------------------------------------------------------------------------------

SCHEDULE_STEPS = 31  # global steps 0..30


def schedule_cases():
    lr = 0.1
    specs = [
        ("ExponentialDecayLR", {"learning_rate": lr, "decay_rate": 0.9, "decay_steps": 4}),
        (
            "ExponentialDecayLR",
            {"learning_rate": lr, "decay_rate": 0.9, "decay_steps": 4, "is_stair": True},
        ),
        ("NaturalExpDecayLR", {"learning_rate": lr, "decay_rate": 0.1, "decay_steps": 4}),
        (
            "NaturalExpDecayLR",
            {"learning_rate": lr, "decay_rate": 0.1, "decay_steps": 4, "is_stair": True},
        ),
        ("InverseDecayLR", {"learning_rate": lr, "decay_rate": 0.5, "decay_steps": 4}),
        (
            "InverseDecayLR",
            {"learning_rate": lr, "decay_rate": 0.5, "decay_steps": 4, "is_stair": True},
        ),
        ("CosineDecayLR", {"min_lr": 0.01, "max_lr": lr, "decay_steps": 20}),
        (
            "PolynomialDecayLR",
            {"learning_rate": lr, "end_learning_rate": 0.01, "decay_steps": 10, "power": 0.5},
        ),
        (
            "PolynomialDecayLR",
            {"learning_rate": lr, "end_learning_rate": 0.01, "decay_steps": 10, "power": 2.0},
        ),
        (
            "PolynomialDecayLR",
            {
                "learning_rate": lr,
                "end_learning_rate": 0.01,
                "decay_steps": 10,
                "power": 0.5,
                "update_decay_steps": True,
            },
        ),
        ("WarmUpLR", {"learning_rate": lr, "warmup_steps": 8}),
    ]
    out = []
    for cls_name, args in specs:
        suffix = "_stair" if args.get("is_stair") else ""
        if cls_name == "PolynomialDecayLR":
            suffix = f"_p{args['power']}" + ("_update" if args.get("update_decay_steps") else "")
        out.append((f"schedule_{cls_name}{suffix}", cls_name, args))
    return out


def dynamic_lr_cases():
    common = {"total_step": 30, "step_per_epoch": 3}
    return [
        (
            "piecewise_constant_lr",
            {"milestone": [3, 8, 15, 30], "learning_rates": [0.1, 0.05, 0.01, 0.001]},
        ),
        (
            "exponential_decay_lr",
            {"learning_rate": 0.1, "decay_rate": 0.9, **common, "decay_epoch": 2},
        ),
        (
            "exponential_decay_lr",
            {"learning_rate": 0.1, "decay_rate": 0.9, **common, "decay_epoch": 2, "is_stair": True},
        ),
        (
            "natural_exp_decay_lr",
            {"learning_rate": 0.1, "decay_rate": 0.1, **common, "decay_epoch": 2},
        ),
        (
            "natural_exp_decay_lr",
            {"learning_rate": 0.1, "decay_rate": 0.1, **common, "decay_epoch": 2, "is_stair": True},
        ),
        ("inverse_decay_lr", {"learning_rate": 0.1, "decay_rate": 0.5, **common, "decay_epoch": 2}),
        (
            "inverse_decay_lr",
            {"learning_rate": 0.1, "decay_rate": 0.5, **common, "decay_epoch": 2, "is_stair": True},
        ),
        ("cosine_decay_lr", {"min_lr": 0.01, "max_lr": 0.1, **common, "decay_epoch": 6}),
        (
            "polynomial_decay_lr",
            {
                "learning_rate": 0.1,
                "end_learning_rate": 0.01,
                **common,
                "decay_epoch": 4,
                "power": 0.5,
            },
        ),
        (
            "polynomial_decay_lr",
            {
                "learning_rate": 0.1,
                "end_learning_rate": 0.01,
                **common,
                "decay_epoch": 4,
                "power": 0.5,
                "update_decay_epoch": True,
            },
        ),
        ("warmup_lr", {"learning_rate": 0.1, **common, "warmup_epoch": 4}),
    ]


def run_schedules(out_dir, versions):
    entries, refusals = [], []
    for name, cls_name, args in schedule_cases():
        arrays = {}
        try:
            obj = getattr(LRS, cls_name)(**args)
            for s in range(SCHEDULE_STEPS):
                v = obj(Tensor(np.array([s], np.int32)))
                arrays[f"lr{s}"] = np.asarray(v.asnumpy(), np.float32).reshape(())
        except Exception as exc:  # noqa: BLE001
            refusals.append(
                {"name": name, "schedule": cls_name, "kwargs": args, "error": short_error(exc)}
            )
            continue
        meta = {
            "kind": "schedule",
            "name": name,
            "framework": FRAMEWORK,
            "version": versions["mindspore"],
            "schedule": cls_name,
            "kwargs": args,
            "global_steps": [0, SCHEDULE_STEPS - 1],
            "input": "Tensor([s], int32), as the optimizer passes global_step",
            "dtype": "float32",
            "notes": "lr{s} = schedule(global_step=s); an optimizer's step k uses lr{k-1}",
        }
        fname = name + ".npz"
        write_npz(os.path.join(out_dir, fname), {"meta": meta_array(meta), **arrays})
        entries.append({"name": name, "file": fname, "meta": meta})
    seen = {}
    for fn_name, args in dynamic_lr_cases():
        n = seen[fn_name] = seen.get(fn_name, 0) + 1
        variant = ""
        if args.get("is_stair"):
            variant = "_stair"
        elif args.get("update_decay_epoch"):
            variant = "_update"
        name = f"dynamic_lr_{fn_name}{variant}"
        assert n <= 2
        try:
            values = getattr(DLR, fn_name)(**args)
        except Exception as exc:  # noqa: BLE001
            refusals.append(
                {"name": name, "function": fn_name, "kwargs": args, "error": short_error(exc)}
            )
            continue
        arrays = {f"lr{i}": np.array(v, np.float64) for i, v in enumerate(values)}
        meta = {
            "kind": "dynamic_lr",
            "name": name,
            "framework": FRAMEWORK,
            "version": versions["mindspore"],
            "function": fn_name,
            "kwargs": args,
            "returned": [float(v) for v in values],
            "returned_type": type(values).__name__,
            "length": len(values),
            "dtype": "float64",
            "notes": "lr{i} = returned[i]: the lr of step i+1 when passed as learning_rate",
        }
        fname = name + ".npz"
        write_npz(os.path.join(out_dir, fname), {"meta": meta_array(meta), **arrays})
        entries.append({"name": name, "file": fname, "meta": meta})
    return entries, refusals


def signature_of_fn(fn):
    sig = inspect.signature(fn)
    return {
        n: ("<required>" if p.default is p.empty else encode(p.default))
        for n, p in sig.parameters.items()
    }


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------


def describe_load(path, **kwargs):
    """What mindspore.load_checkpoint returns, as JSON-able data."""
    try:
        loaded = ms.load_checkpoint(path, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": short_error(exc)}
    entries = []
    for name, value in loaded.items():
        if isinstance(value, str):
            entries.append({"name": name, "type": "str", "value": value})
            continue
        dtype = str(value.dtype)
        entry = {
            "name": name,
            "type": type(value).__name__,
            "shape": list(value.shape),
            "dtype": dtype,
        }
        if value.dtype == ms.bfloat16:
            arr = value.astype(ms.float32).asnumpy()
            entry["value"] = arr.tolist()
            entry["bfloat16_bits"] = float32_to_bfloat16_bits(arr).tolist()
        else:
            arr = value.asnumpy()
            if arr.size <= 64:
                entry["value"] = arr.tolist()
            if arr.dtype.kind == "f" and arr.size <= 64:
                entry["value_hex"] = arr.astype(arr.dtype.newbyteorder("<")).tobytes().hex()
        entries.append(entry)
    return {"ok": True, "names": list(loaded), "entries": entries}


def run_checkpoints(ck_dir, versions):
    os.makedirs(ck_dir, exist_ok=True)
    records = []

    def record(fname, written_by, save_kwargs, notes="", load_variants=None):
        path = os.path.join(ck_dir, fname)
        os.chmod(path, 0o644)  # MindSpore leaves checkpoints read-only (0400)
        with open(path, "rb") as f:
            data = f.read()
        rec = {
            "file": fname,
            "written_by": written_by,
            "save_kwargs": save_kwargs,
            "size": len(data),
            "has_crc_footer": data[-17:-10] == b"crc_num",
            "notes": notes,
            "load_checkpoint": describe_load(path),
        }
        for key, kw in (load_variants or {}).items():
            rec[key] = {"kwargs": kw, **describe_load(path, **kw)}
        records.append(rec)
        return rec

    # an Adam optimizer after 2 steps: network parameters + optimizer state
    def adam_after_two_steps():
        names = [n for n, _ in PARAM_SETS["p2"]]
        params = [Parameter(Tensor(a), name=n) for n, a in zip(names, param_init("p2"))]
        opt = nn.Adam(params, learning_rate=0.01)
        dense, _ = grad_data("p2")
        for k in range(2):
            opt(tuple(Tensor(g) for g in dense[k]))
        return opt

    opt = adam_after_two_steps()
    ms.save_checkpoint(opt, os.path.join(ck_dir, "adam_2steps.ckpt"))
    record(
        "adam_2steps.ckpt",
        "mindspore.save_checkpoint",
        {"save_obj": "nn.Adam(p2, learning_rate=0.01) after 2 steps (golden grads g1, g2)"},
        notes="network parameters and optimizer state; see adam_base.npz p*_step2 for the "
        "same values",
    )
    ms.save_checkpoint(
        opt,
        os.path.join(ck_dir, "adam_append_dict.ckpt"),
        append_dict={"epoch_num": 3, "step_num": 7, "note": "hello"},
    )
    record(
        "adam_append_dict.ckpt",
        "mindspore.save_checkpoint",
        {"save_obj": "same Adam", "append_dict": {"epoch_num": 3, "step_num": 7, "note": "hello"}},
    )
    ms.save_checkpoint(opt, os.path.join(ck_dir, "adam_crc.ckpt"), crc_check=True)
    record(
        "adam_crc.ckpt",
        "mindspore.save_checkpoint",
        {"save_obj": "same Adam", "crc_check": True},
        load_variants={"load_checkpoint_crc_check": {"crc_check": True}},
    )

    # dtypes
    rng = np.random.default_rng(7)
    f32 = rng.standard_normal((2, 3)).astype(np.float32)
    dtype_entries = [
        {"name": "t_float32", "data": Tensor(f32)},
        {"name": "t_float32_scalar", "data": Tensor(np.float32(1.5))},
        {"name": "t_float16", "data": Tensor(f32.astype(np.float16))},
        {"name": "t_bfloat16", "data": Tensor(f32, dtype=ms.bfloat16)},
        {"name": "t_float64", "data": Tensor(f32.astype(np.float64) / 3)},
        {
            "name": "t_int32",
            "data": Tensor(np.array([[1, -2, 3], [2**31 - 1, -(2**31), 0]], np.int32)),
        },
        {"name": "t_int64", "data": Tensor(np.array([2**40, -5, 0], np.int64))},
        {"name": "t_bool", "data": Tensor(np.array([True, False, True, True]))},
        {"name": "t_int8", "data": Tensor(np.array([-128, 0, 127], np.int8))},
        {"name": "t_uint8", "data": Tensor(np.array([0, 1, 255], np.uint8))},
    ]
    ms.save_checkpoint(dtype_entries, os.path.join(ck_dir, "dtypes.ckpt"))
    record(
        "dtypes.ckpt",
        "mindspore.save_checkpoint",
        {"save_obj": "list of {'name', 'data'} dicts; see names/dtypes in load_checkpoint"},
    )

    # a truncated copy (cut inside the third tensor) and a corrupted copy of the CRC file
    with open(os.path.join(ck_dir, "adam_2steps.ckpt"), "rb") as f:
        full = f.read()
    cut = len(full) * 2 // 3
    with open(os.path.join(ck_dir, "adam_2steps_truncated.ckpt"), "wb") as f:
        f.write(full[:cut])
    record(
        "adam_2steps_truncated.ckpt",
        "copy of adam_2steps.ckpt",
        {"truncated_to": cut, "original_size": len(full)},
    )
    with open(os.path.join(ck_dir, "adam_crc.ckpt"), "rb") as f:
        crc_data = bytearray(f.read())
    # the first float of moment1.fc.weight: tag, then b"Float32", 0x1a, length (1 byte), content
    pos = crc_data.index(b"Float32", crc_data.index(b"moment1.fc.weight")) + 7 + 2 + 3
    crc_data[pos] ^= 0x01  # an exponent bit of moment1.fc.weight[0, 0]
    with open(os.path.join(ck_dir, "adam_crc_corrupted.ckpt"), "wb") as f:
        f.write(bytes(crc_data))
    record(
        "adam_crc_corrupted.ckpt",
        "copy of adam_crc.ckpt",
        {"flipped_bit": {"byte_offset": pos, "mask": 1}},
        notes="an exponent bit of moment1.fc.weight[0,0] flipped (the protobuf framing is "
        "intact); the CRC footer is the original",
        load_variants={"load_checkpoint_crc_check": {"crc_check": True}},
    )

    # a file written without MindSpore (tools/mindspore_ckpt_writer.py)
    w32 = rng.standard_normal((3, 2)).astype(np.float32)
    own = [
        ("fc.weight", w32),
        ("fc.bias", np.array([0.25, -0.5], np.float32)),
        ("learning_rate", np.float32(0.01)),
        ("global_step", np.array([2], np.int32)),
        ("half", w32.astype(np.float16)),
        ("brain", BFloat16(float32_to_bfloat16_bits(w32))),
        ("double", w32.astype(np.float64)),
        ("count", np.array([2**40, -1], np.int64)),
        ("mask", np.array([True, False, True])),
        ("empty", np.zeros((0, 2), np.float32)),
        ("epoch_num", np.int64(3)),
        ("note", "héllo ✓"),
    ]
    write_checkpoint(os.path.join(ck_dir, "polyoptim_writer.ckpt"), own)
    rec = record(
        "polyoptim_writer.ckpt",
        "tools/mindspore_ckpt_writer.py (no mindspore)",
        {"entries": [n for n, _ in own]},
    )
    write_checkpoint(os.path.join(ck_dir, "polyoptim_writer_crc.ckpt"), own, crc_check=True)
    rec_crc = record(
        "polyoptim_writer_crc.ckpt",
        "tools/mindspore_ckpt_writer.py (no mindspore)",
        {"entries": [n for n, _ in own], "crc_check": True},
        load_variants={"load_checkpoint_crc_check": {"crc_check": True}},
    )
    verdicts = {}
    for r in (rec, rec_crc):
        verdicts[r["file"]] = verify_own(own, r)
        r["roundtrip_check"] = verdicts[r["file"]]

    # MindSpore's own bytes for the same Adam, re-encoded with the writer: identical?
    loaded = ms.load_checkpoint(os.path.join(ck_dir, "adam_2steps.ckpt"))
    reenc = [(n, v.asnumpy()) for n, v in loaded.items()]
    tmp = os.path.join(ck_dir, "_reencoded.tmp")
    write_checkpoint(tmp, reenc)
    with open(tmp, "rb") as f:
        same = f.read() == full
    os.remove(tmp)
    with open(os.path.join(ck_dir, "adam_crc.ckpt"), "rb") as f:
        crc_orig = f.read()
    write_checkpoint(tmp, reenc, crc_check=True)
    with open(tmp, "rb") as f:
        same_crc = f.read() == crc_orig
    os.remove(tmp)
    index = {
        "framework": FRAMEWORK,
        "version": versions["mindspore"],
        "versions": versions,
        "writer_reproduces_mindspore_bytes": {"adam_2steps.ckpt": same, "adam_crc.ckpt": same_crc},
        "files": records,
    }
    dump_index(os.path.join(ck_dir, "index.json"), index)
    return index


def verify_own(own, rec):
    """Compare what load_checkpoint returned for a writer-made file with what was written."""
    res = rec["load_checkpoint"]
    if not res["ok"]:
        return {"ok": False, "why": res["error"]}
    got = {e["name"]: e for e in res["entries"]}
    problems = []
    expected_dtype = {
        np.dtype(np.float32): "Float32",
        np.dtype(np.float16): "Float16",
        np.dtype(np.float64): "Float64",
        np.dtype(np.int32): "Int32",
        np.dtype(np.int64): "Int64",
        np.dtype(np.bool_): "Bool",
    }
    for name, value in own:
        e = got.get(name)
        if e is None:
            problems.append(f"{name}: missing")
            continue
        if isinstance(value, str):
            if e.get("value") != value:
                problems.append(f"{name}: {e.get('value')!r} != {value!r}")
            continue
        if isinstance(value, BFloat16):
            bits = np.asarray(e.get("bfloat16_bits", []), dtype=np.uint16).ravel()
            if e["dtype"] != "BFloat16" or bits.tolist() != value.bits.ravel().tolist():
                problems.append(f"{name}: bfloat16 mismatch")
            continue
        arr = np.asarray(value)
        if e["dtype"] != expected_dtype[arr.dtype] or e["shape"] != list(arr.shape):
            problems.append(f"{name}: {e['dtype']}{e['shape']} != {arr.dtype}{list(arr.shape)}")
        elif "value" in e and np.asarray(e["value"], dtype=arr.dtype).tobytes() != arr.tobytes():
            problems.append(f"{name}: values differ")
    names_in_order = [n for n, _ in own] == res["names"]
    if not names_in_order:
        problems.append("names not in written order")
    return {"ok": not problems, "problems": problems}


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def signatures():
    """Constructor defaults of every optimizer class, schedule class and dynamic_lr function."""
    out = {}
    for name in sorted(set(BASE) | {"LARS", "Optimizer"}):
        out[name] = signature_of(getattr(nn, name))
    for name, _ in SCHEDULES:
        out[name] = signature_of(getattr(LRS, name))
    for name in sorted({fn for fn, _ in dynamic_lr_cases()}):
        out[name] = signature_of_fn(getattr(DLR, name))
    return out


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return sorted(flags & {"sse4_2", "avx", "avx2", "fma", "avx512f"})
    except OSError:
        pass
    return []


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "golden", "mindspore"))
    parser.add_argument("--only", default=None, help="regex: run only matching optimizer cases")
    parser.add_argument("--no-checkpoints", action="store_true")
    args = parser.parse_args(argv)

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_device("CPU")
    ms.set_seed(0)
    np.random.seed(0)
    versions = {
        "mindspore": ms.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    if args.only is None:
        for fname in os.listdir(out_dir):
            if fname.endswith(".npz") or fname == "index.json":
                os.remove(os.path.join(out_dir, fname))
        if not args.no_checkpoints:
            shutil.rmtree(os.path.join(out_dir, "checkpoints"), ignore_errors=True)

    entries, refusals = [], []
    cases = all_cases()
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.name)]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    for case in cases:
        entry, refusal = run_case(case, out_dir, versions)
        if entry:
            entries.append(entry)
            print(f"ok       {case.name}", flush=True)
        else:
            refusals.append(refusal)
            print(f"refused  {case.name}: {refusal['error'][:160]}", flush=True)
    if args.only:
        return 0
    for r in other_refusals(versions):
        refusals.append(r)
        print(f"refused  {r['name']}: {(r['error'] or '')[:160]}", flush=True)
    sched_entries, sched_refusals = run_schedules(out_dir, versions)
    entries += sched_entries
    refusals += sched_refusals
    print(f"schedules: {len(sched_entries)} written, {len(sched_refusals)} refused")

    index = {
        "framework": FRAMEWORK,
        "version": versions["mindspore"],
        "versions": versions,
        "generated_by": "tools/mindspore_golden.py",
        "mode": "PYNATIVE",
        "device": "CPU",
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "steps": STEPS,
        "signatures": signatures(),
        "cases": entries,
        "refused": refusals,
    }
    dump_index(os.path.join(out_dir, "index.json"), index)
    if not args.no_checkpoints:
        ck = run_checkpoints(os.path.join(out_dir, "checkpoints"), versions)
        for rec in ck["files"]:
            lc = rec["load_checkpoint"]
            status = "loads" if lc["ok"] else "fails: " + lc["error"][:120]
            print(f"ckpt     {rec['file']}: {status}")
        print("writer reproduces MindSpore bytes:", ck["writer_reproduces_mindspore_bytes"])
    print(f"{len(entries)} cases written, {len(refusals)} refusals recorded in {out_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(1)
