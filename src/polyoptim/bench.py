"""``polyoptim bench``: optimizer step time and bandwidth, torch's paths against polyoptim's.

For each algorithm and each problem size, one run measures side by side

* torch's for-loop, foreach and (where torch has it) fused implementations,
* polyoptim's eager kernel and its fused CPU kernel,

and, in the same run, the machine's streaming-bandwidth roof (an in-place triad
``a ← a + s·b``, with Numba and with torch; the faster counts). An optimizer step is
memory-bound, so each time is also given as effective GB/s: the bytes the update must move
(every array read once, every changed array written once; Adam: 28 bytes per float32 parameter,
derived from the rule itself) divided by the step time. Times are medians of repeated steps,
taken round-robin across implementations so that noise from other processes hits all alike.

Also reported: the peak extra memory of a step (growth of the process's resident-set high-water
mark over one warm step; Linux ``/proc/self/clear_refs``), and the first-call time of each fused
kernel (compile, or load from the disk cache) -- in this process and in a fresh one.

Example:
    >>> from polyoptim.bench import run_bench
    >>> report = run_bench(["adam"], ["c"], repeats=3)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["ALGORITHMS", "SIZES", "Result", "run_bench", "speedups", "write_outputs"]

#: name -> (torch class name, constructor kwargs, whether torch has a fused CPU path)
ALGORITHMS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "adam": ("Adam", {}, True),
    "adamw": ("AdamW", {}, True),
    "sgd": ("SGD", {"lr": 0.01, "momentum": 0.9}, True),
    "adagrad": ("Adagrad", {}, True),
    "adadelta": ("Adadelta", {}, False),
    "adamax": ("Adamax", {}, False),
    "asgd": ("ASGD", {}, False),
    "nadam": ("NAdam", {}, False),
    "radam": ("RAdam", {}, False),
    "rmsprop": ("RMSprop", {}, False),
    "rprop": ("Rprop", {}, False),
}

#: case -> (number of tensors, elements per tensor)
SIZES: dict[str, tuple[int, int]] = {
    "a": (1, 16_000_000),
    "b": (200, 80_000),
    "c": (2000, 4_000),
}


def transformer_sizes(
    vocab: int = 8192, d: int = 512, layers: int = 6, ff: int = 2048, ctx: int = 1024
) -> list[int]:
    """Element counts of a small transformer language model's parameters, in model order:
    token and position embeddings, per block two layer norms, attention (fused QKV and output
    projection, with biases) and MLP (with biases), a final norm -- a realistic mix of a few
    large matrices and many small vectors."""
    sizes = [vocab * d, ctx * d]
    for _ in range(layers):
        sizes += [d, d, 3 * d * d, 3 * d, d * d, d, d, d, ff * d, ff, d * ff, d]
    return sizes + [d, d]


#: case -> element counts of a realistic model's parameter list (mixed sizes)
MIXED: dict[str, list[int]] = {"m": transformer_sizes()}
SIZES["m"] = (len(MIXED["m"]), sum(MIXED["m"]) // len(MIXED["m"]))


def case_sizes(case: str) -> list[int]:
    """The element count of every tensor of a case."""
    if case in MIXED:
        return list(MIXED[case])
    n, size = SIZES[case]
    return [size] * n


def case_label(case: str, tensors: int, elements: int) -> str:
    """``(b) 200×80000``, or for a mixed case ``(m) 76 mixed, 19,428,352``."""
    if case in MIXED:
        return f"({case}) {tensors} mixed, {elements:,}"
    return f"({case}) {tensors}×{elements // max(1, tensors)}"


PATHS = (
    "torch_forloop",
    "torch_foreach",
    "torch_fused",
    "poly_forloop",
    "poly_foreach",
    "poly_fused",
)
#: polyoptim's non-fused paths and the torch path each is compared with
NON_FUSED = {
    "foreach": ("torch_foreach", "poly_foreach"),
    "forloop": ("torch_forloop", "poly_forloop"),
}
LABELS = {
    "torch_forloop": "torch for-loop",
    "torch_foreach": "torch foreach",
    "torch_fused": "torch fused",
    "poly_forloop": "polyoptim for-loop",
    "poly_foreach": "polyoptim foreach",
    "poly_fused": "polyoptim fused",
}


@dataclass
class Result:
    """One algorithm on one problem size."""

    algorithm: str
    case: str
    tensors: int
    elements: int
    bytes_per_element: int
    #: the triad's bandwidth measured in the same rounds as the steps (the roof for this row)
    roof_gbps: float = 0.0
    ms: dict[str, float] = field(default_factory=dict)
    gbps: dict[str, float] = field(default_factory=dict)
    extra_mb: dict[str, float | None] = field(default_factory=dict)
    #: per path, the median over rounds of (that path's time / polyoptim fused's time in the same
    #: round): a speed-up that the machine's drift between rounds does not move
    speedup: dict[str, float] = field(default_factory=dict)
    #: the speed-up over the fastest torch path of a kernel that moves exactly
    #: ``bytes_per_element`` at the roof (median over rounds). The roof is a triad's bandwidth
    #: (two reads per write); a kernel with more reads per write can run a few percent above it
    ceiling: float = 0.0
    #: ``foreach``/``forloop``: the median over rounds of (torch's time / polyoptim's time in
    #: the same round) on that non-fused path -- above 1, polyoptim's is faster
    nonfused: dict[str, float] = field(default_factory=dict)
    #: polyoptim fused's host time per step (ms, median over rounds): the step's time outside
    #: its kernel calls -- gathering gradients, checks, host scalars, host state
    host_ms: float | None = None

    def fastest_torch(self) -> tuple[str, float]:
        """The fastest torch path and its time (ms)."""
        torch_ms = {k: v for k, v in self.ms.items() if k.startswith("torch")}
        k = min(torch_ms, key=torch_ms.__getitem__)
        return k, torch_ms[k]


# -- measuring ------------------------------------------------------------------------------------
def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_extra_mb(step: Callable[[], Any]) -> float | None:
    """Growth of the resident-set high-water mark during ``step()`` in MB (Linux only; None
    elsewhere). Resets the mark through ``/proc/self/clear_refs`` first. Memory freed earlier
    and kept by the C allocator is not counted as growth, so this is a lower bound for
    small-tensor cases; for one big tensor it is exactly the step's temporaries."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    base = _status_kb("VmRSS")
    step()
    peak = _status_kb("VmHWM")
    if base is None or peak is None:
        return None
    return max(0.0, (peak - base) / 1024)


