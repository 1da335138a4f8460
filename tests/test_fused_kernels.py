"""The fused CPU kernel (kernels/cpu_fused.py): same numbers as the eager kernel and as torch.

* fused == eager for every algorithm, flag and dtype (a representative set by default, driven by
  hypothesis over hyperparameters, shapes and tensor counts; every combination under
  ``-m slow``, run by ``make parity``);
* fused == torch.optim (the default CPU path of the torch dialect is the fused kernel);
* mixed precision (bf16/fp16 parameters, fp32 master weights), GradScaler's scale and inf flag,
  many tensors in one launch, no parameter-sized temporaries, the disk cache, the fallbacks
  (Numba missing, untraceable rules, tensors the kernel cannot take), a new rule fused for free.

Compiling a kernel takes about a second the first time on a machine and is cached on disk
after that, which is why the default run covers a representative subset of configurations.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_calls import count_kernel_calls

import polyoptim
from polyoptim.kernels import compiler, cpu_fused, dispatch
from polyoptim.rules.base import Buffer, Rule, step_counter, step_of
from polyoptim.transforms.elementwise import torch_prologue

pytestmark = pytest.mark.skipif(not cpu_fused.available(), reason="needs Numba")

#: torch has ``fused=`` for these; the others take the fused kernel as their CPU default
HAS_FUSED_FLAG = {"Adam", "AdamW", "SGD", "Adagrad"}

#: a representative configuration set: every flag of every algorithm appears at least once
REPRESENTATIVE = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(amsgrad=True, maximize=True, weight_decay=0.1)),
    ("Adam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(amsgrad=True)),
    ("Adamax", dict(weight_decay=0.1, maximize=True)),
    ("Adagrad", dict(lr_decay=0.1, initial_accumulator_value=0.2, weight_decay=0.1)),
    ("Adadelta", dict(weight_decay=0.1, maximize=True)),
    ("ASGD", dict(t0=2, weight_decay=0.1)),
    ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(weight_decay=0.1)),
    ("RMSprop", dict(centered=True, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(maximize=True)),
    ("Rprop", dict(maximize=True)),
]

TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    # one or two units in the last place: float32 rounding may tip a bf16/fp16 rounding
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-3),
    torch.float16: dict(rtol=2e-3, atol=1e-4),
    torch.complex64: dict(rtol=1e-5, atol=1e-6),
}


def fused_kw(name: str) -> dict:
    return {"fused": True} if name in HAS_FUSED_FLAG else {}


def make(shapes, dtype, seed=0, steps=5):
    g = torch.Generator().manual_seed(seed)

    def rnd(s):
        if dtype.is_complex:
            return torch.randn(s, generator=g, dtype=dtype)
        return torch.randn(s, generator=g, dtype=torch.float64).to(dtype)

    init = [rnd(s) for s in shapes]
    grads = [[rnd(s) for s in shapes] for _ in range(steps)]
    return init, grads


def run(factory, init, grads, kw):
    params = [p.clone() for p in init]
    opt = factory(params, **kw)
    for gs in grads:
        for p, gr in zip(params, gs):
            p.grad = gr.clone()
        opt.step()
    return params, opt


def assert_same(got, want, dtype):
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, equal_nan=True, **TOL[dtype])


def assert_states(opt_a, opt_b, dtype):
    for pa, pb in zip(opt_a.param_groups[0]["params"], opt_b.param_groups[0]["params"]):
        for k, v in opt_a.state[pa].items():
            w = opt_b.state[pb][k]
            if isinstance(v, torch.Tensor):
                torch.testing.assert_close(v, w, equal_nan=True, **TOL[dtype], check_dtype=False)


LOW = (torch.bfloat16, torch.float16)


def run_lowp_reference(cls, init, grads, kw, dtype):
    """What the fused kernel computes for bf16/fp16 tensors: the eager step in float32 on the
    widened values, every parameter and buffer rounded to ``dtype`` after each step. (The eager
    kernel on bf16 tensors rounds every intermediate, so it is no reference for, e.g., centered
    RMSprop's ``v - avg²``.)"""
    params = [p.float() for p in init]
    opt = cls(params, **kw, foreach=False)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g.float()
        opt.step()
        for p in params:
            p.copy_(p.to(dtype))
            for v in opt.state[p].values():
                if isinstance(v, torch.Tensor) and v.dim() > 0:
                    v.copy_(v.to(dtype))
    return [p.to(dtype) for p in params], opt


def fused_vs_eager(name, kw, shapes, dtype, seed=0, steps=5):
    cls = getattr(polyoptim, name)
    init, grads = make(shapes, dtype, seed, steps)
    if dtype in LOW:
        eager, eo = run_lowp_reference(cls, init, grads, kw, dtype)
    else:
        eager, eo = run(cls, init, grads, {**kw, "foreach": False})
    # torch refuses fused=True for complex parameters; the CPU default still fuses them
    with count_kernel_calls() as calls:
        fused, fo = run(cls, init, grads, {**kw, **({} if dtype.is_complex else fused_kw(name))})
    assert dispatch.use_fused(fo.param_groups[0], fused)
    # the fused kernel ran every step, for every tensor: no silent eager fallback to compare
    assert calls["launch"] == steps and calls["eager"] == 0
    assert_same(fused, eager, dtype)
    assert_states(fo, eo, dtype)


# -- fused == eager -------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "kw"), REPRESENTATIVE, ids=str)
def test_fused_matches_eager_float32(name, kw):
    fused_vs_eager(name, kw, [(7, 5), (3,), (130,)], torch.float32, steps=6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", ["Adam", "SGD", "Rprop"])
def test_fused_matches_eager_other_dtypes(name, dtype):
    kw = dict(REPRESENTATIVE)[name] if name != "SGD" else dict(lr=0.1, momentum=0.9)
    fused_vs_eager(name, kw, [(9, 4), (33,)], dtype, steps=4)


def test_fused_matches_eager_complex():
    fused_vs_eager("Adam", dict(amsgrad=True), [(4, 3), (5,)], torch.complex64)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=st.sampled_from(REPRESENTATIVE),
    shapes=st.lists(st.lists(st.integers(0, 9), max_size=3).map(tuple), min_size=1, max_size=4),
    lr=st.floats(1e-4, 0.3),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_fused_matches_eager_random(config, shapes, lr, seed, dtype):
    """Random hyperparameter values, shapes (empty ones too) and tensor counts: numeric
    hyperparameters are kernel arguments, so these examples reuse the representative kernels."""
    name, kw = config
    fused_vs_eager(name, {**kw, "lr": lr}, shapes, dtype, seed=seed, steps=3)


FLAGS = {
    "SGD": dict(
        momentum=[0, 0.9],
        dampening=[0, 0.5],
        nesterov=[False, True],
        weight_decay=[0, 0.1],
        maximize=[False, True],
    ),
    "Adam": dict(
        amsgrad=[False, True],
        maximize=[False, True],
        weight_decay=[0, 0.1],
        decoupled_weight_decay=[False, True],
    ),
    "AdamW": dict(amsgrad=[False, True], maximize=[False, True], weight_decay=[0, 0.1]),
    "Adamax": dict(maximize=[False, True], weight_decay=[0, 0.1]),
    "Adagrad": dict(maximize=[False, True], weight_decay=[0, 0.1], lr_decay=[0, 0.1]),
    "Adadelta": dict(maximize=[False, True], weight_decay=[0, 0.1]),
    "ASGD": dict(maximize=[False, True], weight_decay=[0, 0.1], t0=[0, 3]),
    "NAdam": dict(
        maximize=[False, True], weight_decay=[0, 0.1], decoupled_weight_decay=[False, True]
    ),
    "RAdam": dict(
        maximize=[False, True], weight_decay=[0, 0.1], decoupled_weight_decay=[False, True]
    ),
    "RMSprop": dict(
        maximize=[False, True], weight_decay=[0, 0.1], momentum=[0, 0.5], centered=[False, True]
    ),
    "Rprop": dict(maximize=[False, True]),
}


def all_configs():
    for name, flags in FLAGS.items():
        for values in itertools.product(*flags.values()):
            kw = dict(zip(flags, values))
            if kw.get("nesterov") and (kw["momentum"] == 0 or kw["dampening"] != 0):
                continue
            yield name, kw


@pytest.mark.slow
@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str
)
@pytest.mark.parametrize(("name", "kw"), list(all_configs()), ids=str)
def test_fused_matches_eager_exhaustive(name, kw, dtype):
    fused_vs_eager(name, kw, [(6, 5), (17,)], dtype, steps=5)


# -- fused == torch.optim -------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "kw"), REPRESENTATIVE, ids=str)
def test_default_path_matches_torch(name, kw):
    """The torch dialect's CPU default (no foreach/fused given) is the fused kernel."""
    init, grads = make([(8, 3), (5,)], torch.float32, seed=3, steps=8)
    want, to = run(getattr(torch.optim, name), init, grads, kw)
    got, po = run(getattr(polyoptim, name), init, grads, kw)
    assert dispatch.use_fused(po.param_groups[0], got)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    for pa, pb in zip(to.param_groups[0]["params"], po.param_groups[0]["params"]):
        assert list(to.state[pa]) == list(po.state[pb])  # torch's keys, in torch's order
        for k, v in to.state[pa].items():
            torch.testing.assert_close(po.state[pb][k], v)


@pytest.mark.parametrize("name", sorted(HAS_FUSED_FLAG))
def test_fused_flag_matches_torch_fused(name):
    kw = dict(lr=0.05, momentum=0.9) if name == "SGD" else {}
    init, grads = make([(8, 3), (5,)], torch.float32, seed=4, steps=6)
    want, _ = run(getattr(torch.optim, name), init, grads, {**kw, "fused": True})
    got, _ = run(getattr(polyoptim, name), init, grads, {**kw, "fused": True})
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_differentiable_stays_eager():
    p = torch.nn.Parameter(torch.ones(3))
    opt = polyoptim.SGD([p], lr=0.1, differentiable=True)
    assert not dispatch.use_fused(opt.param_groups[0], [p])
    assert dispatch.select_kernel(opt.param_groups[0], [p]).__name__ == "run_single"


def test_explicit_for_loop_and_foreach_are_honoured():
    p = torch.ones(3)
    assert not dispatch.use_fused({"foreach": False, "fused": None}, [p])
    assert not dispatch.use_fused({"foreach": True}, [p])
    assert not dispatch.use_fused({"fused": False}, [p])
    assert dispatch.use_fused({"foreach": None, "fused": None}, [p])
    assert dispatch.use_fused({"fused": True}, [p])


# -- mixed precision ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize(
    ("name", "kw"), [("Adam", {}), ("SGD", dict(lr=0.1, momentum=0.9)), ("Rprop", {})], ids=str
)
def test_master_weights_follow_an_fp32_run(name, kw, dtype):
    """With master weights the fp32 copy takes exactly the steps an fp32 run takes (with the
    same, low-precision, gradients) and the parameter is that copy rounded."""
    init32, grads32 = make([(6, 5), (40,)], torch.float32, seed=5, steps=6)
    init = [p.to(dtype) for p in init32]
    grads = [[g.to(dtype) for g in gs] for gs in grads32]
    cls = getattr(polyoptim, name)
    ref, _ = run(
        cls,
        [p.float() for p in init],
        [[g.float() for g in gs] for gs in grads],
        {**kw, "foreach": False},
    )
    for extra in (fused_kw(name), {"foreach": False}):  # fused, and the eager fallback
        params = [p.clone() for p in init]
        opt = cls([{"params": params, "master_weights": True}], **kw, **extra)
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = g.clone()
            opt.step()
        for p, r in zip(params, ref):
            st_ = opt.state[p]
            assert st_["master_param"].dtype == torch.float32
            assert all(
                v.dtype == torch.float32
                for k, v in st_.items()
                if isinstance(v, torch.Tensor) and v.dim() > 0
            )
            torch.testing.assert_close(st_["master_param"], r, rtol=1e-5, atol=1e-6)
            assert torch.equal(p, st_["master_param"].to(dtype))


