"""The fused Triton kernel (kernels/triton_fused.py), run in Triton's interpreter on CPU tensors.

With ``POLYOPTIM_KERNEL=triton`` every fused step runs the generated Triton kernels whatever the
device; CPU tensors run them in Triton's interpreter -- the same kernel text a GPU compiles, so
these tests prove the generated kernels correct on a machine without a GPU (they prove nothing
about GPU speed).

* Triton == eager for every algorithm and flag of the torch dialect (a representative set by
  default; every flag combination x float32/float64/bfloat16/float16 under ``-m slow``) and for
  every element-wise optimizer of the Paddle and MindSpore dialects;
* fp16/bf16 parameters with fp32 master weights updated in the same pass;
* ``GradScaler``: the scale divided out in the kernel, ``found_inf`` read by the kernel;
* ``capturable=True``: the step counters and bias corrections on the device, with no host
  synchronisation (counted);
* many small tensors and a large one in one launch (the chunk table).

The case lists are those of the CPU kernel's tests (tests/test_fused_kernels.py and
tests/test_fused_default_coverage.py).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from kernel_calls import count_kernel_calls  # noqa: E402
from test_fused_default_coverage import CLASSES, NOT_ELEMENTWISE  # noqa: E402
from test_fused_kernels import (  # noqa: E402
    REPRESENTATIVE,
    TOL,
    all_configs,
    assert_same,
    assert_states,
    fused_kw,
    make,
    run,
    run_lowp_reference,
)
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import polyoptim  # noqa: E402
from polyoptim.kernels import dispatch, triton_fused  # noqa: E402
from polyoptim.rules import paddle as paddle_rules  # noqa: E402
from polyoptim.rules.base import Rule, step_counter, step_of  # noqa: E402


@pytest.fixture(autouse=True)
def triton_everywhere(monkeypatch):
    """Every fused step runs the Triton kernel (in the interpreter: the tensors are on the CPU)."""
    monkeypatch.setenv("POLYOPTIM_KERNEL", "triton")
    assert triton_fused.available()


def relerr(got, want) -> float:
    """``max|a - b| / max|b|`` over the tensors (the parity summary's measure)."""
    worst = 0.0
    for a, b in zip(got, want):
        a, b = torch.view_as_real(a) if a.is_complex() else a, b
        b = torch.view_as_real(b) if b.is_complex() else b
        scale = max(float(b.double().abs().max()) if b.numel() else 0.0, 1e-12)
        if b.numel():
            worst = max(worst, float((a.double() - b.double()).abs().max()) / scale)
    return worst


def triton_vs_eager(name, kw, shapes, dtype, record_property, seed=0, steps=4):
    """The Triton kernel's run against the eager kernel's (for bf16/fp16: the fp32 run rounded
    after each step, as the fused kernels compute it)."""
    cls = getattr(polyoptim, name)
    init, grads = make(shapes, dtype, seed, steps)
    if dtype in (torch.bfloat16, torch.float16):
        eager, eo = run_lowp_reference(cls, init, grads, kw, dtype)
    else:
        eager, eo = run(cls, init, grads, {**kw, "foreach": False})
    with count_kernel_calls() as calls:
        fused, fo = run(cls, init, grads, {**kw, **({} if dtype.is_complex else fused_kw(name))})
    assert dispatch.fused_backend(fused) is triton_fused
    assert calls["launch"] == steps and calls["eager"] == 0  # the kernel ran, every step
    assert_same(fused, eager, dtype)
    assert_states(fo, eo, dtype)
    record_property("triton_relerr", relerr(fused, eager))


# -- Triton == eager, torch dialect ---------------------------------------------------------------
@pytest.mark.parametrize(("name", "kw"), REPRESENTATIVE, ids=str)
def test_triton_matches_eager_float32(name, kw, record_property):
    triton_vs_eager(name, kw, [(7, 5), (3,), (130,)], torch.float32, record_property)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", ["Adam", "SGD", "Rprop"])
def test_triton_matches_eager_other_dtypes(name, dtype, record_property):
    kw = dict(REPRESENTATIVE)[name] if name != "SGD" else dict(lr=0.1, momentum=0.9)
    triton_vs_eager(name, kw, [(9, 4), (33,)], dtype, record_property)


def test_triton_matches_eager_complex(record_property):
    triton_vs_eager("Adam", dict(amsgrad=True), [(4, 3), (5,)], torch.complex64, record_property)


@pytest.mark.slow
@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str
)
@pytest.mark.parametrize(("name", "kw"), list(all_configs()), ids=str)
def test_triton_matches_eager_exhaustive(name, kw, dtype, record_property):
    triton_vs_eager(name, kw, [(6, 5), (17,)], dtype, record_property)


