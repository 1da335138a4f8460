"""``polyoptim demo``: train one small MLP per optimizer family and compare them.

The demo fits a 64-128-10 ReLU network to scikit-learn's bundled *digits* data set
(1,797 8x8 images, no download) once per optimizer, from the same initial weights and
with the same minibatch order, then reports the final training loss, the test accuracy
and the wall time of each run, and plots the loss curves.

Everything here takes the optimizer namespace as a parameter (``optim_module``), so the
same demo runs against ``polyoptim`` (the default) or ``torch.optim`` for comparison.

Needs the ``demo`` extra: ``pip install "polyoptim[demo]"`` (scikit-learn, matplotlib, tqdm).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_OPTIMIZERS",
    "DemoResult",
    "OptimizerSpec",
    "SPECS",
    "format_table",
    "plot_losses",
    "resolve_names",
    "run_demo",
]

DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 64
DEFAULT_HIDDEN = 128
DEFAULT_THREADS = 1
#: The train/test split is fixed (independent of ``seed``) so that runs with different
#: seeds are scored on the same held-out images.
SPLIT_SEED = 0
TEST_FRACTION = 0.2
#: Losses below this are drawn at this value in the plot (log scale cannot show 0).
LOSS_FLOOR = 1e-7

Builder = Callable[[nn.Module, Any, float], list[Any]]


@dataclass(frozen=True)
class OptimizerSpec:
    """How the demo builds one optimizer family.

    Attributes:
        name: the class name in the optimizer namespace (``"Adam"``, ``"Muon"``, ...).
        lr: the learning rate the demo uses by default; tuned by hand for this task.
        build: ``build(model, optim_module, lr)`` returns the optimizers to step together
            (one, except for Muon, which only takes 2-D parameters).
        full_batch_steps: if positive, the optimizer takes this many ``step(closure)``
            calls per epoch on the whole training set instead of minibatch steps (LBFGS,
            and Rprop, which is a full-batch method and is erratic on minibatches).
        note: a short description of the settings, shown in the docs.
    """

    name: str
    lr: float
    build: Builder
    full_batch_steps: int = 0
    note: str = ""


def _simple(cls_name: str, **kwargs: Any) -> Builder:
    def build(model: nn.Module, mod: Any, lr: float) -> list[Any]:
        return [getattr(mod, cls_name)(model.parameters(), lr=lr, **kwargs)]

    return build


def _muon(model: nn.Module, mod: Any, lr: float) -> list[Any]:
    # Muon orthogonalises matrix updates, so it only accepts 2-D parameters: the weight
    # matrices go to Muon, the biases to AdamW, and the two are stepped together.
    matrices = [p for p in model.parameters() if p.ndim == 2]
    others = [p for p in model.parameters() if p.ndim != 2]
    return [
        mod.Muon(matrices, lr=lr, momentum=0.95, weight_decay=0.0),
        mod.AdamW(others, lr=3e-3, weight_decay=0.0),
    ]


def _lbfgs(model: nn.Module, mod: Any, lr: float) -> list[Any]:
    return [
        mod.LBFGS(
            model.parameters(),
            lr=lr,
            max_iter=10,
            history_size=10,
            line_search_fn="strong_wolfe",
        )
    ]


#: Every optimizer family the demo knows, in the order it runs them by default.
SPECS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in [
        OptimizerSpec("SGD", 0.05, _simple("SGD", momentum=0.9), note="momentum=0.9"),
        OptimizerSpec("Adam", 3e-3, _simple("Adam")),
        OptimizerSpec("AdamW", 3e-3, _simple("AdamW", weight_decay=1e-2), note="wd=1e-2"),
        OptimizerSpec("Adamax", 6e-3, _simple("Adamax")),
        OptimizerSpec("Adagrad", 5e-2, _simple("Adagrad")),
        OptimizerSpec("Adadelta", 1.0, _simple("Adadelta")),
        OptimizerSpec("ASGD", 0.15, _simple("ASGD")),
        OptimizerSpec("NAdam", 3e-3, _simple("NAdam")),
        OptimizerSpec("RAdam", 5e-3, _simple("RAdam")),
        OptimizerSpec("RMSprop", 1e-3, _simple("RMSprop")),
        OptimizerSpec(
            "Rprop", 1e-3, _simple("Rprop"), full_batch_steps=5, note="full batch, 5 steps/epoch"
        ),
        OptimizerSpec("Adafactor", 3e-2, _simple("Adafactor")),
        OptimizerSpec("Muon", 1e-2, _muon, note="2-D weights; biases to AdamW(lr=3e-3)"),
        OptimizerSpec(
            "LBFGS",
            1.0,
            _lbfgs,
            full_batch_steps=1,
            note="full batch, max_iter=10 per epoch, strong Wolfe",
        ),
    ]
}

DEFAULT_OPTIMIZERS: tuple[str, ...] = tuple(SPECS)


@dataclass
class DemoResult:
    """The outcome of training the demo network with one optimizer.

    Attributes:
        name: the optimizer family (``"Adam"``, ...).
        losses: mean cross-entropy on the whole training set before training (index 0)
            and after each epoch, so ``len(losses) == epochs + 1``.
        final_loss: ``losses[-1]``.
        accuracy: accuracy on the held-out test set after training, in ``[0, 1]``.
        seconds: wall time of the run (building the model and optimizer, training, and
            the per-epoch loss evaluations).
        lr: the learning rate used.

    Example:
        >>> from polyoptim.demo import DemoResult
        >>> r = DemoResult("Adam", losses=[2.3, 0.4, 0.1], final_loss=0.1, accuracy=0.95)
        >>> r.name, r.final_loss, r.accuracy
        ('Adam', 0.1, 0.95)
    """

    name: str
    losses: list[float] = field(default_factory=list)
    final_loss: float = math.nan
    accuracy: float = math.nan
    seconds: float = 0.0
    lr: float = math.nan


def resolve_names(names: Sequence[str] | str | None) -> list[str]:
    """Normalise optimizer names (case-insensitive, comma lists allowed) to keys of ``SPECS``.

    Raises:
        ValueError: for an unknown name.

    Args:
        names: a list of names, a comma-separated string, or None (all of
            ``DEFAULT_OPTIMIZERS``).

    Returns:
        The names as spelled in ``SPECS``.

    Example:
        >>> from polyoptim.demo import resolve_names
        >>> resolve_names("adam, SGD")
        ['Adam', 'SGD']
    """
    if names is None:
        return list(DEFAULT_OPTIMIZERS)
    if isinstance(names, str):
        names = [names]
    by_lower = {key.lower(): key for key in SPECS}
    out: list[str] = []
    for chunk in names:
        for raw in chunk.split(","):
            raw = raw.strip()
            if not raw:
                continue
            key = by_lower.get(raw.lower())
            if key is None:
                known = ", ".join(SPECS)
                raise ValueError(f"unknown optimizer {raw!r}; known: {known}")
            if key not in out:
                out.append(key)
    if not out:
        raise ValueError("no optimizer given")
    return out


def _default_optim_module() -> ModuleType:
    import polyoptim

    return polyoptim


@contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    return (
        torch.as_tensor(scaler.transform(x_train), dtype=torch.float32),
        torch.as_tensor(y_train, dtype=torch.long),
        torch.as_tensor(scaler.transform(x_test), dtype=torch.float32),
        torch.as_tensor(y_test, dtype=torch.long),
    )


def _make_model(n_in: int, hidden: int, n_out: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def run_demo(
    optimizers: Sequence[str] | str | None = None,
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    hidden: int = DEFAULT_HIDDEN,
    lrs: Mapping[str, float] | None = None,
    progress: bool = True,
    num_threads: int | None = None,
    optim_module: ModuleType | Any | None = None,
) -> list[DemoResult]:
    """Train the demo MLP on scikit-learn's digits once per optimizer.

    Every run starts from the same initial weights (seeded by ``seed``) and sees the
    minibatches in the same order, so the runs differ only by the optimizer.

    Args:
        optimizers: names from ``SPECS`` (case-insensitive; a comma-separated string
            works too); ``None`` runs all of ``DEFAULT_OPTIMIZERS``.
        epochs: passes over the training set (for full-batch optimizers, LBFGS and Rprop,
            ``OptimizerSpec.full_batch_steps`` steps on the whole set).
        batch_size: minibatch size.
        seed: seeds the weight initialisation and the minibatch order.
        hidden: width of the hidden layer.
        lrs: learning rates overriding the per-optimizer defaults, keyed by name.
        progress: show a tqdm progress bar on stderr.
        num_threads: torch intra-op threads during the demo (restored afterwards);
            ``None`` means 1. The matrices here are at most 64x128, too small to gain from
            more threads, and extra threads make the run an order of magnitude slower when
            the CPU is shared with other work.
        optim_module: the namespace the optimizer classes come from; ``None`` means
            ``polyoptim``. Pass ``torch.optim`` to compare with PyTorch.

    Returns:
        One ``DemoResult`` per optimizer, in the order given.

    Example:
        >>> from polyoptim.demo import run_demo
        >>> (result,) = run_demo(["SGD"], epochs=1, progress=False)
        >>> result.name, len(result.losses), result.losses[1] < result.losses[0]
        ('SGD', 2, True)
    """
    names = resolve_names(optimizers)
    if epochs < 1:
        raise ValueError("epochs must be >= 1")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    lr_overrides = {resolve_names(k)[0]: float(v) for k, v in (lrs or {}).items()}
    mod = _default_optim_module() if optim_module is None else optim_module
    if num_threads is None:
        num_threads = DEFAULT_THREADS

    x_train, y_train, x_test, y_test = _load_data()
    n_train = x_train.shape[0]
    n_classes = int(y_train.max()) + 1
    loss_fn = nn.CrossEntropyLoss()

    from tqdm.auto import tqdm

    results: list[DemoResult] = []
    # fork_rng: the demo reseeds torch for every run; leave the caller's RNG state alone.
    with (
        torch.random.fork_rng(devices=[]),
        _threads(num_threads),
        tqdm(total=len(names) * epochs, disable=not progress, unit="epoch", leave=False) as bar,
    ):
        # Pay one-off start-up costs (autograd, lazy imports in the optimizer base class)
        # before the first timed run, so that it is not charged to whichever runs first.
        warm = _make_model(x_train.shape[1], hidden, n_classes, seed)
        loss_fn(warm(x_train), y_train).backward()
        if hasattr(mod, "SGD"):
            mod.SGD(warm.parameters(), lr=0.0).step()
        for name in names:
            spec = SPECS[name]
            lr = lr_overrides.get(name, spec.lr)
            bar.set_description(f"{name:>9}")
            start = time.perf_counter()
            model = _make_model(x_train.shape[1], hidden, n_classes, seed)
            opts = spec.build(model, mod, lr)

            def full_loss(model: nn.Module = model) -> float:
                with torch.no_grad():
                    return float(loss_fn(model(x_train), y_train))

            losses = [full_loss()]
            shuffle = torch.Generator().manual_seed(seed)
            for _ in range(epochs):
                if spec.full_batch_steps > 0:

                    def closure(model: nn.Module = model, opts: list[Any] = opts) -> Any:
                        for opt in opts:
                            opt.zero_grad()
                        loss = loss_fn(model(x_train), y_train)
                        loss.backward()
                        return loss

                    for _ in range(spec.full_batch_steps):
                        for opt in opts:
                            opt.step(closure)
                else:
                    order = torch.randperm(n_train, generator=shuffle)
                    for i in range(0, n_train, batch_size):
                        idx = order[i : i + batch_size]
                        for opt in opts:
                            opt.zero_grad()
                        loss_fn(model(x_train[idx]), y_train[idx]).backward()
                        for opt in opts:
                            opt.step()
                losses.append(full_loss())
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                bar.update(1)
                if not math.isfinite(losses[-1]):
                    # Diverged: pad the curve and stop early rather than waste time.
                    bar.update(epochs - (len(losses) - 1))
                    losses.extend([math.nan] * (epochs + 1 - len(losses)))
                    break
            with torch.no_grad():
                accuracy = float((model(x_test).argmax(dim=1) == y_test).float().mean())
            results.append(
                DemoResult(
                    name=name,
                    losses=losses,
                    final_loss=losses[-1],
                    accuracy=accuracy,
                    seconds=time.perf_counter() - start,
                    lr=lr,
                )
            )
    return results


def format_table(results: Sequence[DemoResult]) -> str:
    """Render results as a fixed-width text table, one row per optimizer.

    Columns: optimizer, learning rate, final train loss, test accuracy (percent), wall
    time in seconds.

    Args:
        results: what :func:`run_demo` returned.

    Returns:
        The table, one line per result after a header and a rule.

    Example:
        >>> from polyoptim.demo import DemoResult, format_table
        >>> print(format_table([DemoResult("Adam", [2.3, 0.1], 0.1, 0.95, 1.5, 3e-3)]))
        optimizer     lr  final train loss  test accuracy  time (s)
        ---------  -----  ----------------  -------------  --------
        Adam       0.003          1.00e-01          95.0%      1.50
    """
    header = ("optimizer", "lr", "final train loss", "test accuracy", "time (s)")
    rows = [
        (
            r.name,
            f"{r.lr:g}",
            f"{r.final_loss:.2e}" if math.isfinite(r.final_loss) else "diverged",
            f"{100 * r.accuracy:.1f}%",
            f"{r.seconds:.2f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def plot_losses(
    results: Sequence[DemoResult], path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Write a PNG of the training-loss curves, one line per optimizer, log-scale y.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change), so it
    works headless and does not disturb an interactive session.

    Args:
        results: what :func:`run_demo` returned.
        path: the PNG file to write (parent folders are created).
        title: the plot's title.

    Returns:
        The path written.

    Example:
        >>> import os, tempfile
        >>> from polyoptim.demo import DemoResult, plot_losses
        >>> result = DemoResult("Adam", [2.3, 0.5, 0.1], 0.1, 0.95, 1.5, 3e-3)
        >>> path = plot_losses([result], os.path.join(tempfile.mkdtemp(), "curves.png"))
        >>> path.suffix, path.stat().st_size > 0
        ('.png', True)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    fig = Figure(figsize=(9, 5.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    styles = ["-", "--", ":", "-."]
    for i, r in enumerate(results):
        # float32 cross-entropy bottoms out (at exactly 0) near 1e-7; clip there for log y.
        finite = [(e, max(v, LOSS_FLOOR)) for e, v in enumerate(r.losses) if math.isfinite(v)]
        if not finite:
            continue
        xs, ys = zip(*finite)
        acc = f"{100 * r.accuracy:.1f}%" if math.isfinite(r.accuracy) else "n/a"
        ax.plot(
            xs,
            ys,
            label=f"{r.name} ({acc})",
            color=cmap(i % 10),
            linestyle=styles[(i // 10) % len(styles)],
            linewidth=1.8,
            marker="o" if len(r.losses) <= 12 else None,
            markersize=3,
        )
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max((len(r.losses) - 1 for r in results), default=1) or 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"training loss (full train set, clipped at {LOSS_FLOOR:g})")
    ax.set_title(title or "polyoptim demo: MLP on scikit-learn digits")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="optimizer (test acc.)", loc="center left", bbox_to_anchor=(1.01, 0.5))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
