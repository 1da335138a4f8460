"""Write golden fixtures from the real PaddlePaddle 3.3.1 (CPU) for the polyoptim Paddle dialect.

Run with the Paddle virtualenv (see tools/paddle_env.sh):

    bash tools/paddle_env.sh && .venv-paddle/bin/python tools/paddle_golden.py

It writes one ``.npz`` per case plus ``index.json`` into ``tests/golden/paddle`` and real
``paddle.save`` checkpoint files into ``tests/golden/paddle/checkpoints`` (with their own
``index.json``). The format is described in tests/golden/paddle/README.md and read by
tools/golden_format.py. This script never imports torch or polyoptim; everything is deterministic
(fixed numpy seeds, numpy initial values, no Paddle random initialisers, fixed zip timestamps).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import pickletools
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
import warnings
import zipfile

import numpy as np

warnings.filterwarnings("ignore")

import paddle  # noqa: E402
from paddle.utils import unique_name  # noqa: E402

O = paddle.optimizer
LR = paddle.optimizer.lr
L1 = paddle.regularizer.L1Decay
L2 = paddle.regularizer.L2Decay
F32 = np.float32

STEPS = 12
SCHED_STEPS = 30
DATA_SEED = 20240601
# Gradient magnitude per step: spans "clip is inactive" and "clip is active" for clip_norm=1.
GRAD_SCALES = [1.0, 0.3, 2.5, 0.05, 1.5, 4.0, 0.7, 1.0, 0.2, 3.0, 0.5, 1.2]

PARAM_SETS = {
    "P2": [("linear_0.w_0", [3, 2]), ("linear_0.b_0", [2])],
    "P3": [("linear_0.w_0", [3, 2]), ("linear_0.b_0", [2]), ("linear_1.w_0", [5, 4])],
}
GRAD_INJECTION = "loss = sum_j sum(p_j * G_k[j]); loss.backward() (grad is exactly G_k[j])"

# ---------------------------------------------------------------------------------------------
# Encoding of constructor arguments into JSON
# ---------------------------------------------------------------------------------------------
_DESC: dict[int, object] = {}
_KEEP: list[object] = []  # keeps described objects alive so that their ids stay unique


def mk(cls, **args):
    """Construct ``cls(**args)`` and remember how, for the meta JSON."""
    obj = cls(**args)
    _DESC[id(obj)] = {"__class__": cls.__name__, "args": encode(args)}
    _KEEP.append(obj)
    return obj


def fn(f, desc: str):
    """Tag a lambda with a short source description."""
    _DESC[id(f)] = {"__lambda__": desc}
    _KEEP.append(f)
    return f


def tensor(value, dtype="float32"):
    t = paddle.to_tensor(np.asarray(value, dtype=dtype))
    _DESC[id(t)] = {
        "__class__": "Tensor",
        "args": {"data": np.asarray(value, dtype=dtype).tolist(), "dtype": dtype},
    }
    _KEEP.append(t)
    return t


def _is_param(x) -> bool:
    return isinstance(x, paddle.base.framework.EagerParamBase)


def to_numpy(t) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t
    if isinstance(t, paddle.Tensor):
        if t.dtype in (paddle.bfloat16, paddle.float16):
            return t.astype("float32").numpy()
        return t.numpy()
    return np.array(t)  # DenseTensor


def _is_tensor(x) -> bool:
    return isinstance(x, (paddle.Tensor, paddle.base.libpaddle.DenseTensor))


def encode(x):
    if id(x) in _DESC:
        return _DESC[id(x)]
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x if np.isfinite(x) else repr(x)
    if isinstance(x, np.generic):
        return encode(x.item())
    if isinstance(x, np.ndarray):
        return x.tolist()
    if _is_param(x):
        return {"__param__": x.name}
    if _is_tensor(x):
        a = to_numpy(x)
        return {"__class__": "Tensor", "args": {"data": a.tolist(), "dtype": str(a.dtype)}}
    if isinstance(x, dict):
        return {str(k): encode(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [encode(v) for v in x]
    if callable(x):
        return {"__lambda__": getattr(x, "__name__", repr(x))}
    return {"__repr__": repr(x)}


# ---------------------------------------------------------------------------------------------
# Deterministic npz writing
# ---------------------------------------------------------------------------------------------
INDEX: list[dict] = []
COMMON_META: dict = {}


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, with fixed zip timestamps so reruns are byte-identical."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def write_case(out: str, name: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    meta = {"case": name, "name": name, **COMMON_META, **meta}
    if "params" in meta:  # flat copies, same field names as the MindSpore fixtures
        meta["param_names"] = [p["name"] for p in meta["params"]]
        meta["param_shapes"] = [p["shape"] for p in meta["params"]]
    text = json.dumps(meta, sort_keys=True)
    all_arrays = {"meta": np.array(text), **arrays}
    write_npz(os.path.join(out, name + ".npz"), all_arrays)
    INDEX.append({"case": name, "name": name, "file": name + ".npz", "meta": meta})
    print(f"  {name}: {len(arrays)} arrays")


REFUSED: list[dict] = []


def record_refusal(name: str, what: str, exc: BaseException) -> None:
    msg = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
    REFUSED.append({"case": name, "what": what, "error": msg})
    print(f"  {name}: REFUSED ({msg})")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def make_data(shapes, steps, seed=DATA_SEED):
    rng = np.random.default_rng(seed)
    init = [rng.uniform(-1.0, 1.0, s).astype(F32) for s in shapes]
    grads = []
    for k in range(steps):
        scale = GRAD_SCALES[k % len(GRAD_SCALES)]
        grads.append([(rng.standard_normal(s) * scale).astype(F32) for s in shapes])
    return init, grads


def flatten_state(sd) -> tuple[dict[str, np.ndarray], dict, dict]:
    """Tensors -> arrays under ``state/<path>``; everything else -> JSON under its path."""
    arrays: dict[str, np.ndarray] = {}
    extra: dict = {}
    dtypes: dict = {}

    def has_tensor(v) -> bool:
        if _is_tensor(v):
            return True
        if isinstance(v, dict):
            return any(has_tensor(x) for x in v.values())
        if isinstance(v, (list, tuple)):
            return any(has_tensor(x) for x in v)
        return False

    def rec(path: str, v) -> None:
        if _is_tensor(v):
            arrays["state/" + path] = to_numpy(v)
            if isinstance(v, paddle.Tensor):
                dtypes[path] = str(v.dtype).replace("paddle.", "")
        elif isinstance(v, dict) and has_tensor(v):
            for k, x in v.items():
                rec(f"{path}/{k}", x)
        elif isinstance(v, (list, tuple)) and has_tensor(v):
            extra[path + "#len"] = len(v)
            for i, x in enumerate(v):
                rec(f"{path}/{i}", x)
        else:
            extra[path] = encode(v)

    for k, v in sd.items():
        rec(str(k), v)
    return arrays, extra, dtypes


# ---------------------------------------------------------------------------------------------
# Optimizer cases with injected gradients
# ---------------------------------------------------------------------------------------------
def _make_params(specs, init, attrs, dtype="float32"):
    params = []
    for (name, shape), value in zip(specs, init):
        kw = dict(attrs.get(name, {}))
        attr = paddle.ParamAttr(
            name=name, initializer=paddle.nn.initializer.Assign(value.astype(F32)), **kw
        )
        params.append(paddle.create_parameter(shape, dtype, attr=attr))
    return params


def opt_case(
    out,
    name,
    cls,
    kwargs=None,
    *,
    params="P2",
    attrs=None,
    groups=None,
    init_override=None,
    dtype="float32",
    steps=STEPS,
    grad_scale=1.0,
    notes="",
):
    """Run ``cls`` for ``steps`` steps on exact gradients and write the case.

    attrs: {param name: ParamAttr kwargs}; groups: list of dicts whose "params" are indices;
    init_override: {param index: initial array}.
    """
    kwargs = dict(kwargs or {})
    attrs = attrs or {}
    specs = PARAM_SETS[params]
    shapes = [s for _, s in specs]
    init, grads = make_data(shapes, steps)
    if grad_scale != 1.0:
        grads = [[(g * grad_scale).astype(F32) for g in gk] for gk in grads]
    for j, v in (init_override or {}).items():
        init[j] = np.asarray(v, F32)
    if dtype == "bfloat16":  # values exactly representable, so p_init is exact
        init = [to_numpy(paddle.to_tensor(v).astype("bfloat16")) for v in init]
        grads = [[to_numpy(paddle.to_tensor(g).astype("bfloat16")) for g in gk] for gk in grads]
    sched = kwargs.get("learning_rate")
    sched = sched if isinstance(sched, LR.LRScheduler) else None
    try:
        with unique_name.guard():
            ps = _make_params(specs, init, attrs, dtype)
            if groups is None:
                parameters = ps
            else:
                parameters = [dict(g, params=[ps[i] for i in g["params"]]) for g in groups]
            meta_parameters = encode(parameters)
            opt = cls(parameters=parameters, **kwargs)
            arrays = {f"p{j}_init": init[j] for j in range(len(ps))}
            for k in range(1, steps + 1):
                arrays[f"lr{k}"] = np.array(opt.get_lr(), dtype=np.float64)
                loss = None
                for j, p in enumerate(ps):
                    g = grads[k - 1][j]
                    arrays[f"g{k}_{j}"] = g
                    term = (p * paddle.to_tensor(g).astype(p.dtype)).sum()
                    if dtype != "float32":
                        term.backward()  # no CPU `add` kernel for bf16: backward term by term
                    else:
                        loss = term if loss is None else loss + term
                if loss is not None:
                    loss.backward()
                opt.step()
                opt.clear_grad()
                if sched is not None:
                    sched.step()
                for j, p in enumerate(ps):
                    arrays[f"p{j}_step{k}"] = to_numpy(p)
            st_arrays, st_extra, st_dtypes = flatten_state(opt.state_dict())
    except Exception as e:  # noqa: BLE001
        record_refusal(name, f"{cls.__name__}({encode(kwargs)})", e)
        return
    arrays.update(st_arrays)
    meta = {
        "kind": "optimizer",
        "optimizer": cls.__name__,
        "kwargs": encode(kwargs),
        "parameters": meta_parameters,
        "params": [
            {"name": n, "shape": s, "dtype": dtype, "attr": encode(attrs.get(n, {}))}
            for n, s in specs
        ],
        "steps": steps,
        "dtype": dtype,
        "grad_scale": grad_scale,
        "grad_injection": GRAD_INJECTION,
        "state_extra": st_extra,
        "state_dtypes": st_dtypes,
        "notes": notes,
    }
    write_case(out, name, meta, arrays)


ADAMW_SPARSE_PROBE = """
import warnings; warnings.filterwarnings("ignore")
import numpy as np, paddle
emb = paddle.nn.Embedding(5, 4, sparse=True)
opt = paddle.optimizer.AdamW(learning_rate=0.1, parameters=emb.parameters(), lazy_mode=True)
for _ in range(3):
    out = emb(paddle.to_tensor(np.array([1, 3], "int64")))
    (out * paddle.ones([2, 4])).sum().backward()
    opt.step()
    opt.clear_grad()