ROOF_ELEMENTS = 16_000_000


def _no_sync() -> None:
    """Nothing to wait for: a CPU step is done when it returns."""


def _triads(device: str = "cpu") -> dict[str, Callable[[], None]]:
    """In-place triads ``a ← a + s·b`` over ``ROOF_ELEMENTS`` float32 elements (12 bytes moved
    per element): with torch, and on the CPU with Numba (parallel) when installed. On CUDA
    the torch triad waits for the device (it measures HBM bandwidth)."""
    n = ROOF_ELEMENTS
    a, b = torch.ones(n, device=device), torch.ones(n, device=device)
    if device.startswith("cuda"):

        def cuda_triad() -> None:
            a.add_(b, alpha=1e-7)
            torch.cuda.synchronize()

        return {"torch_triad": cuda_triad}
    out: dict[str, Callable[[], None]] = {"torch_triad": lambda: a.add_(b, alpha=1e-7)}
    try:
        import numba
        import numpy as np
    except ImportError:
        return out

    @numba.njit(parallel=True, cache=False)
    def triad(x, y, s):  # pragma: no cover - compiled
        for i in numba.prange(x.shape[0]):
            x[i] = x[i] + s * y[i]

    x, y, s = np.ones(n, np.float32), np.ones(n, np.float32), np.float32(1e-7)
    triad(x, y, s)
    out["numba_triad"] = lambda: triad(x, y, s)
    return out


def bandwidth_roof(repeats: int = 15, triads: dict[str, Callable[[], None]] | None = None) -> dict:
    """Streaming bandwidth (GB/s) of the in-place triads (median of ``repeats``), and the
    larger as ``roof``."""
    triads = triads or _triads()
    out = {}
    for name, fn in triads.items():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = 12 * ROOF_ELEMENTS / statistics.median(times) / 1e9
    out["roof"] = max(out.values())
    return out