def test_low_precision_params_with_fp32_state_in_one_pass():
    """bf16 parameters with fp32 buffers (e.g. loaded from an fp32 checkpoint) fuse too."""
    p = torch.randn(50).to(torch.bfloat16)
    opt = polyoptim.Adam([p], fused=True)
    p.grad = torch.randn(50).to(torch.bfloat16)
    opt.step()
    for k in ("exp_avg", "exp_avg_sq"):
        opt.state[p][k] = opt.state[p][k].float()
    q = p.clone()
    st_q = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in opt.state[p].items()}
    p.grad = torch.randn(50).to(torch.bfloat16)
    opt.step()
    assert opt.state[p]["exp_avg"].dtype == torch.float32
    # reference: the same step in fp32, rounded once
    ref = polyoptim.Adam([qf := q.float()], foreach=False)
    ref.state[qf] = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in st_q.items()}
    qf.grad = p.grad.float()
    ref.step()
    torch.testing.assert_close(p, qf.to(torch.bfloat16), rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(opt.state[p]["exp_avg_sq"], ref.state[qf]["exp_avg_sq"])


# -- GradScaler -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(HAS_FUSED_FLAG))
def test_grad_scale_unscaled_inside_the_pass(name):
    kw = dict(lr=0.05, momentum=0.9) if name == "SGD" else {}
    init, grads = make([(5, 4), (7,)], torch.float32, seed=6, steps=4)
    results = []
    for mod in (torch.optim, polyoptim):
        params = [p.clone() for p in init]
        opt = getattr(mod, name)(params, fused=True, **kw)
        for i, gs in enumerate(grads):
            for p, g in zip(params, gs):
                p.grad = g * 1024.0
            opt.grad_scale = torch.tensor(1024.0)
            opt.found_inf = torch.tensor(1.0 if i == 2 else 0.0)  # step 2 is skipped
            opt.step()
        results.append((params, [p.grad.clone() for p in params]))
    (tp, tg), (pp, pg) = results
    for a, b in zip(pp, tp):
        torch.testing.assert_close(a, b)
    for a, b in zip(pg, tg):  # the unscaled gradient is left behind, as torch's fused kernels do
        torch.testing.assert_close(a, b)


def test_grad_scaler_end_to_end():
    model_a = torch.nn.Linear(6, 3)
    model_b = torch.nn.Linear(6, 3)
    model_b.load_state_dict(model_a.state_dict())
    opts = [
        torch.optim.Adam(model_a.parameters(), fused=True),
        polyoptim.Adam(model_b.parameters(), fused=True),
    ]
    scalers = [torch.amp.GradScaler("cpu", init_scale=256.0) for _ in opts]
    for step in range(4):
        x = torch.randn(5, 6, generator=torch.Generator().manual_seed(step))
        for model, opt, sc in zip((model_a, model_b), opts, scalers):
            opt.zero_grad()
            loss = model(x).pow(2).sum() * (float("inf") if step == 1 else 1.0)
            sc.scale(loss).backward()
            sc.step(opt)
            sc.update()
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        torch.testing.assert_close(b, a)


# -- many tensors, memory, cache ------------------------------------------------------------------
def test_one_launch_per_dtype_bucket(monkeypatch):
    calls = []
    real = cpu_fused._launch
    monkeypatch.setattr(cpu_fused, "_launch", lambda *a: (calls.append(len(a[1])), real(*a))[1])
    params = [torch.randn(17) for _ in range(300)]
    params += [torch.randn(9, dtype=torch.float64) for _ in range(21)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = polyoptim.Adam(params, fused=True)
    opt.step()
    opt.step()
    assert sorted(calls) == [21, 21, 300, 300]  # two steps x (float32 bucket, float64 bucket)


def test_tensors_at_different_steps_share_one_launch(monkeypatch):
    """Parameters whose ``step`` differs (one joined later) get their own bias corrections --
    still in one kernel call per step."""
    calls = []
    real = cpu_fused._launch
    monkeypatch.setattr(cpu_fused, "_launch", lambda *a: (calls.append(a[3].shape), real(*a))[1])
    init, grads = make([(6,), (4,), (5,)], torch.float32, seed=8, steps=6)
    results = []
    for kw in ({"foreach": False}, {"fused": True}):
        params = [p.clone() for p in init]
        opt = polyoptim.Adam(params, **kw)
        for s, gs in enumerate(grads):
            for i, (p, g) in enumerate(zip(params, gs)):
                p.grad = g.clone() if (i != 2 or s >= 3) else None  # param 2 starts at step 3
            opt.step()
        results.append(params)
    assert_same(results[1], results[0], torch.float32)
    assert len(calls) == 6  # one launch per step
    assert calls[-1][0] == 2  # two rows of scalars: steps 6 and 3


def test_no_parameter_sized_temporaries():
    n = 1 << 20
    p = torch.randn(n)
    p.grad = torch.randn(n)
    opt = polyoptim.Adam([p], fused=True)
    opt.step()  # state exists, kernel compiled
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        opt.step()
    allocated = sum(max(0, e.cpu_memory_usage) for e in prof.key_averages())
    assert allocated < n * 4 // 16, allocated  # far below one float32 parameter-sized buffer


def test_new_process_reuses_the_disk_cache():
    p = torch.nn.Parameter(torch.ones(10))
    p.grad = torch.ones(10)
    polyoptim.Adam([p], fused=True).step()  # compiled (or cached) in this process
    code = (
        "import json, torch, polyoptim\nfrom polyoptim.kernels import cpu_fused\n"
        "p = torch.nn.Parameter(torch.ones(10)); p.grad = torch.ones(10)\n"
        "polyoptim.Adam([p], fused=True).step()\nprint(json.dumps(cpu_fused.compile_log()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    log = json.loads(out.stdout.strip().splitlines()[-1])
    assert log and all(e["cached"] for e in log), log
    assert cpu_fused.cache_dir().exists()


# -- fallbacks ------------------------------------------------------------------------------------
def test_without_numba_fused_runs_eagerly_with_the_same_numbers(monkeypatch):
    init, grads = make([(5, 3)], torch.float32, seed=9)
    want, _ = run(polyoptim.Adam, init, grads, {"foreach": False})
    monkeypatch.setattr(compiler, "_NUMBA_OK", False)  # as if Numba were not installed
    assert not cpu_fused.available()
    got, opt = run(polyoptim.Adam, init, grads, {"fused": True})
    assert not dispatch.use_fused(opt.param_groups[0], got)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_env_switch_disables_fused(monkeypatch):
    monkeypatch.setenv("POLYOPTIM_FUSED", "0")
    assert not dispatch.use_fused({"fused": True}, [torch.ones(2)])


def test_strided_params_fall_back_per_tensor():
    """A permuted (dense) parameter fuses; one with gaps in memory runs eagerly; same numbers."""
    gen = torch.Generator().manual_seed(11)
    results = []
    for kw in ({"foreach": False}, {"fused": True}):
        permuted = torch.randn(6, 4, generator=torch.Generator().manual_seed(1)).t()
        gappy = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))[:, ::2]
        params = [permuted, gappy, torch.randn(5, generator=torch.Generator().manual_seed(3))]
        opt = polyoptim.Adam(params, **kw)
        for s in range(3):
            gen.manual_seed(s)
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            params[0].grad = params[0].grad.t().contiguous().t()  # laid out like the parameter
            opt.step()
        assert not params[1].is_contiguous() and params[0].stride() == (1, 4)
        results.append(params)
    assert_same(results[1], results[0], torch.float32)


def _asgd_run(kw, ax_offset=None, steps=5):
    """ASGD on two parameters (a big one, so the vector loop runs; a small one, tail only);
    ``ax_offset``: put ``ax`` that many elements into a larger buffer (off the 64-byte grid)."""
    gen = torch.Generator().manual_seed(5)
    params = [torch.randn(40_000, generator=gen), torch.randn(7, generator=gen)]
    opt = polyoptim.ASGD(params, t0=2, **kw)  # mu == 1 for 4 steps (ax copied), then averaged
    for s in range(steps):
        g = torch.Generator().manual_seed(100 + s)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
        if s == 0 and ax_offset is not None:
            for p in params:
                holder = torch.zeros(p.numel() + ax_offset)
                view = holder[ax_offset:]
                view.copy_(opt.state[p]["ax"])
                opt.state[p]["ax"] = view
    return params, [opt.state[p]["ax"] for p in params]


def test_write_only_buffers_use_streaming_stores():
    """ASGD copies the parameter into ``ax`` while ``mu == 1``: ``ax`` is written, never read,
    so the kernel streams it past the cache -- and the numbers stay the eager kernel's."""
    sources = []
    real = cpu_fused.generate
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            cpu_fused, "generate", lambda *a, **k: sources.append(real(*a, **k)) or sources[-1]
        )
        cpu_fused._graphs.clear()
        fused = _asgd_run({})
    eager = _asgd_run({"foreach": False})
    assert_same(fused[0] + fused[1], eager[0] + eager[1], torch.float32)
    streamed = {src.streamed for src in sources}
    assert ("b0",) in streamed  # the copy step
    assert () in streamed  # the averaging step reads ax: plain stores
    assert all("o.stream_store(x_b0" in src.text for src in sources if src.streamed)