print(emb.weight.numpy())
"""


def probe_subprocess(name: str, what: str, code: str) -> None:
    """Run code that may crash the interpreter (segfault) in a child process."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if r.returncode == 0:
        print(f"  {name}: probe ran fine (rc 0)")
        return
    lines = [x for x in (r.stderr + r.stdout).splitlines() if x.strip()]
    key = [x for x in lines if "Error" in x and "Traceback" not in x]
    msg = (key[-1] if key else lines[-1] if lines else "").strip()[:300]
    # the child reads freed memory: the numbers in its message change from run to run
    msg = re.sub(r"-?\d+", "<n>", msg)
    sig = f"killed by signal {-r.returncode}" if r.returncode < 0 else f"exit code {r.returncode}"
    REFUSED.append({"case": name, "what": what, "error": f"{sig}: {msg}"})
    print(f"  {name}: REFUSED in a child process ({sig}: {msg})")


def sparse_case(out, name, cls, kwargs, notes=""):
    """nn.Embedding(5, 4, sparse=True): the gradient is SelectedRows (rows = looked-up ids)."""
    steps = STEPS
    rng = np.random.default_rng(DATA_SEED + 7)
    init = rng.uniform(-1.0, 1.0, [5, 4]).astype(F32)
    try:
        with unique_name.guard():
            emb = paddle.nn.Embedding(
                5,
                4,
                sparse=True,
                weight_attr=paddle.ParamAttr(
                    name="embedding_0.w_0", initializer=paddle.nn.initializer.Assign(init)
                ),
            )
            p = emb.weight
            opt = cls(parameters=[p], **kwargs)
            arrays = {"p0_init": init}
            for k in range(1, steps + 1):
                n = int(rng.integers(1, 4))
                ids = np.sort(rng.choice(5, size=n, replace=False)).astype(np.int64)
                vals = (rng.standard_normal([n, 4]) * GRAD_SCALES[k - 1]).astype(F32)
                dense = np.zeros([5, 4], F32)
                dense[ids] = vals
                arrays[f"lr{k}"] = np.array(opt.get_lr(), dtype=np.float64)
                arrays[f"g{k}_0"] = dense
                arrays[f"rows{k}_0"] = ids
                (emb(paddle.to_tensor(ids)) * paddle.to_tensor(vals)).sum().backward()
                assert p._grad_ivar().is_selected_rows()
                opt.step()
                opt.clear_grad()
                arrays[f"p0_step{k}"] = to_numpy(p)
            st_arrays, st_extra, st_dtypes = flatten_state(opt.state_dict())
    except Exception as e:  # noqa: BLE001
        record_refusal(name, f"{cls.__name__}({encode(kwargs)}) with sparse grads", e)
        return
    arrays.update(st_arrays)
    meta = {
        "kind": "sparse",
        "optimizer": cls.__name__,
        "kwargs": encode(kwargs),
        "parameters": [{"__param__": "embedding_0.w_0"}],
        "params": [{"name": "embedding_0.w_0", "shape": [5, 4], "dtype": "float32", "attr": {}}],
        "steps": steps,
        "dtype": "float32",
        "grad_injection": (
            "nn.Embedding(5, 4, sparse=True); loss = sum(emb(rows_k) * V_k); the gradient is "
            "SelectedRows(rows=rows{k}_0, values=V_k); g{k}_0 is its dense equivalent "
            "(absent rows are 0); rows are unique and sorted"
        ),
        "state_extra": st_extra,
        "state_dtypes": st_dtypes,
        "notes": notes,
    }
    write_case(out, name, meta, arrays)


SPARSE_CASES = {
    "adam_sparse_lazy": ("Adam", {"learning_rate": 0.1, "lazy_mode": True}),
    "adam_sparse_nonlazy": ("Adam", {"learning_rate": 0.1, "lazy_mode": False}),
    "sgd_sparse": ("SGD", {"learning_rate": 0.1}),
}
SPARSE_RUNS = 5