def bytes_per_element(opt: torch.optim.Optimizer) -> int:
    """Bytes one step must move per parameter element: each array the rule reads once, each
    it changes once more (traced from the rule -- Adam float32: 7 arrays x 4 bytes)."""
    from polyoptim.kernels.trace import trace

    group = opt.param_groups[0]
    p = group["params"][0]
    rule = opt.rule  # type: ignore[attr-defined]
    state = copy.deepcopy(opt.state[p])
    scalars = rule.prepare(opt.hyper(group), state, False)  # type: ignore[attr-defined]
    scalars = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in scalars.items()}
    graph = trace(rule.update, tuple(b.when(group) for b in rule.buffers), scalars)
    arrays = len(graph.slots_read()) + len(graph.outputs)
    return arrays * p.element_size()


def _make_params(sizes: Sequence[int], seed: int = 0, device: str = "cpu") -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ps = []
    for size in sizes:
        p = torch.nn.Parameter(torch.randn(size, generator=gen).to(device))
        p.grad = (torch.randn(size, generator=gen) * 1e-2).to(device)
        ps.append(p)
    return ps


def _optimizers(
    name: str, params: list[torch.Tensor], paths: Sequence[str]
) -> dict[str, torch.optim.Optimizer]:
    import polyoptim

    cls_name, kwargs, torch_fused = ALGORITHMS[name]
    tcls, pcls = getattr(torch.optim, cls_name), getattr(polyoptim, cls_name)
    # polyoptim's fused path: ``fused=True`` where the signature has it, else the CPU default
    fused_kw = {"fused": True} if torch_fused else {}
    make = {
        "torch_forloop": lambda: tcls(params, foreach=False, **kwargs),
        "torch_foreach": lambda: tcls(params, foreach=True, **kwargs),
        "torch_fused": (lambda: _maybe(tcls, params, fused=True, **kwargs))
        if torch_fused
        else None,
        "poly_forloop": lambda: pcls(params, foreach=False, **kwargs),
        "poly_foreach": lambda: pcls(params, foreach=True, **kwargs),
        "poly_fused": lambda: pcls(params, **fused_kw, **kwargs),
    }
    made = {k: make[k]() for k in paths if make.get(k) is not None}  # type: ignore[misc]
    return {k: v for k, v in made.items() if v is not None}


def _maybe(cls: type, params: list[torch.Tensor], **kwargs: Any) -> Any:
    """``cls(params, **kwargs)``, or None where torch refuses it (a fused kernel it lacks on
    this device)."""
    try:
        return cls(params, **kwargs)
    except RuntimeError:
        return None


