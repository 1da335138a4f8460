"""The ``polyoptim`` command line (also ``python -m polyoptim``).

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares its parser
and flags, and ``_run_<name>(args) -> int`` does the work. To add one, write the pair
and list the adder in ``_SUBCOMMANDS``. Heavy imports belong inside ``_run_<name>`` so
that ``polyoptim --help`` stays fast and works without the optional extras.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main", "version_line"]

Subparsers = Any  # argparse's _SubParsersAction is private


# --------------------------------------------------------------------------- demo


def _parse_lr(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME=LR, e.g. Adam=3e-3; got {text!r}"
        ) from None


def _add_demo(subparsers: Subparsers) -> None:
    from polyoptim.demo import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_OPTIMIZERS

    p = subparsers.add_parser(
        "demo",
        help="train a small MLP on scikit-learn digits with each optimizer and compare",
        description=(
            "Train a 64-128-10 MLP on scikit-learn's bundled digits data once per optimizer "
            "family, print a table (final train loss, test accuracy, wall time) and write a "
            "PNG of the loss curves. Needs the 'demo' extra (scikit-learn, matplotlib, tqdm)."
        ),
    )
    p.add_argument(
        "--optimizers",
        metavar="LIST",
        default=",".join(DEFAULT_OPTIMIZERS),
        help="comma-separated optimizer names, case-insensitive (default: all: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="default: %(default)s")
    p.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="default: %(default)s"
    )
    p.add_argument("--seed", type=int, default=0, help="weight init and batch order seed")
    p.add_argument(
        "--out",
        metavar="PNG",
        default="polyoptim-demo.png",
        help="where to write the loss plot (default: %(default)s in the current directory)",
    )
    p.add_argument(
        "--lr",
        metavar="NAME=LR",
        type=_parse_lr,
        action="append",
        default=[],
        help="override one optimizer's learning rate; repeatable",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: 1; the model is tiny)",
    )
    p.add_argument(
        "--backend",
        choices=["polyoptim", "torch"],
        default="polyoptim",
        help="take the optimizer classes from polyoptim or from torch.optim (default: %(default)s)",
    )
    p.add_argument(
        "--dialect",
        choices=["all", "paddle", "mindspore", "none"],
        default="all",
        help=(
            "also train a BatchNorm MLP as a Paddle and/or MindSpore user would write it "
            "(adopt, name-based decay filter, scheduler, clipping, loss scaling), resume it from "
            "files the real frameworks wrote, and plot it beside torch (default: %(default)s)"
        ),
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    # Numba's thread pool, sized before numba is imported: idle pool threads make every fused
    # step wait on a busy machine (20x slower at a load of 20 on 2 cores), and the demo's
    # tensors are too small to gain from more than the torch threads it uses. Only before Numba
    # starts: Numba refuses a thread count changed under a running pool (an in-process caller
    # that has used the fused kernel already keeps its pool).
    if "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(max(1, args.threads or 1)))
    try:
        from polyoptim import demo
    except ImportError as exc:  # pragma: no cover - depends on the environment
        print(
            f"polyoptim demo: {exc}; install the demo extra: pip install 'polyoptim[demo]'",
            file=sys.stderr,
        )
        return 1
    try:
        names = demo.resolve_names(args.optimizers)
        lrs = {demo.resolve_names(k)[0]: v for k, v in args.lr}
    except ValueError as exc:
        print(f"polyoptim demo: {exc}", file=sys.stderr)
        return 2
    if args.epochs < 1 or args.batch_size < 1:
        print("polyoptim demo: --epochs and --batch-size must be >= 1", file=sys.stderr)
        return 2
    if args.backend == "torch":
        import torch.optim as optim_module
    else:
        import polyoptim as optim_module

    start = time.perf_counter()
    results = demo.run_demo(
        names,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        lrs=lrs,
        progress=not args.quiet,
        num_threads=args.threads,
        optim_module=optim_module,
    )
    elapsed = time.perf_counter() - start
    path = demo.plot_losses(
        results, args.out, title=f"{args.backend} demo: MLP on scikit-learn digits"
    )
    print(demo.format_table(results))
    print(f"\n{len(results)} optimizers, {args.epochs} epochs, {elapsed:.1f} s; plot: {path}")
    if args.dialect != "none":
        from polyoptim import demo_dialects

        dialects = demo_dialects.DIALECTS if args.dialect == "all" else (args.dialect,)
        start = time.perf_counter()
        dialect_results = demo_dialects.run_dialects(
            dialects,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=not args.quiet,
            num_threads=args.threads,
        )
        elapsed = time.perf_counter() - start
        out = Path(args.out)
        dialect_path = demo.plot_losses(
            dialect_results,
            out.with_name(f"{out.stem}-dialects{out.suffix or '.png'}"),
            title="One MLP, trained as torch, Paddle and MindSpore code",
        )
        print("\nThe same BatchNorm MLP trained as PyTorch, Paddle and MindSpore code writes it:")
        print(demo.format_table(dialect_results))
        print(f"\n{len(dialect_results)} runs, {elapsed:.1f} s; plot: {dialect_path}")
    return 0


# --------------------------------------------------------------------------- bench


def _add_bench(subparsers: Subparsers) -> None:
    from polyoptim.bench import add_parser  # flags and the run live in polyoptim/bench.py

    add_parser(subparsers)


# --------------------------------------------------------------------------- main

_SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (_add_demo, _add_bench)


def version_line() -> str:
    """``polyoptim --version``'s line: the version, torch's, and whether the fused CPU kernel
    (the CPU default) is on, e.g. ``polyoptim 0.1.0 (torch 2.13.0+cpu; fused CPU kernel: on,
    Numba 0.68.1)``."""
    from importlib import metadata

    import torch

    from polyoptim import __version__
    from polyoptim.kernels import compiler

    if compiler.available():
        fused = f"on, Numba {metadata.version('numba')}"
    elif compiler._numba_ok():
        fused = "off (POLYOPTIM_FUSED=0)"
    else:
        fused = "off (Numba is not installed)"
    return f"polyoptim {__version__} (torch {torch.__version__}; fused CPU kernel: {fused})"


class _VersionAction(argparse.Action):
    """Like argparse's ``version`` action, but the line is computed only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="polyoptim",
        description="polyoptim: PyTorch-compatible optimizers over one engine.",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the version, torch's, and whether the fused CPU kernel is on",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``polyoptim`` command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