@pytest.mark.parametrize("offset", [1, 4])
def test_streaming_falls_back_for_unaligned_buffers(offset):
    """A buffer 4 or 16 bytes off a 64-byte boundary (a loaded view, a foreign buffer) cannot
    take aligned streaming stores: the step uses the plain-store kernel and gives the same
    numbers (with the streaming kernel it would fault)."""
    fused = _asgd_run({}, ax_offset=offset)
    assert all(ax.data_ptr() % 64 for ax in fused[1])
    eager = _asgd_run({"foreach": False}, ax_offset=offset)
    assert_same(fused[0] + fused[1], eager[0] + eager[1], torch.float32)
    assert any(e["name"].endswith("unaligned") for e in compiler.compile_log())


def test_channels_last_params_fuse():
    w = torch.randn(4, 3, 2, 2).to(memory_format=torch.channels_last)
    init, grads = (
        [w],
        [[torch.randn(4, 3, 2, 2).to(memory_format=torch.channels_last)] for _ in range(3)],
    )
    eager, _ = run(polyoptim.SGD, init, grads, dict(lr=0.1, momentum=0.9, foreach=False))
    fused, _ = run(polyoptim.SGD, init, grads, dict(lr=0.1, momentum=0.9, fused=True))
    assert_same(fused, eager, torch.float32)