# -- Triton == eager, every element-wise optimizer of every dialect -------------------------------
ELEMENTWISE = [c for c in CLASSES if c[1] not in NOT_ELEMENTWISE[c[0]]]


@pytest.mark.parametrize(
    "dialect, name, make_step, cls", ELEMENTWISE, ids=[f"{c[0]}-{c[1]}" for c in ELEMENTWISE]
)
def test_every_dialect_optimizer_runs_triton_with_eager_numbers(
    dialect, name, make_step, cls, monkeypatch, record_property
):
    step = make_step(cls)
    with count_kernel_calls() as calls:
        for _ in range(3):
            step()
    assert calls["launch"] and not calls["eager"]
    monkeypatch.setenv("POLYOPTIM_FUSED", "0")  # the same steps with the eager kernels
    reference = make_step(cls)
    for _ in range(3):
        reference()
    got, want = step.params, reference.params
    for a, b in zip(got, want):
        torch.testing.assert_close(a.detach(), b.detach(), **TOL[torch.float32])
    record_property("triton_relerr", relerr([p.detach() for p in got], [p.detach() for p in want]))


# -- mixed precision ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize(
    ("name", "kw"),
    [("Adam", {}), ("SGD", dict(lr=0.1, momentum=0.9)), ("Rprop", {}), ("NAdam", {})],
    ids=str,
)
def test_master_weights_in_the_same_pass(name, kw, dtype, record_property):
    """The fp32 master copy takes exactly the steps of an fp32 run and the parameter is that
    copy rounded -- both written by the one Triton pass."""
    init32, grads32 = make([(6, 5), (40,)], torch.float32, seed=5, steps=4)
    init = [p.to(dtype) for p in init32]
    grads = [[g.to(dtype) for g in gs] for gs in grads32]
    cls = getattr(polyoptim, name)
    ref, _ = run(
        cls,
        [p.float() for p in init],
        [[g.float() for g in gs] for gs in grads],
        {**kw, "foreach": False},
    )
    params = [p.clone() for p in init]
    opt = cls([{"params": params, "master_weights": True}], **kw, **fused_kw(name))
    with count_kernel_calls() as calls:
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = g.clone()
            opt.step()
    assert calls["launch"] == len(grads) and not calls["eager"]
    masters = [opt.state[p]["master_param"] for p in params]
    for p, m, r in zip(params, masters, ref):
        torch.testing.assert_close(m, r, rtol=1e-5, atol=1e-6)
        assert torch.equal(p, m.to(dtype))
    record_property("triton_relerr", relerr(masters, ref))


# -- GradScaler -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "Adagrad"])
def test_grad_scale_and_found_inf_inside_the_kernel(name, monkeypatch):
    """torch's fused CPU optimizers against the Triton kernel given ``grad_scale`` and
    ``found_inf`` (step 2 is skipped), with no host read of ``found_inf``."""
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
            opt.found_inf = torch.tensor(1.0 if i == 2 else 0.0)
            if mod is polyoptim:
                with no_host_reads(opt.found_inf) as reads:
                    opt.step()
                assert reads == [], reads
            else:
                opt.step()
        step = [opt.state[p]["step"].item() for p in params] if name != "SGD" else []
        results.append((params, [p.grad.clone() for p in params], step))
    (tp, tg, ts), (pp, pg, ps) = results
    for a, b in zip(pp + pg, tp + tg):
        torch.testing.assert_close(a, b)
    assert ps == ts  # the skipped step did not count