def sparse_case_isolated(out, name):
    """Run a sparse case in SPARSE_RUNS fresh child processes and keep the majority result.

    Paddle's CPU SelectedRows Adam kernel (lazy_mode=False) can read uninitialised memory for
    rows absent from the gradient: inside a long-lived process an absent row occasionally got a
    garbage moment (e.g. 2.3e32). Fresh processes give the clean result.
    """
    results: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(SPARSE_RUNS):
            d = os.path.join(tmp, str(i))
            cmd = [sys.executable, os.path.abspath(__file__), "--sparse-case", name, "--out", d]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            path = os.path.join(d, name + ".npz")
            if r.returncode != 0 or not os.path.exists(path):
                key = f"failed (rc {r.returncode})"
                results.setdefault(key, []).append(None)
                continue
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            digest = hashlib.sha256()
            for k in sorted(arrays):
                if k != "meta":
                    digest.update(k.encode() + arrays[k].tobytes())
            results.setdefault(digest.hexdigest()[:12], []).append(arrays)
    best = max((k for k in results if not k.startswith("failed")), key=lambda k: len(results[k]))
    arrays = results[best][0]
    meta = json.loads(str(arrays.pop("meta")[()]))
    for k in (*COMMON_META, "case", "name", "param_names", "param_shapes"):
        meta.pop(k, None)
    meta["isolated_runs"] = {
        "processes": SPARSE_RUNS,
        "identical_in": len(results[best]),
        "distinct_results": len(results),
    }
    if len(results) > 1:
        print(f"  {name}: results differ between processes: {[len(v) for v in results.values()]}")
    write_case(out, name, meta, arrays)


def lbfgs_case(out, name, kwargs, notes=""):
    """LBFGS on f(x) = 0.5 * ||A x - b||^2 with x = concat(p0.flatten(), p1)."""
    steps = STEPS
    specs = PARAM_SETS["P2"]
    init, _ = make_data([s for _, s in specs], 1)
    rng = np.random.default_rng(DATA_SEED + 11)
    u, _ = np.linalg.qr(rng.standard_normal([10, 8]))
    v, _ = np.linalg.qr(rng.standard_normal([8, 8]))
    A = (u @ np.diag(np.logspace(0.0, 1.0, 8)) @ v.T).astype(F32)
    b = rng.standard_normal(10).astype(F32)
    try:
        with unique_name.guard():
            ps = _make_params(specs, init, {})
            opt = O.LBFGS(parameters=ps, **kwargs)
            At, bt = paddle.to_tensor(A), paddle.to_tensor(b)
            n_evals = [0]

            def closure():
                n_evals[0] += 1
                opt.clear_grad()
                x = paddle.concat([ps[0].flatten(), ps[1]])
                r = paddle.matmul(At, x) - bt
                loss = 0.5 * (r * r).sum()
                loss.backward()
                return loss

            arrays = {f"p{j}_init": init[j] for j in range(len(ps))}
            arrays["A"], arrays["b"] = A, b
            for k in range(1, steps + 1):
                arrays[f"lr{k}"] = np.array(opt.get_lr(), dtype=np.float64)
                n_evals[0] = 0
                loss = opt.step(closure)
                arrays[f"loss{k}"] = np.array(float(loss), dtype=np.float64)
                arrays[f"nevals{k}"] = np.array(n_evals[0], dtype=np.int64)
                for j, p in enumerate(ps):
                    arrays[f"p{j}_step{k}"] = to_numpy(p)
            st_arrays, st_extra, st_dtypes = flatten_state(opt.state_dict())
    except Exception as e:  # noqa: BLE001
        record_refusal(name, f"LBFGS({encode(kwargs)})", e)
        return
    arrays.update(st_arrays)
    meta = {
        "kind": "lbfgs",
        "optimizer": "LBFGS",
        "kwargs": encode(kwargs),
        "parameters": [{"__param__": n} for n, _ in specs],
        "params": [{"name": n, "shape": s, "dtype": "float32", "attr": {}} for n, s in specs],
        "steps": steps,
        "dtype": "float32",
        "grad_injection": (
            "closure: clear_grad(); x = concat(p0.flatten(), p1); r = A @ x - b; "
            "loss = 0.5 * sum(r * r); loss.backward(); return loss. No g{k}_{j} keys; "
            "loss{k} = value returned by opt.step(closure) (loss at the start of step k); "
            "nevals{k} = closure calls during step k"
        ),
        "state_extra": st_extra,
        "state_dtypes": st_dtypes,
        "notes": notes,
    }
    write_case(out, name, meta, arrays)


# ---------------------------------------------------------------------------------------------
# LR scheduler cases
# ---------------------------------------------------------------------------------------------
def sched_case(out, name, build, metrics=None, steps=SCHED_STEPS, notes=""):
    try:
        sched = build()
        arrays = {}
        mid = None
        for k in range(1, steps + 1):
            arrays[f"lr{k}"] = np.array(sched(), dtype=np.float64)
            if metrics is not None:
                arrays[f"metric{k}"] = np.array(metrics[k - 1], dtype=np.float64)
                sched.step(float(metrics[k - 1]))
            else:
                sched.step()
            if k == steps // 2:
                mid = encode(sched.state_dict())
        final = encode(sched.state_dict())
    except Exception as e:  # noqa: BLE001
        record_refusal(name, "scheduler", e)
        return
    meta = {
        "kind": "scheduler",
        "scheduler": encode(sched),
        "steps": steps,
        "lr_note": (
            "lr{k} = scheduler() before the k-th call of step() (lr1 is the value right after "
            "construction, i.e. last_epoch=0); the scheduler was stepped once per k"
            + ("; ReduceOnPlateau is stepped with step(metric{k})" if metrics is not None else "")
        ),
        "state_dict_mid": mid,
        "state_dict_mid_after_steps": steps // 2,
        "state_dict": final,
        "notes": notes,
    }
    write_case(out, name, meta, arrays)


# ---------------------------------------------------------------------------------------------
# Case list
# ---------------------------------------------------------------------------------------------
def wd_variants(out, prefix, cls, base, value=0.05, notes=""):
    opt_case(out, f"{prefix}_wd_float", cls, dict(base, weight_decay=value), notes=notes)
    opt_case(out, f"{prefix}_wd_l1", cls, dict(base, weight_decay=mk(L1, coeff=value)), notes=notes)
    opt_case(out, f"{prefix}_wd_l2", cls, dict(base, weight_decay=mk(L2, coeff=value)), notes=notes)