# -- any rule written to the conventions is fused -------------------------------------------------
def _lion_update(ops, p, g, m, *, lr, beta1, beta2):
    u = ops.sign(ops.lerp(m, g, 1 - beta1))
    return ops.add(p, u, -lr), ops.lerp(m, g, 1 - beta2)


def _lion_prepare(hp, state, fresh):
    step_of(state)
    b1, b2 = hp["betas"]
    return {"lr": float(hp["lr"]), "beta1": b1, "beta2": b2}


LION = torch_prologue(
    Rule(
        "lion", (Buffer("exp_avg"),), _lion_update, _lion_prepare, host_state={"step": step_counter}
    ),
    decoupled_key="decoupled",
)


class Lion(polyoptim.Optimizer):
    rule = LION

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, **flags):
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=betas,
                weight_decay=weight_decay,
                decoupled=True,
                maximize=False,
                **flags,
            ),
        )


def test_a_new_rule_gets_a_fused_kernel():
    init, grads = make([(7, 3), (11,)], torch.float32, seed=10)
    before = len(cpu_fused.compile_log())
    eager, _ = run(Lion, init, grads, dict(weight_decay=0.1, foreach=False))
    fused, opt = run(Lion, init, grads, dict(weight_decay=0.1))
    assert dispatch.use_fused(opt.param_groups[0], fused)
    assert_same(fused, eager, torch.float32)
    names = [e["name"] for e in cpu_fused.compile_log()[before:]]
    assert any(n.startswith("lion") for n in names), names