def measure(
    name: str,
    case: str,
    repeats: int,
    paths: Sequence[str] = PATHS,
    triad: Callable[[], None] | None = None,
    device: str = "cpu",
) -> Result:
    """Time every path of one algorithm on one problem size (medians, round-robin), and the
    bandwidth ``triad`` in the same rounds: the machine's bandwidth drifts on a shared host.
    On CUDA each timed step ends with a device synchronisation."""
    from polyoptim.kernels import dispatch

    sizes = case_sizes(case)
    params = _make_params(sizes, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else _no_sync
    opts = _optimizers(name, params, paths)
    if "poly_fused" in opts:
        group = opts["poly_fused"].param_groups[0]
        if not dispatch.use_fused(group, params):
            del opts["poly_fused"]  # Numba missing: there is no fused path to time
    for opt in opts.values():  # create state (and compile or load the fused kernel)
        opt.step()
    first = next(iter(opts.values()))
    res = Result(name, case, len(sizes), sum(sizes), bytes_per_element(_poly_or(first, opts)))
    for key, opt in opts.items():
        res.extra_mb[key] = peak_extra_mb(opt.step) if sync is _no_sync else None
    steps: dict[str, Callable[[], Any]] = {k: opt.step for k, opt in opts.items()}
    in_kernel: list[float] = []
    if "poly_fused" in steps and sync is _no_sync:
        steps["poly_fused"] = _clocking_kernels(steps["poly_fused"], in_kernel)
    if triad is not None:
        steps["roof"] = triad
    times: dict[str, list[float]] = {k: [] for k in steps}
    order = list(steps)
    for i in range(repeats):
        # every other round in reverse, so no path always runs right after the same neighbour
        for key in order if i % 2 == 0 else reversed(order):
            sync()
            t0 = time.perf_counter()
            steps[key]()
            sync()
            times[key].append(time.perf_counter() - t0)
    roof = times.pop("roof", None)
    if roof:
        res.roof_gbps = 12 * ROOF_ELEMENTS / statistics.median(roof) / 1e9
    for key, ts in times.items():
        med = statistics.median(ts)
        res.ms[key] = med * 1e3
        res.gbps[key] = res.bytes_per_element * res.elements / med / 1e9
    for kind, (theirs, ours) in NON_FUSED.items():
        if theirs in times and ours in times:
            res.nonfused[kind] = statistics.median(
                a / b for a, b in zip(times[theirs], times[ours])
            )
    if "poly_fused" in times:
        res.speedup, res.ceiling = speedups(times, roof, res.bytes_per_element * res.elements)
        if in_kernel:
            host = [t - k for t, k in zip(times["poly_fused"], in_kernel)]
            res.host_ms = statistics.median(host) * 1e3
    del opts, params
    gc.collect()
    return res


def _clocking_kernels(step: Callable[[], Any], spent: list[float]) -> Callable[[], Any]:
    """``step``, appending to ``spent`` the seconds each call spends inside fused kernel calls
    (what is left of its time is host work)."""
    from polyoptim.kernels import cpu_fused

    launch = cpu_fused._launch
    clock = [0.0]

    def timed_launch(*args: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        launch(*args, **kwargs)
        clock[0] += time.perf_counter() - t0

    def clocked() -> Any:
        clock[0] = 0.0
        cpu_fused._launch = timed_launch
        try:
            return step()
        finally:
            cpu_fused._launch = launch
            spent.append(clock[0])

    return clocked


def speedups(
    times: dict[str, list[float]], roof: list[float] | None, moved: int
) -> tuple[dict[str, float], float]:
    """Paired speed-ups of ``poly_fused`` from per-round step times.

    Args:
        times: per path, its step time in each round (seconds, rounds aligned).
        roof: the triad's time in each round (moving ``12 * ROOF_ELEMENTS`` bytes), or None.
        moved: bytes one step must move.

    Returns:
        Per other path, the median over rounds of ``time / fused time``; and the ceiling: the
        median over rounds of the fastest torch path's time over the time ``moved`` bytes take
        at that round's roof (0.0 without a roof or a torch path).
    """
    fused = times["poly_fused"]
    up = {
        k: statistics.median(a / b for a, b in zip(ts, fused))
        for k, ts in times.items()
        if k != "poly_fused"
    }
    torch_paths = [k for k in times if k.startswith("torch")]
    if not roof or not torch_paths:
        return up, 0.0
    best = min(torch_paths, key=lambda k: statistics.median(times[k]))
    at_roof = [moved * t / (12 * ROOF_ELEMENTS) for t in roof]
    return up, statistics.median(a / b for a, b in zip(times[best], at_roof))


def _poly_or(first: torch.optim.Optimizer, opts: dict[str, Any]) -> Any:
    return opts.get("poly_fused") or opts.get("poly_forloop") or first


def fresh_process_first_call() -> dict[str, Any] | None:
    """First fused Adam step in a new Python process: seconds and whether it came from the
    disk cache (it should, once this process has compiled it)."""
    code = (
        "import json, torch, polyoptim\n"
        "from polyoptim.kernels import cpu_fused\n"
        "p = torch.nn.Parameter(torch.ones(1000)); p.grad = torch.ones(1000)\n"
        "polyoptim.Adam([p], fused=True).step()\n"
        "print(json.dumps(cpu_fused.compile_log()))\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
        )
        log = json.loads(out.stdout.strip().splitlines()[-1])
        return log[0] if log else None
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


def run_bench(
    algorithms: Sequence[str],
    cases: Sequence[str],
    *,
    repeats: int = 7,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    paths: Sequence[str] = PATHS,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run the benchmark; returns the report (what :func:`write_outputs` writes).

    Args:
        algorithms: keys of :data:`ALGORITHMS`.
        cases: keys of :data:`SIZES` (``a``: one 16M-element tensor, ``b``: 200 x 80K,
            ``c``: 2000 x 4K, ``m``: a small transformer's mixed-size parameter list).
        repeats: timed steps per implementation (the median is reported).
        threads: torch (and Numba) threads; default: torch's.
        progress: called with a line of text as each measurement finishes.
        paths: the implementations to time (keys of :data:`LABELS`; default all).
        device: ``cpu`` or ``cuda`` (``cuda:N``): where the tensors live; on CUDA polyoptim's
            fused path is the Triton kernel, and the roof is the device's (HBM) triad.

    Raises:
        RuntimeError: ``device`` is CUDA and this machine has no CUDA device.
    """
    from polyoptim.kernels import cpu_fused, triton_fused

    check_device(device)
    on_cuda = device.startswith("cuda")

    if threads:
        torch.set_num_threads(threads)
    say = progress or (lambda s: None)
    started = time.perf_counter()
    triads = _triads(device)
    roof = bandwidth_roof(max(5, 2 * repeats), triads)
    best = max(triads, key=lambda k: roof[k])  # the faster triad runs alongside every row
    say(f"bandwidth roof: {roof['roof']:.1f} GB/s ({best})")
    results = []
    for case in cases:
        for name in algorithms:
            r = measure(name, case, repeats, paths, triad=triads[best], device=device)
            results.append(r)
            fused = r.ms.get("poly_fused")
            say(
                f"{name:9s} ({case}) "
                + " ".join(f"{LABELS[k]}={v:.1f}ms" for k, v in r.ms.items())
                + (f"  fused {r.gbps['poly_fused']:.1f} GB/s" if fused else "")
            )
    roof["roof_end"] = bandwidth_roof(max(5, 2 * repeats), triads)["roof"]
    roof["roof_rows_median"] = statistics.median(r.roof_gbps for r in results)
    del triads
    return {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "numba": _numba_version(),
            "numba_threading_layer": _numba_layer(),
            "device": torch.cuda.get_device_name(device) if on_cuda else "cpu",
            "loadavg_start": _loadavg(),
        },
        "repeats": repeats,
        "roof_gbps": roof,
        "results": [asdict(r) for r in results],
        "compile": triton_fused.compile_log() if on_cuda else cpu_fused.compile_log(),
        "fresh_process": (
            fresh_process_first_call() if cpu_fused.available() and not on_cuda else None
        ),
        "seconds": time.perf_counter() - started,
    }


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, with a message that says so."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"polyoptim bench --device {device}: CUDA is not available on this machine "
                f"(torch {torch.__version__}, no CUDA device found); run it on a GPU machine"
            )
    elif device != "cpu":
        raise RuntimeError(f"polyoptim bench --device {device}: use cpu or cuda[:N]")


def _numba_version() -> str | None:
    try:
        import numba

        return numba.__version__
    except ImportError:
        return None


def _numba_layer() -> str | None:
    """The threading layer Numba's threads run on (None before they start)."""
    numba = sys.modules.get("numba")
    try:
        return None if numba is None else numba.threading_layer()
    except ValueError:
        return None


def _loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


# -- writing --------------------------------------------------------------------------------------
def _fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown: step times, bandwidth, ratios, memory and compile times."""
    rg = report["roof_gbps"]
    lines = [
        f"Bandwidth roof (in-place triad, same run): **{rg['roof']:.1f} GB/s** at the start, "
        f"{rg.get('roof_end', float('nan')):.1f} GB/s at the end, median "
        f"{rg.get('roof_rows_median', float('nan')):.1f} GB/s alongside the rows (`roof` "
        f"column: measured in the same rounds as that row's steps). "
        f"{report['machine']['threads']} threads (Numba's "
        f"`{report['machine'].get('numba_threading_layer')}` layer), median of "
        f"{report['repeats']} steps.",
        "",
        "Step time in ms (lower is better); `fused GB/s` is polyoptim fused's effective "
        "bandwidth. Ratios are speed-ups of polyoptim fused: the median over rounds of (the "
        "other's time / fused time in the same round). `ceiling` is the speed-up over the "
        "fastest torch path of a kernel moving exactly B/elem at the roof: about the most a "
        "kernel can reach on this machine (one moving more reads per write than the triad can "
        "beat it by a few %). `host ms`: polyoptim fused's time per step outside its kernel "
        "calls.",
        "",
        "| algorithm | case | B/elem | "
        + " | ".join(LABELS[p] for p in PATHS)
        + " | host ms | fused GB/s | roof GB/s | % of roof | × fastest torch | ceiling"
        " | × torch fused | × eager |",
        "|---|---|--:|" + "--:|" * len(PATHS) + "--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report["results"]:
        ms, up = r["ms"], r.get("speedup") or {}
        f = ms.get("poly_fused")
        torch_ms = {k: v for k, v in ms.items() if k.startswith("torch")}
        best = min(torch_ms, key=torch_ms.__getitem__) if torch_ms else None
        row = [
            r["algorithm"],
            case_label(r["case"], r["tensors"], r["elements"]),
            str(r["bytes_per_element"]),
            *(_fmt(ms.get(p)) for p in PATHS),
            _fmt(r.get("host_ms"), 2),
            _fmt(r["gbps"].get("poly_fused")),
            _fmt(r["roof_gbps"] or None),
            _fmt(
                100 * r["gbps"]["poly_fused"] / r["roof_gbps"] if f and r["roof_gbps"] else None, 0
            ),
            _fmt(up.get(best) if best else None, 2),
            _fmt(r.get("ceiling") or None, 2),
            _fmt(up.get("torch_fused"), 2),
            _fmt(up.get("poly_forloop"), 1),
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Non-fused paths (every device without a fused kernel, ``differentiable=True``): "
        "polyoptim against torch's same path, ratio = torch's time / polyoptim's (median over "
        "rounds of the paired ratio; above 1, polyoptim is faster), and the peak extra memory "
        "of one warm step in MB:",
        "",
        "| algorithm | case | foreach ratio | for-loop ratio | MB torch foreach "
        "| MB polyoptim foreach | MB torch for-loop | MB polyoptim for-loop |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report["results"]:
        nf, mb = r.get("nonfused") or {}, r["extra_mb"]
        if not nf:
            continue
        lines.append(
            f"| {r['algorithm']} | ({r['case']}) | {_fmt(nf.get('foreach'), 2)} | "
            f"{_fmt(nf.get('forloop'), 2)} | "
            + " | ".join(
                _fmt(mb.get(k), 0)
                for k in ("torch_foreach", "poly_foreach", "torch_forloop", "poly_forloop")
            )
            + " |"
        )
    lines += [
        "",
        "Peak extra memory of one warm step, MB (resident-set high-water growth):",
        "",
        "| algorithm | case | " + " | ".join(LABELS[p] for p in PATHS) + " |",
        "|---|---|" + "--:|" * len(PATHS),
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['algorithm']} | ({r['case']}) | "
            + " | ".join(_fmt(r["extra_mb"].get(p), 0) for p in PATHS)
            + " |"
        )
    comp = report.get("compile") or []
    if comp:
        lines += [
            "",
            "Fused kernels' first call in this run (compile, or load from disk cache):",
            "",
        ]
        lines += ["| kernel | seconds | from cache |", "|---|--:|---|"]
        for c in comp:
            lines.append(f"| {c['name']} | {c['seconds']:.3f} | {'yes' if c['cached'] else 'no'} |")
    fresh = report.get("fresh_process")
    if fresh:
        lines += [
            "",
            f"First fused Adam step in a new process: {fresh['seconds']:.2f} s "
            f"({'loaded from the disk cache' if fresh['cached'] else 'compiled'}).",
        ]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """A PNG: effective GB/s per implementation, one panel per problem size, roof dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cases = sorted({r["case"] for r in report["results"]})
    fig, axes = plt.subplots(len(cases), 1, figsize=(12, 3.6 * len(cases)), squeeze=False)
    for ax, case in zip(axes[:, 0], cases):
        rs = [r for r in report["results"] if r["case"] == case]
        algs = [r["algorithm"] for r in rs]
        width = 0.8 / len(PATHS)
        for j, p in enumerate(PATHS):
            xs = [i + (j - len(PATHS) / 2 + 0.5) * width for i in range(len(algs))]
            ax.bar(xs, [r["gbps"].get(p, 0.0) for r in rs], width, label=LABELS[p])
        ax.plot(
            range(len(algs)),
            [r["roof_gbps"] for r in rs],
            "k_",
            markersize=28,
            label="bandwidth roof (same rounds)",
        )
        ax.set_title(case_label(case, rs[0]["tensors"], rs[0]["elements"]))
        ax.set_xticks(range(len(algs)))
        ax.set_xticklabels(algs)
        ax.set_ylabel("effective GB/s")
    axes[0, 0].legend(ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    """Write ``bench.md``, ``bench.json`` and ``bench.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    md = out / "bench.md"
    md.write_text(markdown(report))
    js = out / "bench.json"
    js.write_text(json.dumps(report, indent=1))
    written = [md, js]
    png = plot(report, out / "bench.png")
    if png is not None:
        written.append(png)
    return written


# -- command line ---------------------------------------------------------------------------------
def add_parser(subparsers: Any) -> None:
    """Register the ``bench`` subcommand (called by :mod:`polyoptim.cli`)."""
    p = subparsers.add_parser(
        "bench",
        help="time every algorithm: torch for-loop/foreach/fused vs polyoptim's",
        description=(
            "Step time and effective GB/s of torch's for-loop, foreach and fused paths and of "
            "polyoptim's eager and fused kernels, on (a) one 16M-element tensor, (b) 200 "
            "tensors of 80K, (c) 2000 tensors of 4K, (m) a small transformer's parameter "
            "list, against the streaming-bandwidth roof measured in the same run (--device "
            "cuda: on a GPU, against its HBM roof). Prints the report (markdown) on stdout; "
            "with --out DIR it also writes bench.md, bench.json and bench.png into DIR."
        ),
    )
    p.add_argument(
        "--algorithms",
        metavar="LIST",
        default=",".join(ALGORITHMS),
        help="comma-separated, from: %(default)s",
    )
    p.add_argument(
        "--sizes", metavar="LIST", default=",".join(SIZES), help="cases a,b,c,m (default: all)"
    )
    p.add_argument("--repeats", type=int, default=7, help="timed steps each (default: 7)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: torch's)")
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="write bench.md, bench.json and bench.png into DIR (default: write no files)",
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="use an empty kernel cache, so the first-call times are compile times",
    )
    p.add_argument(
        "--paths",
        metavar="LIST",
        default=",".join(PATHS),
        help="implementations to time, from: %(default)s",
    )
    p.add_argument("--quick", action="store_true", help="adam,sgd on case c, 3 repeats")
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda[:N]: on CUDA torch's CUDA paths against polyoptim's "
        "Triton kernel, with the HBM triad as the roof",
    )
    p.set_defaults(func=cli_main)


def cli_main(args: Any) -> int:
    """Run ``polyoptim bench`` with parsed arguments; returns the exit status."""
    algorithms = [a.strip().lower() for a in args.algorithms.split(",") if a.strip()]
    cases = [c.strip().lower() for c in args.sizes.split(",") if c.strip()]
    repeats = args.repeats
    if args.quick:
        algorithms, cases, repeats = ["adam", "sgd"], ["c"], 3
    paths = [k.strip() for k in getattr(args, "paths", ",".join(PATHS)).split(",") if k.strip()]
    bad = [a for a in algorithms if a not in ALGORITHMS] + [c for c in cases if c not in SIZES]
    bad += [k for k in paths if k not in LABELS]
    if bad or repeats < 1:
        print(f"polyoptim bench: unknown {bad} or --repeats < 1", file=sys.stderr)
        return 2
    device = getattr(args, "device", "cpu")
    try:
        check_device(device)
    except RuntimeError as e:
        print(str(e), file=sys.stderr)
        return 2
    if args.cold:
        import tempfile

        cold = tempfile.mkdtemp(prefix="polyoptim-cold-")
        os.environ["POLYOPTIM_CACHE_DIR"] = cold
        os.environ.setdefault("NUMBA_CACHE_DIR", cold)  # read when Numba is first imported
    report = run_bench(
        algorithms,
        cases,
        repeats=repeats,
        threads=args.threads,
        progress=print,
        paths=paths,
        device=device,
    )
    if args.out is None:
        print(markdown(report))
    else:
        for path in write_outputs(report, Path(args.out)):
            print(f"wrote {path}")
    print(f"{report['seconds']:.0f} s")
    return 0