def optimizer_cases(out):
    # SGD
    opt_case(out, "sgd", O.SGD, {"learning_rate": 0.1})
    wd_variants(out, "sgd", O.SGD, {"learning_rate": 0.1})
    opt_case(out, "sgd_default_lr", O.SGD, {})
    opt_case(
        out,
        "sgd_bf16_multi_precision",
        O.SGD,
        {"learning_rate": 0.1, "multi_precision": True},
        params="P2",
        dtype="bfloat16",
        notes="bfloat16 parameters and gradients (stored here as exact float32). Only SGD has a "
        "CPU bf16 kernel, and it ignores the master weights: measured p = bf16(p - bf16(bf16(lr) "
        "* g)) exactly, while state/master_weights/<name> stays at its initial fp32 copy.",
    )

    # Momentum
    mom = {"learning_rate": 0.1, "momentum": 0.9}
    opt_case(out, "momentum", O.Momentum, mom)
    opt_case(out, "momentum_nesterov", O.Momentum, dict(mom, use_nesterov=True))
    wd_variants(out, "momentum", O.Momentum, mom)
    opt_case(
        out,
        "momentum_nesterov_wd_l2",
        O.Momentum,
        dict(mom, use_nesterov=True, weight_decay=mk(L2, coeff=0.05)),
    )
    opt_case(
        out,
        "momentum_rescale_grad",
        O.Momentum,
        dict(mom, rescale_grad=0.5),
        notes="reference: the CPU kernel ignores rescale_grad",
    )
    opt_case(
        out,
        "momentum_paramattr_l1_with_float_wd",
        O.Momentum,
        dict(mom, weight_decay=0.05),
        attrs={"linear_0.w_0": {"regularizer": mk(L1, coeff=0.1)}},
        notes="w has a ParamAttr L1Decay (wins, and disables the fused L2); b gets the float wd",
    )

    # Adam
    adam = {"learning_rate": 0.1}
    opt_case(out, "adam", O.Adam, adam)
    opt_case(out, "adam_amsgrad", O.Adam, dict(adam, amsgrad=True))
    opt_case(out, "adam_betas_eps", O.Adam, dict(adam, beta1=0.5, beta2=0.9, epsilon=0.1))
    opt_case(out, "adam_eps_large", O.Adam, dict(adam, epsilon=1.0))
    wd_variants(out, "adam", O.Adam, adam)
    opt_case(
        out,
        "adam_tensor_betas",
        O.Adam,
        dict(adam, beta1=tensor([0.8]), beta2=tensor([0.99])),
        notes="reference quirk: pow accumulators start at 0.9/0.999 whatever the tensor values",
    )
    opt_case(out, "adam_use_multi_tensor", O.Adam, dict(adam, use_multi_tensor=True))
    opt_case(
        out,
        "adam_stepdecay",
        O.Adam,
        {"learning_rate": mk(LR.StepDecay, learning_rate=0.1, step_size=3, gamma=0.5)},
        notes="scheduler.step() after every opt.step()",
    )

    # AdamW
    adamw = {"learning_rate": 0.1, "weight_decay": 0.1}
    opt_case(out, "adamw", O.AdamW, adamw)
    opt_case(out, "adamw_default_wd", O.AdamW, {"learning_rate": 0.1})
    opt_case(out, "adamw_amsgrad", O.AdamW, dict(adamw, amsgrad=True))
    opt_case(
        out,
        "adamw_apply_decay_param_fun",
        O.AdamW,
        dict(
            adamw,
            apply_decay_param_fun=fn(
                lambda n: not n.endswith(".b_0"), "lambda name: not name.endswith('.b_0')"
            ),
        ),
        params="P3",
    )
    opt_case(out, "adamw_wd_tensor", O.AdamW, dict(adamw, weight_decay=tensor(0.2)))
    opt_case(out, "adamw_wd_tensor_shape1", O.AdamW, dict(adamw, weight_decay=tensor([0.2])))
    opt_case(
        out,
        "adamw_tensor_betas",
        O.AdamW,
        dict(adamw, beta1=tensor([0.8]), beta2=tensor([0.99])),
    )
    opt_case(
        out,
        "adamw_cosine",
        O.AdamW,
        dict(adamw, learning_rate=mk(LR.CosineAnnealingDecay, learning_rate=0.1, T_max=12)),
        notes="scheduler.step() after every opt.step(); the decay uses the scheduled lr",
    )
    for what, wd in (("l1", mk(L1, coeff=0.05)), ("l2", mk(L2, coeff=0.05))):
        opt_case(out, f"adamw_wd_{what}", O.AdamW, dict(adamw, weight_decay=wd))
    opt_case(
        out,
        "adamw_lr_ratio",
        O.AdamW,
        dict(adamw, lr_ratio=fn(lambda p: 0.5, "lambda param: 0.5")),
    )

    # Adamax
    opt_case(out, "adamax", O.Adamax, {"learning_rate": 0.1})
    opt_case(out, "adamax_eps_large", O.Adamax, {"learning_rate": 0.1, "epsilon": 0.5})
    wd_variants(out, "adamax", O.Adamax, {"learning_rate": 0.1})

    # Adagrad
    opt_case(out, "adagrad", O.Adagrad, {"learning_rate": 0.1})
    opt_case(
        out,
        "adagrad_initial_accumulator",
        O.Adagrad,
        {"learning_rate": 0.1, "initial_accumulator_value": 0.5},
    )
    opt_case(out, "adagrad_eps_large", O.Adagrad, {"learning_rate": 0.1, "epsilon": 1.0})
    wd_variants(out, "adagrad", O.Adagrad, {"learning_rate": 0.1})

    # Adadelta
    opt_case(out, "adadelta", O.Adadelta, {"learning_rate": 1.0})
    opt_case(out, "adadelta_default_lr", O.Adadelta, {})
    opt_case(
        out, "adadelta_rho_eps", O.Adadelta, {"learning_rate": 1.0, "rho": 0.5, "epsilon": 0.1}
    )
    wd_variants(out, "adadelta", O.Adadelta, {"learning_rate": 1.0})

    # RMSProp
    rms = {"learning_rate": 0.05}
    opt_case(out, "rmsprop", O.RMSProp, rms)
    opt_case(out, "rmsprop_centered", O.RMSProp, dict(rms, centered=True))
    opt_case(out, "rmsprop_momentum", O.RMSProp, dict(rms, momentum=0.9))
    opt_case(out, "rmsprop_centered_momentum", O.RMSProp, dict(rms, centered=True, momentum=0.5))
    opt_case(out, "rmsprop_eps_large", O.RMSProp, dict(rms, epsilon=1.0, rho=0.9))
    opt_case(
        out,
        "rmsprop_centered_eps_large",
        O.RMSProp,
        dict(rms, epsilon=1.0, centered=True, momentum=0.5),
    )
    wd_variants(out, "rmsprop", O.RMSProp, rms)

    # Lamb (no weight_decay argument)
    lamb = {"learning_rate": 0.1, "lamb_weight_decay": 0.1}
    opt_case(out, "lamb", O.Lamb, lamb, params="P3")
    opt_case(out, "lamb_default_wd", O.Lamb, {"learning_rate": 0.1}, params="P3")
    excl = fn(lambda p: p.name.endswith(".b_0"), "lambda param: param.name.endswith('.b_0')")
    opt_case(
        out, "lamb_exclude", O.Lamb, dict(lamb, exclude_from_weight_decay_fn=excl), params="P3"
    )
    opt_case(
        out,
        "lamb_exclude_always_adapt",
        O.Lamb,
        dict(lamb, exclude_from_weight_decay_fn=excl, always_adapt=True),
        params="P3",
    )
    opt_case(
        out,
        "lamb_zero_param",
        O.Lamb,
        lamb,
        params="P3",
        init_override={1: np.zeros([2], F32)},
        notes="linear_0.b_0 starts at 0, so ||p|| = 0 at step 1 (trust ratio 1)",
    )
    opt_case(
        out,
        "lamb_eps_large",
        O.Lamb,
        dict(lamb, epsilon=0.5, beta1=0.8, beta2=0.95),
        params="P3",
    )

    # NAdam
    opt_case(out, "nadam", O.NAdam, {"learning_rate": 0.1})
    opt_case(out, "nadam_momentum_decay", O.NAdam, {"learning_rate": 0.1, "momentum_decay": 0.1})
    opt_case(out, "nadam_default_lr", O.NAdam, {})
    wd_variants(out, "nadam", O.NAdam, {"learning_rate": 0.1})

    # RAdam (rho_t > 5 from step 6 on with beta2=0.999: both branches are covered)
    opt_case(out, "radam", O.RAdam, {"learning_rate": 0.1})
    opt_case(out, "radam_betas", O.RAdam, {"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.9})
    wd_variants(out, "radam", O.RAdam, {"learning_rate": 0.1})

    # ASGD
    opt_case(out, "asgd_batch1", O.ASGD, {"learning_rate": 0.1, "batch_num": 1})
    opt_case(out, "asgd_batch3", O.ASGD, {"learning_rate": 0.1, "batch_num": 3})
    wd_variants(out, "asgd_batch3", O.ASGD, {"learning_rate": 0.1, "batch_num": 3})

    # Rprop (no weight_decay argument)
    opt_case(out, "rprop", O.Rprop, {"learning_rate": 0.01})
    opt_case(
        out,
        "rprop_range_etas",
        O.Rprop,
        {"learning_rate": 0.05, "learning_rate_range": (0.01, 0.08), "etas": (0.3, 1.5)},
    )
    opt_case(out, "rprop_default", O.Rprop, {})

    # LBFGS (max_eval defaults to max_iter * 5 // 4)
    lb = {"learning_rate": 1.0, "max_iter": 3, "history_size": 3}
    lbfgs_case(out, "lbfgs", lb)
    lbfgs_case(out, "lbfgs_max_eval", dict(lb, max_iter=4, max_eval=20, history_size=5))
    lbfgs_case(out, "lbfgs_lr_half", dict(lb, learning_rate=0.5, history_size=10))
    lbfgs_case(out, "lbfgs_strong_wolfe", dict(lb, line_search_fn="strong_wolfe"))
    lbfgs_case(
        out,
        "lbfgs_strong_wolfe_max_eval",
        dict(lb, line_search_fn="strong_wolfe", max_iter=4, max_eval=20, learning_rate=0.5),
    )
    lbfgs_case(
        out,
        "lbfgs_wd_float",
        dict(lb, weight_decay=0.1),
        notes="LBFGS.step never applies weight_decay: same numbers as case 'lbfgs'",
    )

    # Sparse gradients (SelectedRows) and lazy_mode
    for name in SPARSE_CASES:
        sparse_case_isolated(out, name)
    probe_subprocess(
        "adamw_sparse_lazy",
        "AdamW(lazy_mode=True) on an nn.Embedding(sparse=True) gradient",
        ADAMW_SPARSE_PROBE,
    )


def clip_cases(out):
    sgd = {"learning_rate": 0.1}
    opt_case(
        out, "clip_value_sgd", O.SGD, dict(sgd, grad_clip=mk(paddle.nn.ClipGradByValue, max=0.5))
    )
    opt_case(
        out,
        "clip_value_minmax_sgd",
        O.SGD,
        dict(sgd, grad_clip=mk(paddle.nn.ClipGradByValue, max=0.8, min=-0.3)),
    )
    opt_case(
        out,
        "clip_norm_sgd",
        O.SGD,
        dict(sgd, grad_clip=mk(paddle.nn.ClipGradByNorm, clip_norm=1.0)),
        params="P3",
    )
    opt_case(
        out,
        "clip_global_norm_sgd",
        O.SGD,
        dict(sgd, grad_clip=mk(paddle.nn.ClipGradByGlobalNorm, clip_norm=1.0)),
        params="P3",
    )
    opt_case(
        out,
        "clip_global_norm_auto_skip_sgd",
        O.SGD,
        dict(sgd, grad_clip=mk(paddle.nn.ClipGradByGlobalNorm, clip_norm=1.0, auto_skip_clip=True)),
        params="P3",
    )
    opt_case(
        out,
        "clip_global_norm_tiny_sgd",
        O.SGD,
        {"learning_rate": 1000.0, "grad_clip": mk(paddle.nn.ClipGradByGlobalNorm, clip_norm=1e-5)},
        params="P3",
        grad_scale=1e-5,
        notes="gradients scaled by 1e-5 (global norm ~3e-5): exposes torch's +1e-6 in "
        "max_norm / (norm + 1e-6), which Paddle does not have",
    )
    no_clip = {"linear_0.b_0": {"need_clip": False}}
    for cname, clip in (
        ("value", mk(paddle.nn.ClipGradByValue, max=0.5)),
        ("norm", mk(paddle.nn.ClipGradByNorm, clip_norm=1.0)),
        ("global_norm", mk(paddle.nn.ClipGradByGlobalNorm, clip_norm=1.0)),
    ):
        opt_case(
            out,
            f"clip_{cname}_need_clip_false_sgd",
            O.SGD,
            dict(sgd, grad_clip=clip),
            params="P3",
            attrs=no_clip,
            notes="linear_0.b_0 has ParamAttr(need_clip=False)",
        )
    opt_case(
        out,
        "clip_norm_then_l2_sgd",
        O.SGD,
        dict(
            sgd,
            grad_clip=mk(paddle.nn.ClipGradByNorm, clip_norm=0.5),
            weight_decay=mk(L2, coeff=0.5),
        ),
        notes="clipping happens before the regulariser is added",
    )
    opt_case(
        out,
        "clip_global_norm_then_l1_momentum",
        O.Momentum,
        dict(
            sgd,
            momentum=0.9,
            grad_clip=mk(paddle.nn.ClipGradByGlobalNorm, clip_norm=0.5),
            weight_decay=mk(L1, coeff=0.1),
        ),
    )
    opt_case(
        out,
        "clip_global_norm_adam",
        O.Adam,
        dict(sgd, grad_clip=mk(paddle.nn.ClipGradByGlobalNorm, clip_norm=1.0), weight_decay=0.01),
        params="P3",
    )
    opt_case(
        out,
        "clip_global_norm_adamw",
        O.AdamW,
        dict(sgd, grad_clip=mk(paddle.nn.ClipGradByGlobalNorm, clip_norm=1.0), weight_decay=0.1),
        params="P3",
    )
    opt_case(
        out,
        "clip_value_lamb",
        O.Lamb,
        dict(sgd, grad_clip=mk(paddle.nn.ClipGradByValue, max=0.5)),
        params="P3",
    )
    opt_case(
        out,
        "clip_norm_rmsprop",
        O.RMSProp,
        dict(sgd, grad_clip=mk(paddle.nn.ClipGradByNorm, clip_norm=0.5)),
    )


def group_cases(out):
    opt_case(
        out,
        "groups_sgd",
        O.SGD,
        {"learning_rate": 0.1, "weight_decay": 0.01},
        groups=[{"params": [0], "learning_rate": 0.5, "weight_decay": 0.1}, {"params": [1]}],
        notes="group learning_rate is a scale of the base lr; group weight_decay replaces it",
    )
    opt_case(
        out,
        "groups_sgd_stepdecay",
        O.SGD,
        {"learning_rate": mk(LR.StepDecay, learning_rate=0.1, step_size=4, gamma=0.5)},
        groups=[{"params": [0], "learning_rate": 2.0}, {"params": [1]}],
    )
    opt_case(
        out,
        "groups_adam_regularizers",
        O.Adam,
        {"learning_rate": 0.1, "weight_decay": mk(L2, coeff=0.01)},
        groups=[
            {"params": [0], "weight_decay": mk(L1, coeff=0.05)},
            {"params": [1], "learning_rate": 2.0},
        ],
    )
    opt_case(
        out,
        "groups_adam_hyper",
        O.Adam,
        {"learning_rate": 0.1},
        groups=[{"params": [0], "beta1": 0.5, "beta2": 0.9, "epsilon": 1e-3}, {"params": [1]}],
    )
    opt_case(
        out,
        "groups_momentum",
        O.Momentum,
        {"learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.01},
        groups=[{"params": [0], "momentum": 0.5, "weight_decay": 0.1}, {"params": [1]}],
    )
    opt_case(
        out,
        "groups_adamw",
        O.AdamW,
        {"learning_rate": 0.1, "weight_decay": 0.01},
        groups=[{"params": [0], "weight_decay": 0.3, "learning_rate": 0.5}, {"params": [1]}],
    )
    opt_case(
        out,
        "groups_override_paramattr_sgd",
        O.SGD,
        {"learning_rate": 0.1, "weight_decay": 0.01},
        attrs={
            "linear_0.w_0": {"learning_rate": 3.0, "regularizer": mk(L1, coeff=0.1)},
            "linear_0.b_0": {"learning_rate": 2.0, "regularizer": mk(L1, coeff=0.1)},
        },
        groups=[{"params": [0], "learning_rate": 0.5, "weight_decay": 0.02}, {"params": [1]}],
        notes="ParamAttr lr/regularizer on both params; group 0 sets its own, group 1 sets none",
    )
    opt_case(
        out,
        "paramattr_lr_sgd",
        O.SGD,
        {"learning_rate": 0.1},
        attrs={"linear_0.w_0": {"learning_rate": 2.0}, "linear_0.b_0": {"learning_rate": 0.5}},
    )
    opt_case(
        out,
        "paramattr_lr_adam",
        O.Adam,
        {"learning_rate": 0.1},
        attrs={"linear_0.w_0": {"learning_rate": 2.0}, "linear_0.b_0": {"learning_rate": 0.5}},
    )
    opt_case(
        out,
        "paramattr_regularizer_wins_sgd",
        O.SGD,
        {"learning_rate": 0.1, "weight_decay": mk(L2, coeff=0.05)},
        attrs={"linear_0.w_0": {"regularizer": mk(L1, coeff=0.1)}},
    )
    opt_case(
        out,
        "paramattr_regularizer_wins_adam",
        O.Adam,
        {"learning_rate": 0.1, "weight_decay": 0.05},
        attrs={"linear_0.w_0": {"regularizer": mk(L1, coeff=0.1)}},
    )


def scheduler_cases(out):
    S = SCHED_STEPS
    sched_case(out, "lr_noam", lambda: mk(LR.NoamDecay, d_model=64, warmup_steps=10))
    sched_case(
        out,
        "lr_noam_lr2",
        lambda: mk(LR.NoamDecay, d_model=16, warmup_steps=5, learning_rate=2.0),
    )
    sched_case(
        out,
        "lr_piecewise",
        lambda: mk(LR.PiecewiseDecay, boundaries=[5, 12, 20], values=[0.1, 0.05, 0.01, 0.001]),
    )
    sched_case(out, "lr_natural_exp", lambda: mk(LR.NaturalExpDecay, learning_rate=0.5, gamma=0.1))
    sched_case(
        out, "lr_inverse_time", lambda: mk(LR.InverseTimeDecay, learning_rate=0.5, gamma=0.2)
    )
    sched_case(
        out,
        "lr_polynomial",
        lambda: mk(LR.PolynomialDecay, learning_rate=0.5, decay_steps=20, end_lr=0.01, power=2.0),
    )
    sched_case(
        out,
        "lr_polynomial_cycle",
        lambda: mk(
            LR.PolynomialDecay,
            learning_rate=0.5,
            decay_steps=8,
            end_lr=0.01,
            power=1.0,
            cycle=True,
        ),
    )
    sched_case(
        out,
        "lr_linear_warmup_float",
        lambda: mk(LR.LinearWarmup, learning_rate=0.5, warmup_steps=10, start_lr=0.0, end_lr=0.5),
    )
    sched_case(
        out,
        "lr_linear_warmup_sched",
        lambda: mk(
            LR.LinearWarmup,
            learning_rate=mk(LR.StepDecay, learning_rate=0.5, step_size=5, gamma=0.5),
            warmup_steps=8,
            start_lr=0.01,
            end_lr=0.4,
        ),
    )
    sched_case(
        out,
        "lr_linear_warmup_cosine",
        lambda: mk(
            LR.LinearWarmup,
            learning_rate=mk(LR.CosineAnnealingDecay, learning_rate=0.5, T_max=15),
            warmup_steps=5,
            start_lr=0.0,
            end_lr=0.5,
        ),
    )
    sched_case(out, "lr_exponential", lambda: mk(LR.ExponentialDecay, learning_rate=0.5, gamma=0.9))
    sched_case(
        out,
        "lr_multistep",
        lambda: mk(LR.MultiStepDecay, learning_rate=0.5, milestones=[4, 10, 25], gamma=0.3),
    )
    sched_case(out, "lr_step", lambda: mk(LR.StepDecay, learning_rate=0.5, step_size=7, gamma=0.5))
    sched_case(
        out,
        "lr_lambda",
        lambda: mk(
            LR.LambdaDecay,
            learning_rate=0.5,
            lr_lambda=fn(lambda e: 0.95**e, "lambda epoch: 0.95 ** epoch"),
        ),
    )
    sched_case(
        out,
        "lr_multiplicative",
        lambda: mk(
            LR.MultiplicativeDecay,
            learning_rate=0.5,
            lr_lambda=fn(
                lambda e: 0.9 if e % 2 else 1.0, "lambda epoch: 0.9 if epoch % 2 else 1.0"
            ),
        ),
    )
    plateau = [1.0, 0.9, 0.85, 0.86, 0.86, 0.87, 0.84, 0.84, 0.84, 0.85]
    plateau += [0.83, 0.8301, 0.83, 0.83, 0.83, 0.9, 0.5, 0.5, 0.5, 0.5]
    plateau += [0.5, 0.49999, 0.5, 0.51, 0.52, 0.4, 0.4, 0.4, 0.4, 0.4]
    sched_case(
        out,
        "lr_reduce_on_plateau",
        lambda: mk(LR.ReduceOnPlateau, learning_rate=0.5, factor=0.5, patience=2),
        metrics=plateau,
    )
    sched_case(
        out,
        "lr_reduce_on_plateau_max_abs_cooldown",
        lambda: mk(
            LR.ReduceOnPlateau,
            learning_rate=0.5,
            mode="max",
            factor=0.5,
            patience=1,
            threshold=0.01,
            threshold_mode="abs",
            cooldown=2,
            min_lr=0.05,
        ),
        metrics=[-m for m in plateau],
        notes="Paddle ignores the metric while cooldown_counter > 0 (best and num_bad_epochs are "
        "not updated); torch still updates best then, so the two differ here",
    )
    sched_case(
        out,
        "lr_reduce_on_plateau_epsilon",
        lambda: mk(
            LR.ReduceOnPlateau,
            learning_rate=1e-3,
            factor=0.9,
            patience=0,
            min_lr=9e-4,
            epsilon=1e-4,
        ),
        metrics=plateau,
        notes="updates smaller than epsilon are ignored",
    )
    sched_case(
        out,
        "lr_cosine_annealing",
        lambda: mk(LR.CosineAnnealingDecay, learning_rate=0.5, T_max=10, eta_min=0.01),
        notes="30 steps > T_max: exercises the recursive form past T_max",
    )
    sched_case(
        out,
        "lr_onecycle",
        lambda: mk(LR.OneCycleLR, max_learning_rate=0.5, total_steps=S + 1),
    )
    sched_case(
        out,
        "lr_onecycle_three_phase",
        lambda: mk(
            LR.OneCycleLR,
            max_learning_rate=0.5,
            total_steps=S + 1,
            divide_factor=10.0,
            end_learning_rate=1e-3,
            phase_pct=0.25,
            three_phase=True,
        ),
    )
    sched_case(
        out,
        "lr_onecycle_linear",
        lambda: mk(
            LR.OneCycleLR,
            max_learning_rate=0.5,
            total_steps=S + 1,
            anneal_strategy="linear",
        ),
    )
    sched_case(
        out,
        "lr_onecycle_linear_three_phase",
        lambda: mk(
            LR.OneCycleLR,
            max_learning_rate=0.5,
            total_steps=S + 1,
            anneal_strategy="linear",
            three_phase=True,
        ),
    )
    for mode, extra in (("triangular", {}), ("triangular2", {}), ("exp_range", {"exp_gamma": 0.9})):
        sched_case(
            out,
            f"lr_cyclic_{mode}",
            lambda mode=mode, extra=extra: mk(
                LR.CyclicLR,
                base_learning_rate=0.1,
                max_learning_rate=0.5,
                step_size_up=4,
                step_size_down=3,
                mode=mode,
                **extra,
            ),
        )
    sched_case(
        out,
        "lr_cyclic_scale_fn_iterations",
        lambda: mk(
            LR.CyclicLR,
            base_learning_rate=0.1,
            max_learning_rate=0.5,
            step_size_up=5,
            scale_fn=fn(lambda x: 1.0 / (1.0 + 0.05 * x), "lambda x: 1.0 / (1.0 + 0.05 * x)"),
            scale_mode="iterations",
        ),
    )
    sched_case(out, "lr_linear_lr", lambda: mk(LR.LinearLR, learning_rate=0.5, total_steps=20))
    sched_case(
        out,
        "lr_linear_lr_factors",
        lambda: mk(
            LR.LinearLR, learning_rate=0.5, total_steps=10, start_factor=1.0, end_factor=0.1
        ),
    )
    sched_case(
        out,
        "lr_cosine_warm_restarts",
        lambda: mk(LR.CosineAnnealingWarmRestarts, learning_rate=0.5, T_0=5, eta_min=0.01),
    )
    sched_case(
        out,
        "lr_cosine_warm_restarts_tmult",
        lambda: mk(LR.CosineAnnealingWarmRestarts, learning_rate=0.5, T_0=3, T_mult=2),
    )


# ---------------------------------------------------------------------------------------------
# Checkpoint files
# ---------------------------------------------------------------------------------------------
class _Inert:
    """Placeholder produced by the recording unpickler: accepts any call and any state."""

    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return _Inert()

    def __setstate__(self, state):
        pass


def pickle_globals(raw: bytes) -> list[list[str]]:
    """Every (module, name) the pickle imports, found without executing anything."""
    seen: list[list[str]] = []

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            if [module, name] not in seen:
                seen.append([module, name])
            return _Inert

    try:
        Recorder(io.BytesIO(raw)).load()
    except Exception:  # noqa: BLE001  (truncated file: keep what was seen)
        seen.append(["<incomplete>", "the pickle could not be read to its end"])
    return seen


def pickle_protocol(raw: bytes):
    for op, arg, _ in pickletools.genops(io.BytesIO(raw)):
        return arg if op.name == "PROTO" else None
    return None


def describe(x):
    """JSON description of a loaded object; arrays carry dtype, shape and values."""
    if isinstance(x, paddle.Tensor):
        a = to_numpy(x)
        return {
            "__type__": "Tensor",
            "dtype": str(a.dtype),
            "shape": list(a.shape),
            "values": a.tolist(),
        }
    if isinstance(x, paddle.base.libpaddle.DenseTensor):
        a = np.array(x)
        return {
            "__type__": "DenseTensor",
            "dtype": str(a.dtype),
            "shape": list(a.shape),
            "values": a.tolist(),
        }
    if isinstance(x, np.ndarray):
        return {
            "__type__": "ndarray",
            "dtype": str(x.dtype),
            "shape": list(x.shape),
            "values": x.tolist(),
        }
    if isinstance(x, np.generic):
        return {"__type__": "numpy_scalar", "dtype": str(x.dtype), "value": x.item()}
    if isinstance(x, dict):
        return {str(k): describe(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return {"__type__": "tuple", "items": [describe(v) for v in x]}
    if isinstance(x, list):
        return [describe(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return repr(x)
    return x


def _load_error(path: str) -> str | None:
    try:
        paddle.load(path)
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
    return None


def _pickle_error(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            pickle.load(f)
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
    return None


def checkpoint_cases(out):
    ck = os.path.join(out, "checkpoints")
    os.makedirs(ck, exist_ok=True)
    entries: dict[str, dict] = {}

    def add(fname, made_by, what, *, trusted=True, **extra):
        path = os.path.join(ck, fname)
        with open(path, "rb") as f:
            raw = f.read()
        e = {
            "file": fname,
            "size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "made_by": made_by,
            "holds": what,
            "pickle_protocol": pickle_protocol(raw) if raw[:1] == b"\x80" else None,
            "pickle_globals": pickle_globals(raw),
        }
        if trusted:
            e["paddle_load"] = describe(paddle.load(path))
            e["paddle_load_return_numpy"] = describe(paddle.load(path, return_numpy=True))
            with open(path, "rb") as f:
                e["plain_pickle_load"] = describe(pickle.load(f))
        e.update(extra)
        entries[fname] = e
        print(f"  checkpoints/{fname}: {len(raw)} bytes")

    rng = np.random.default_rng(DATA_SEED + 23)
    w0 = rng.uniform(-1, 1, [3, 2]).astype(F32)
    b0 = rng.uniform(-1, 1, [2]).astype(F32)
    grads = [
        (rng.standard_normal([3, 2]).astype(F32), rng.standard_normal([2]).astype(F32))
        for _ in range(2)
    ]
    with unique_name.guard():
        lin = paddle.nn.Linear(
            3,
            2,
            weight_attr=paddle.ParamAttr(initializer=paddle.nn.initializer.Assign(w0)),
            bias_attr=paddle.ParamAttr(initializer=paddle.nn.initializer.Assign(b0)),
        )
        sched = LR.StepDecay(learning_rate=0.1, step_size=1, gamma=0.5)
        opt = O.Adam(learning_rate=sched, parameters=lin.parameters())
        for gw, gb in grads:
            loss = (lin.weight * paddle.to_tensor(gw)).sum() + (
                lin.bias * paddle.to_tensor(gb)
            ).sum()
            loss.backward()
            opt.step()
            opt.clear_grad()
            sched.step()
        sd = opt.state_dict()
        recipe = {
            "model": "paddle.nn.Linear(3, 2) (weight linear_0.w_0 [3,2], bias linear_0.b_0 [2])",
            "init": {"linear_0.w_0": w0.tolist(), "linear_0.b_0": b0.tolist()},
            "grads": [[gw.tolist(), gb.tolist()] for gw, gb in grads],
            "optimizer": "Adam(learning_rate=StepDecay(learning_rate=0.1, step_size=1, "
            "gamma=0.5), parameters=lin.parameters())",
            "steps": "2 x (loss = sum(w*Gw) + sum(b*Gb); backward; opt.step(); "
            "opt.clear_grad(); sched.step())",
        }
        paddle.save(sd, os.path.join(ck, "adam_stepdecay.pdopt"))
        add(
            "adam_stepdecay.pdopt",
            "paddle.save(opt.state_dict(), path)  # default protocol",
            "Adam + StepDecay optimizer state after 2 steps",
            recipe=recipe,
        )
        for proto in (2, 3, 4):
            fname = f"adam_stepdecay_protocol{proto}.pdopt"
            paddle.save(sd, os.path.join(ck, fname), protocol=proto)
            add(
                fname,
                f"paddle.save(opt.state_dict(), path, protocol={proto})",
                "same state as adam_stepdecay.pdopt",
                recipe=recipe,
            )
        paddle.save(lin.state_dict(), os.path.join(ck, "linear.pdparams"))
        add(
            "linear.pdparams",
            "paddle.save(lin.state_dict(), path)",
            "parameters of the Linear(3, 2) after the 2 Adam steps",
            recipe=recipe,
        )

    # Real nested state: bf16 SGD with multi_precision keeps fp32 master weights.
    with unique_name.guard():
        lin = paddle.nn.Linear(
            3,
            2,
            weight_attr=paddle.ParamAttr(initializer=paddle.nn.initializer.Assign(w0)),
            bias_attr=paddle.ParamAttr(initializer=paddle.nn.initializer.Assign(b0)),
        )
        lin.to(dtype="bfloat16")
        opt = O.SGD(learning_rate=0.1, parameters=[lin.weight], multi_precision=True)
        (lin.weight * paddle.to_tensor(grads[0][0]).astype("bfloat16")).sum().backward()
        opt.step()
        paddle.save(opt.state_dict(), os.path.join(ck, "sgd_bf16_master_weights.pdopt"))
        add(
            "sgd_bf16_master_weights.pdopt",
            "paddle.save(opt.state_dict(), path)",
            "real multi_precision state: {'master_weights': {'linear_0.w_0': fp32 Tensor}} "
            "(nested Tensors: generic pickling fallback). The CPU SGD kernel never updates the "
            "master copy, so it still equals bf16(init) after the step",
            recipe={
                "model": "Linear(3, 2) with the init above, cast to bfloat16",
                "optimizer": "SGD(learning_rate=0.1, parameters=[lin.weight], "
                "multi_precision=True)",
                "steps": "1 step with grad bf16(grads[0][0])",
            },
        )

        # Synthetic nested dict: a Tensor, a DenseTensor and ndarrays mixed with plain data.
        m1 = paddle.to_tensor(rng.standard_normal([3, 2]).astype(F32))
        mw = paddle.to_tensor(rng.standard_normal([3, 2]).astype(F32))
        m1.name, mw.name = "linear_0.w_0_moment1_0", "linear_0.w_0_fp32_master_0"  # else a
        # process-global "generated_tensor_<n>" name lands in the file
        dense_owner = paddle.to_tensor(rng.standard_normal([2]).astype(F32))
        dense = dense_owner.value().get_tensor()  # keep dense_owner alive (else a segfault)
        nested = {
            "linear_0.w_0_moment1_0": m1,
            "master_weights": {"linear_0.w_0": mw},
            "dense": dense,
            "LR_Scheduler": {"last_epoch": 3, "last_lr": 0.0125},
            "step_ids": np.arange(4, dtype=np.int64),
        }
        paddle.save(nested, os.path.join(ck, "nested_tensors.pdopt"))
        add(
            "nested_tensors.pdopt",
            "paddle.save(nested, path)",
            "a dict with a Tensor, a nested {'master_weights': {name: Tensor}}, a DenseTensor "
            "(value().get_tensor()), a plain dict and an int64 ndarray",
        )

    # Malicious pickle (made with plain pickle; unpickling would run os.system('true')).
    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    evil = {"linear_0.w_0_moment1_0": Payload(), "LR_Scheduler": {"last_epoch": 0}}
    with open(os.path.join(ck, "malicious.pdopt"), "wb") as f:
        pickle.dump(evil, f, protocol=4)
    add(
        "malicious.pdopt",
        "pickle.dump({'linear_0.w_0_moment1_0': Payload(), 'LR_Scheduler': {...}}, f, "
        "protocol=4) with Payload.__reduce__ = (os.system, ('true',))",
        "a state-dict-shaped pickle whose unpickling calls os.system('true'); a safe reader "
        "must refuse it (never load it with pickle or paddle.load)",
        trusted=False,
        malicious=True,
        expect="refuse",
    )

    # Truncated copy of a real .pdopt.
    with open(os.path.join(ck, "adam_stepdecay.pdopt"), "rb") as f:
        raw = f.read()
    cut = len(raw) // 2
    with open(os.path.join(ck, "truncated.pdopt"), "wb") as f:
        f.write(raw[:cut])
    add(
        "truncated.pdopt",
        f"adam_stepdecay.pdopt[:{cut}]",
        "the first half of adam_stepdecay.pdopt; a reader must raise, not return partial data",
        trusted=False,
        expect="error",
        truncated_from="adam_stepdecay.pdopt",
        paddle_load_error=_load_error(os.path.join(ck, "truncated.pdopt")).replace(ck, "<dir>"),
        plain_pickle_error=_pickle_error(os.path.join(ck, "truncated.pdopt")),
    )

    index = {
        **COMMON_META,
        "notes": (
            "holds: what the file contains. paddle_load: describe(paddle.load(path)); "
            "paddle_load_return_numpy: describe(paddle.load(path, return_numpy=True)); "
            "plain_pickle_load: describe(pickle.load(f)) with paddle importable (trusted files "
            "only). describe(): Tensor/DenseTensor/ndarray -> {__type__, dtype, shape, values}, "
            "tuple -> {__type__: tuple, items}, dict -> dict. pickle_globals: every "
            "(module, name) the pickle imports, read without executing anything."
        ),
        "files": entries,
    }
    with open(os.path.join(ck, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("tests", "golden", "paddle"))
    ap.add_argument("--sparse-case", help=argparse.SUPPRESS)  # internal: one sparse case
    args = ap.parse_args(argv)
    out = args.out
    if args.sparse_case:
        cls_name, kwargs = SPARSE_CASES[args.sparse_case]
        os.makedirs(out, exist_ok=True)
        COMMON_META.update({"framework": "paddle", "version": paddle.__version__})
        sparse_case(out, args.sparse_case, getattr(O, cls_name), dict(kwargs))
        return 0 if os.path.exists(os.path.join(out, args.sparse_case + ".npz")) else 1
    paddle.set_device("cpu")
    COMMON_META.update(
        {
            "framework": "paddle",
            "version": paddle.__version__,
            "numpy_version": np.__version__,
            "python_version": sys.version.split()[0],
            "device": "cpu",
        }
    )
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):  # stale outputs from a previous run
        if name.endswith(".npz") or name == "index.json":
            os.remove(os.path.join(out, name))
    shutil.rmtree(os.path.join(out, "checkpoints"), ignore_errors=True)

    print("optimizer cases")
    optimizer_cases(out)
    print("clip cases")
    clip_cases(out)
    print("group cases")
    group_cases(out)
    print("scheduler cases")
    scheduler_cases(out)
    print("checkpoints")
    try:
        checkpoint_cases(out)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1

    index = {
        **COMMON_META,
        "steps": STEPS,
        "scheduler_steps": SCHED_STEPS,
        "grad_scales": GRAD_SCALES,
        "data_seed": DATA_SEED,
        "refused": REFUSED,
        "cases": INDEX,
    }
    with open(os.path.join(out, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(INDEX)} cases written, {len(REFUSED)} refused")
    for r in REFUSED:
        print(f"  refused: {r['case']}: {r['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