def _branchy_update(ops, p, g, *, lr):
    if g > 0:  # data-dependent control flow: not compilable, runs eagerly
        return (p,)
    return (p - lr * g,)


def test_untraceable_rule_runs_eagerly():
    rule = Rule("branchy", (), _branchy_update, lambda hp, st, fresh: {"lr": hp["lr"]})

    class Branchy(polyoptim.Optimizer):
        pass

    Branchy.rule = rule
    p = torch.ones(1)
    p.grad = -torch.ones(1)
    Branchy([p], dict(lr=0.5)).step()  # a one-element tensor: `if g > 0` works eagerly
    assert torch.equal(p, torch.tensor([1.5]))


def test_guards_pick_a_kernel_per_branch_and_numbers_reuse_it():
    """``weight_decay != 0`` selects a kernel variant; a new lr value does not compile."""
    p = torch.randn(8)
    opt = polyoptim.Adam([p], fused=True, weight_decay=0.0)
    p.grad = torch.randn(8)
    opt.step()
    n = len(cpu_fused.compile_log())
    for lr in (0.1, 0.01, 0.5):
        opt.param_groups[0]["lr"] = lr
        p.grad = torch.randn(8)
        opt.step()
    assert len(cpu_fused.compile_log()) == n
    opt.param_groups[0]["weight_decay"] = 0.1
    eager = polyoptim.Adam([q := p.clone()], foreach=False, weight_decay=0.1, lr=0.5)
    eager.state[q] = {k: v.clone() for k, v in opt.state[p].items()}
    p.grad = torch.randn(8)
    q.grad = p.grad.clone()
    opt.step()
    eager.step()
    torch.testing.assert_close(p, q)