def test_grad_scaler_end_to_end():
    model_a, model_b = torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)
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


# -- capturable: no host synchronisation ----------------------------------------------------------
class _SyncingOps(TorchDispatchMode):
    """Records the aten operations that bring a tensor's value to the host (a synchronisation
    on a GPU), however they are reached -- also from C++, where no Python method is called."""

    SYNCING = {"_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select"}

    def __init__(self, reads: list[str]) -> None:
        super().__init__()
        self.reads = reads

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in self.SYNCING:
            self.reads.append(f"aten.{func.overloadpacket.__name__}")
        return func(*args, **(kwargs or {}))


class no_host_reads:  # noqa: N801 - used as a context manager
    """Record every read of a tensor's value into Python (``item``, ``float``, ``int``,
    ``bool``, ``tolist``) -- each one a host synchronisation for a GPU tensor -- within the
    block, and (with no ``watch``) every aten operation that reads a value to the host.
    ``watch``: only Python reads of these tensors."""

    _METHODS = ("item", "__float__", "__int__", "__bool__", "tolist", "__index__")

    def __init__(self, *watch: torch.Tensor) -> None:
        self.watch = watch
        self.reads: list[str] = []
        self.saved: dict[str, object] = {}
        self.mode = None if watch else _SyncingOps(self.reads)

    def __enter__(self) -> list[str]:
        if self.mode is not None:
            self.mode.__enter__()
        for name in self._METHODS:
            real = getattr(torch.Tensor, name)
            self.saved[name] = real

            def spy(t, *a, _real=real, _name=name, **k):
                if not self.watch or any(t is w for w in self.watch):
                    self.reads.append(f"{_name} of {tuple(t.shape)}")
                return _real(t, *a, **k)

            setattr(torch.Tensor, name, spy)
        return self.reads

    def __exit__(self, *exc) -> None:
        for name, real in self.saved.items():
            setattr(torch.Tensor, name, real)
        if self.mode is not None:
            self.mode.__exit__(*exc)