def test_in_place_writes_are_visible_to_autograd():
    """The pass writes through raw pointers; version counters still move, so autograd refuses
    a backward through a graph that saved the old parameter -- as after torch's for-loop step
    (torch's own fused CPU Adam leaves the counter alone)."""
    w = torch.nn.Parameter(torch.randn(4))
    loss = (w * w).sum()  # saves w for backward
    w.grad = torch.ones(4)
    before = w._version
    polyoptim.Adam([w], fused=True).step()
    assert w._version > before
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# -- polyoptim bench (plumbing only: benchmarks are never timed tests) -------------------------
def test_bench_bytes_per_element_come_from_the_rule():
    from polyoptim.bench import bytes_per_element

    def opt(cls, **kw):
        p = torch.nn.Parameter(torch.ones(4))
        p.grad = torch.ones(4)
        o = cls([p], **kw)
        o.step()
        return o

    assert bytes_per_element(opt(polyoptim.Adam)) == 28  # p, g, m, v read; p, m, v written
    assert bytes_per_element(opt(polyoptim.Adam, amsgrad=True)) == 36
    assert bytes_per_element(opt(polyoptim.SGD, lr=0.1, momentum=0.9)) == 20
    assert bytes_per_element(opt(polyoptim.SGD, lr=0.1)) == 12


def test_bench_runs_and_writes_its_outputs(tmp_path, monkeypatch):
    from polyoptim import bench

    monkeypatch.setitem(bench.SIZES, "t", (3, 1000))
    monkeypatch.setattr(bench, "ROOF_ELEMENTS", 100_000)
    monkeypatch.setattr(bench, "fresh_process_first_call", lambda: None)
    report = bench.run_bench(["adam", "rprop"], ["t"], repeats=1)
    written = bench.write_outputs(report, tmp_path)
    assert {p.name for p in written} >= {"bench.md", "bench.json"}
    rows = {r["algorithm"]: r for r in report["results"]}
    assert set(rows["adam"]["ms"]) == set(bench.PATHS)  # torch has a fused Adam
    assert "torch_fused" not in rows["rprop"]["ms"]  # ... and no fused Rprop
    assert rows["adam"]["roof_gbps"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert "| adam | (t) 3×1000 | 28 |" in md
    assert set(rows["adam"]["speedup"]) == set(bench.PATHS) - {"poly_fused"}
    assert rows["adam"]["ceiling"] > 0
    assert 0 < rows["adam"]["host_ms"] < rows["adam"]["ms"]["poly_fused"]


def test_bench_host_time_is_the_step_outside_its_kernel_calls(monkeypatch):
    """On a fake clock: a step of 2 + 5 + 5 + 1 seconds, two kernel calls of 5 each."""
    import time

    from polyoptim import bench
    from polyoptim.kernels import cpu_fused

    now = [0.0]

    def fake_launch(*args, **kwargs):
        now[0] += 5.0

    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(cpu_fused, "_launch", fake_launch)

    def step():
        now[0] += 2.0
        cpu_fused._launch()
        cpu_fused._launch()
        now[0] += 1.0

    spent: list[float] = []
    clocked = bench._clocking_kernels(step, spent)
    clocked()
    clocked()
    assert spent == [10.0, 10.0]
    assert cpu_fused._launch is fake_launch  # put back after each step


def test_bench_speedups_are_paired_by_round():
    """Each ratio compares two steps of the same round: rounds 2 and 3 ran on a machine 4x
    slower, and fused was timed in the fast part of round 2 -- the ratio of medians would say
    8x, the paired ratio says the 2x that held in the rounds where both saw the same machine."""
    from polyoptim import bench

    times = {
        "torch_fused": [2.0, 8.0, 8.0],  # rounds 2 and 3 run on a slowed machine
        "torch_foreach": [6.0, 24.0, 24.0],
        "poly_fused": [1.0, 1.0, 4.0],
    }
    moved = 12 * bench.ROOF_ELEMENTS  # as many bytes as the triad: at the roof, triad time
    up, ceiling = bench.speedups(times, [0.5, 2.0, 2.0], moved)
    assert up == {"torch_fused": 2.0, "torch_foreach": 6.0}
    assert ceiling == 4.0  # torch fused is 4x slower than the roof in every round
    assert bench.speedups(times, None, moved)[1] == 0.0


@pytest.mark.parametrize("fused", [None, False])
def test_master_weights_kept_for_a_stateless_rule(fused):
    """Plain SGD has no state, yet its fp32 master copy must persist between steps (it was
    written into a throwaway dict, so bf16 weights never moved)."""
    w = torch.ones(4, dtype=torch.bfloat16)
    opt = polyoptim.SGD([{"params": [w], "master_weights": True}], lr=1e-3, fused=fused)
    master = torch.ones(4)
    for _ in range(10):
        w.grad = torch.ones(4, dtype=torch.bfloat16)
        opt.step()
        master -= 1e-3
    torch.testing.assert_close(w, master.to(torch.bfloat16), rtol=0, atol=0)
    assert w[0].item() < 1.0


@pytest.mark.parametrize(
    "cls, kw",
    [
        (polyoptim.AdamW, dict(lr=1e-3)),
        (polyoptim.SGD, dict(lr=1e-3, momentum=0.9)),
        (polyoptim.SGD, dict(lr=1e-3)),  # stateless: the master copy is all its state
        (polyoptim.NAdam, dict(lr=1e-3)),  # host state besides ``step`` (mu_product)
    ],
)
@pytest.mark.parametrize("path", [{}, {"foreach": False}], ids=["fused", "eager"])
def test_master_weights_survive_a_checkpoint(cls, kw, path):
    """torch's ``load_state_dict`` casts floating state to the parameter's dtype; the fp32
    master copy and fp32 buffers of a bf16 parameter must come back as float32, so a run
    resumed from a checkpoint is the uninterrupted run, bit for bit."""
    import io

    gen = torch.Generator().manual_seed(3)
    w0 = torch.randn(257, generator=gen).to(torch.bfloat16)
    grads = [torch.randn(257, generator=gen).to(torch.bfloat16) for _ in range(12)]

    def make(w):
        return cls([{"params": [w], "master_weights": True}], **path, **kw)

    a = w0.clone()
    opt_a = make(a)
    for g in grads:
        a.grad = g.clone()
        opt_a.step()

    b = w0.clone()
    opt_b = make(b)
    for g in grads[:6]:
        b.grad = g.clone()
        opt_b.step()
    buf = io.BytesIO()
    torch.save({"w": b, "opt": opt_b.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)

    c = ckpt["w"].clone()
    opt_c = make(c)
    opt_c.load_state_dict(ckpt["opt"])
    for k, v in opt_b.state[b].items():
        assert opt_c.state[c][k].dtype == v.dtype, k
    assert opt_c.state[c]["master_param"].dtype == torch.float32
    for g in grads[6:]:
        c.grad = g.clone()
        opt_c.step()
    assert torch.equal(c, a)
    assert opt_c.state[c].keys() == opt_a.state[a].keys()
    for k, v in opt_a.state[a].items():
        assert torch.equal(opt_c.state[c][k], v), k


def test_master_weights_checkpoint_is_copied_not_shared():
    """The loaded fp32 state is the optimizer's own (as torch's cast copy is): stepping does
    not write into the state dict it came from."""
    w = torch.ones(8, dtype=torch.bfloat16)
    opt = polyoptim.Adam([{"params": [w], "master_weights": True}], lr=1e-3)
    w.grad = torch.ones(8, dtype=torch.bfloat16)
    opt.step()
    sd = opt.state_dict()
    w2 = w.clone()
    opt2 = polyoptim.Adam([{"params": [w2], "master_weights": True}], lr=1e-3)
    opt2.load_state_dict(sd)
    before = sd["state"][0]["master_param"].clone()
    w2.grad = torch.ones(8, dtype=torch.bfloat16)
    opt2.step()
    assert torch.equal(sd["state"][0]["master_param"], before)
    assert opt.state[w]["master_param"] is sd["state"][0]["master_param"]


def test_checkpoint_without_master_weights_is_cast_as_torch_casts():
    """Groups without ``master_weights`` keep torch's rule: floating state takes the
    parameter's dtype."""
    w = torch.ones(8)
    opt = polyoptim.Adam([w], lr=1e-3)
    w.grad = torch.ones(8)
    opt.step()
    w16 = torch.ones(8, dtype=torch.bfloat16)
    opt16 = polyoptim.Adam([w16], lr=1e-3)
    opt16.load_state_dict(opt.state_dict())
    assert opt16.state[w16]["exp_avg"].dtype == torch.bfloat16
    assert opt16.state[w16]["step"].dtype == torch.float32