CAPTURABLE = [
    ("Adam", {}),
    ("Adam", dict(amsgrad=True, weight_decay=0.1)),
    ("AdamW", {}),
    ("Adamax", {}),
    ("NAdam", {}),
    ("Adadelta", {}),
    ("RMSprop", dict(centered=True, momentum=0.5)),
    ("Rprop", {}),
    # RAdam's ρ_t > 5 (first true at step 6) and ASGD's μ = 1 are decided per tensor in the kernel
    ("RAdam", {}),
    ("RAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("ASGD", {}),
    ("ASGD", dict(t0=3.0, lambd=0.01, weight_decay=0.05)),
]


@pytest.mark.parametrize(("name", "kw"), CAPTURABLE, ids=str)
def test_capturable_step_reads_nothing_on_the_host(name, kw, monkeypatch, record_property):
    """``capturable=True``: the step counters stay tensors and the bias corrections are
    computed from them on the tensors' device -- not one value is read into Python during a
    step -- and the numbers are those of the eager capturable step. (torch refuses
    ``capturable`` for CPU parameters; the check is lifted so the interpreter can run it.)"""
    cls = getattr(polyoptim, name)
    monkeypatch.setattr(cls, "_validate_group", lambda self, group, params: None)
    init, grads = make([(6, 5), (17,), (3,)], torch.float32, seed=2, steps=8)
    eager, eo = run(cls, init, grads, {**kw, "capturable": True, "foreach": False})
    params = [p.clone() for p in init]
    opt = cls(params, capturable=True, **kw)
    for i, gs in enumerate(grads):
        for p, g in zip(params, gs):
            p.grad = g.clone()
        with count_kernel_calls() as calls, no_host_reads() as reads:
            opt.step()
        if i:  # (state creation on the first step reads hyperparameters, as torch's does)
            assert reads == [], reads
        assert calls["launch"] == 1 and not calls["eager"]
    assert_same(params, eager, torch.float32)
    assert_states(opt, eo, torch.float32)
    record_property("triton_relerr", relerr(params, eager))


def _branchy_prepare(hp, state, fresh):
    t = step_of(state)
    return {"lr": hp["lr"] * (0.5 if t > 2 else 1.0)}  # a host branch on the device step


def _branchy_update(ops, p, g, *, lr):
    return (ops.add(p, g, -lr),)


#: a rule whose ``prepare`` decides on the host from its step counter
BRANCHY = Rule(
    name="branchy",
    buffers=(),
    update=_branchy_update,
    prepare=_branchy_prepare,
    host_state={"step": step_counter},
)


@pytest.mark.parametrize("rule", [BRANCHY, paddle_rules.radam], ids=lambda r: r.name)
def test_capturable_falls_back_to_host_scalars_where_prepare_cannot_run_on_the_device(rule):
    """A ``prepare`` that branches on a device value (a rule of one's own), or uses a tensor
    method device values lack (Paddle's RAdam, ``mul_`` on its β-pows): the capturable step
    computes the scalars on the host instead -- the same numbers, nothing half-written."""
    init, grads = make([(5,), (3, 2)], torch.float32, seed=3, steps=7)
    hp = {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    hp.update(weight_decay=0.0, maximize=False, decoupled_weight_decay=False)
    results = []
    eager = {"fused": False, "foreach": False}
    for backend, extra in (
        (dispatch.run_group, eager),
        (triton_fused.fused_step, {"capturable": True}),
    ):
        params = [p.clone() for p in init]
        states = [{} for _ in params]
        for step, gs in enumerate(grads):
            for p, st in zip(params, states):
                if not step:
                    rule.init_state(p, hp, st)
            backend(rule, {**hp, **extra}, params, list(gs), states, [not step] * len(params))
        results.append(params)
    assert_same(results[1], results[0], torch.float32)


# -- many tensors: the chunk table ----------------------------------------------------------------
def test_thousands_of_small_tensors_and_a_large_one_in_one_launch(monkeypatch):
    monkeypatch.setattr(triton_fused, "CHUNK", 4096)  # several chunks for the large tensor
    monkeypatch.setattr(triton_fused, "_CHUNKS", {})
    shapes = [(3,)] * 1500 + [(5, 7)] * 300 + [(10_000,)]
    init, grads = make(shapes, torch.float32, seed=7, steps=2)
    eager, _ = run(polyoptim.Adam, init, grads, {"foreach": False})
    launches = []
    real = triton_fused._launch
    monkeypatch.setattr(
        triton_fused,
        "_launch",
        lambda k, grid, *a, **kw: (launches.append(grid), real(k, grid, *a, **kw)),
    )
    fused, _ = run(polyoptim.Adam, init, grads, {"fused": True})
    assert_same(fused, eager, torch.float32)
    # one launch per step; a chunk per small tensor and ceil(10000 / 4096) for the large one
    assert launches == [(1800 + 3,)] * 2


def test_chunk_table_cuts_tensors_into_chunks():
    t, o, n = triton_fused.chunk_table([5, 0, 9], torch.device("cpu"))
    assert n.tolist() == [5, 0, 9]
    per = triton_fused.CHUNK
    assert t.tolist() == [0] + [2] * (-(-9 // per))
    assert o.tolist()[:1] == [0]


def test_kernel_source_is_generated_from_the_rule():
    """The kernel text comes from the traced update: Adam's has the lerp, the addcmul's fused
    multiply-add and the division by the bias-corrected denominator; a bf16 bucket converts
    with round-to-nearest-even."""
    from polyoptim.kernels.trace import trace
    from polyoptim.kernels.triton_codegen import generate
    from polyoptim.rules.adam import adam

    sc = dict(beta1=0.9, beta2=0.999, eps=1e-8, step_size=1e-3, bc2_sqrt=0.1, amsgrad=False)
    g = trace(adam.update, (True, True, False), sc)
    src = generate(g, {"p": "bf16", "g": "bf16", "b0": "f32", "b1": "f32"}, found_inf=True)
    assert src.slots == ("p", "g", "b0", "b1")
    assert "o.lerp(" in src.text and "tl.fma(" in src.text and "o.div(" in src.text
    assert "o.bf16_store(" in src.text and "tl.load(found) == 0" in src.text


def test_cuda_default_without_triton_is_foreach(monkeypatch):
    """On CUDA with no fused kernel at hand the default is torch's CUDA default, foreach."""
    monkeypatch.delenv("POLYOPTIM_KERNEL")
    monkeypatch.setattr(triton_fused, "_TRITON_OK", False)

    class FakeCuda:
        is_cuda, is_cpu = True, False
        device = torch.device("cuda", 0)

    assert dispatch.fused_backend([FakeCuda()]) is None
    assert dispatch.select_kernel({}, [FakeCuda()]).__name__ == "run_foreach"
    assert dispatch.select_kernel({"foreach": False}, [FakeCuda()]).__name__ == "run_single"
    monkeypatch.setattr(triton_fused, "_TRITON_OK", True)
    assert dispatch.fused_backend([FakeCuda()]) is triton_fused
    assert dispatch.select_kernel({}, [FakeCuda()]) is triton_fused.run_prepared


def test_env_numba_keeps_the_cpu_kernel(monkeypatch):
    monkeypatch.setenv("POLYOPTIM_KERNEL", "numba")
    from polyoptim.kernels import cpu_fused

    want = cpu_fused if cpu_fused.available() else None
    assert dispatch.fused_backend([torch.ones(2)]) is want


# -- the kernels compile for a GPU (ahead of time: no GPU needed) ---------------------------------
SIGNATURE = {
    "addrs": "*i64",
    "numels": "*i64",
    "chunk_t": "*i32",
    "chunk_o": "*i64",
    "srow": "*i32",
    "scal": "*fp64",
    "gscale": "*fp32",
    "found": "*fp32",
    "NS": "constexpr",
    "NK": "constexpr",
    "CHUNK": "constexpr",
    "BLOCK": "constexpr",
}


def compile_for_gpu(kernel, arch: int = 90) -> str:
    """Compile a generated kernel for an NVIDIA GPU of compute capability ``arch`` (Triton's
    own compiler and the ``ptxas`` its wheel ships: no GPU needed); returns the PTX."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.interpreter import InterpretedFunction

    if isinstance(kernel, InterpretedFunction):  # TRITON_INTERPRET=1: nothing to compile
        pytest.skip("TRITON_INTERPRET=1 makes every kernel an interpreted function")
    src = ASTSource(
        fn=kernel,
        signature=SIGNATURE,
        constexprs={"NS": 8, "NK": 8, "CHUNK": triton_fused.CHUNK, "BLOCK": triton_fused.BLOCK},
    )
    try:
        compiled = triton.compile(
            src, target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": False}
        )
    except (FileNotFoundError, PermissionError) as e:  # pragma: no cover - no toolchain
        pytest.skip(f"Triton's CUDA toolchain is not usable here: {e}")
    assert compiled.asm["cubin"]  # assembled by ptxas: a loadable GPU binary
    return compiled.asm["ptx"]


def _generated(dtypes, **kw):
    from polyoptim.kernels.trace import trace
    from polyoptim.kernels.triton_codegen import generate
    from polyoptim.rules.adam import adam

    sc = dict(beta1=0.9, beta2=0.999, eps=1e-8, step_size=1e-3, bc2_sqrt=0.1, amsgrad=True)
    src = generate(trace(adam.update, (True, True, True), sc), dtypes, **kw)
    return triton_fused._load(src, "adam (compile test)", interpret=False)


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "unaligned"])
def test_adam_kernel_compiles_for_an_h100_class_gpu(aligned):
    """The float32 Adam kernel assembles for sm_90; with 16-byte aligned arrays the whole
    blocks use 128-bit loads and stores; division and square root are the IEEE ones."""
    f32 = dict.fromkeys(("p", "g", "b0", "b1", "b2"), "f32")
    ptx = compile_for_gpu(_generated(f32, aligned=aligned, unscale=True, found_inf=True))
    assert ("ld.global.v4.b32" in ptx) == aligned
    assert ("st.global.v4.b32" in ptx) == aligned
    assert "div.rn.f32" in ptx and "sqrt.rn.f32" in ptx
    assert "div.full.f32" not in ptx and "sqrt.approx" not in ptx


def test_mixed_precision_kernel_compiles_for_a_gpu():
    """bf16 parameter and gradient, fp32 buffers and master copy, in one kernel."""
    dtypes = {"p": "bf16", "g": "bf16", "b0": "f32", "b1": "f32", "b2": "f32", "m": "f32"}
    ptx = compile_for_gpu(_generated(dtypes, master=True, aligned=True))
    assert "ld.global.v4.b32" in ptx  # the float32 arrays, 4 elements at a time


@pytest.mark.slow
def test_every_generated_kernel_compiles_for_a_gpu(record_property):
    """Every kernel the representative configurations and dtypes generate (aligned variants
    included) assembles for sm_90 and sm_80."""
    import importlib.util
    import sys

    from polyoptim.kernels.compiler import cache_dir

    for name, kw in REPRESENTATIVE:
        for dtype in (torch.float32, torch.float64, torch.bfloat16):
            make_params = make([(6, 5), (17,)], dtype, 0, 1)
            run(getattr(polyoptim, name), *make_params, {**kw, **fused_kw(name)})
    modules = {e["module"].removesuffix("_interpreted") for e in triton_fused.compile_log()}
    compiled = 0
    for module in sorted(modules):
        spec = importlib.util.spec_from_file_location(module, cache_dir() / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
        for arch in (80, 90):
            compile_for_gpu(mod.kernel, arch)
            compiled += 1
    assert compiled >= 2 * len(REPRESENTATIVE)
    record_property("gpu_compiled_kernels", compiled)


def test_unaligned_arrays_take_the_kernel_without_alignment_hints(monkeypatch):
    """Parameters 4 bytes off a 16-byte boundary (views into a larger buffer) run the variant
    that promises the compiler nothing about alignment -- with the same numbers."""
    init, grads = make([(37,), (5, 3)], torch.float32, seed=12, steps=3)
    eager, _ = run(polyoptim.Adam, init, grads, {"foreach": False})
    holders = [torch.zeros(p.numel() + 1) for p in init]
    params = [h[1:].view(p.shape) for h, p in zip(holders, init)]
    for p, q in zip(params, init):
        p.copy_(q)
    assert all(p.data_ptr() % 16 for p in params)
    opt = polyoptim.Adam(params, fused=True)
    picked = []
    real = triton_fused._kernel_for
    monkeypatch.setattr(triton_fused, "_kernel_for", lambda *a: (picked.append(a[-1]), real(*a))[1])
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()
    assert_same(params, eager, torch.float32)
    assert picked == [False] * len(grads)  # the variant without alignment hints, every step


# -- TRITON_INTERPRET=1: the way to run the kernels on a machine without a GPU ----------
_UNDER_TRITON_INTERPRET = """
import torch
from polyoptim import mindspore as ms
from polyoptim.kernels import triton_fused
import os

def run(kernel):
    os.environ["POLYOPTIM_KERNEL"] = kernel
    gen = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.rand(40, generator=gen) + 0.5) for _ in range(2)]
    opt = ms.FTRL(ps, learning_rate=0.05, lr_power=-0.5, l1=0.01, l2=0.001)
    for _ in range(3):
        opt(tuple(torch.randn(40, generator=gen) for _ in ps))
    return ps

launched = []
real = triton_fused._launch
triton_fused._launch = lambda *a, **k: (launched.append(1), real(*a, **k))
got, want = run("triton"), run("numba")
assert launched, "the Triton kernel did not run"
for a, b in zip(got, want):
    torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-7)
print("ok", len(launched))
"""


def test_kernels_with_a_power_run_under_triton_interpret():
    """With ``TRITON_INTERPRET=1`` set before Triton is imported, ``triton.jit`` interprets
    every kernel itself; a kernel's ``x ** y`` must still reach the portable power (the
    interpreter has no libdevice). It did not: MindSpore's FTRL (``accum ** -lr_power`` per
    element) failed with a ``TypeError`` inside the kernel. Now it equals the CPU kernel."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _UNDER_TRITON_INTERPRET],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")
