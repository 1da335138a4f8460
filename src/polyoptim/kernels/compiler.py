"""Compiling generated kernels, and keeping them compiled across processes (Numba's disk cache).

A generated kernel module (:mod:`polyoptim.kernels.codegen`) is written into :func:`cache_dir`
under a name derived from the hash of its text -- which includes a fingerprint of the code it
calls (``numba_ops``, ``codegen``) and of Numba's version -- and imported from there, so Numba's
``cache=True`` finds the compiled code of the same text in a later process. A module's text
never changes under its name, so a stale cache cannot be picked up.

Numba stays optional: nothing here imports it until a kernel is loaded, and :func:`available`
says whether it can be. Its first import also sets up what a forked child may do
(:mod:`polyoptim.kernels.threads`).

Example:
    >>> from polyoptim.kernels import compiler
    >>> compiler.cache_dir().name.startswith("fused-py")
    True
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from . import threads
from .codegen import KernelSource

__all__ = ["available", "cache_dir", "compile_log", "load"]

_lock = threading.RLock()
_kernels: dict[str, Any] = {}  # text hash -> compiled dispatcher
_compile_log: list[dict[str, Any]] = []


def available() -> bool:
    """True when Numba can be imported and ``POLYOPTIM_FUSED`` is not ``0``."""
    flag = os.environ.get("POLYOPTIM_FUSED")
    if flag is not None and flag.strip().lower() in ("0", "false", "no", "off"):
        return False
    return _numba_ok()


def _numba_ok() -> bool:
    """Import Numba once (on the first fused step, not at ``import polyoptim``)."""
    global _NUMBA_OK
    if _NUMBA_OK is None:
        try:
            import numba
        except Exception:  # missing, or broken against this NumPy: run eagerly
            _NUMBA_OK = False
        else:
            threads.configure(numba)
            _NUMBA_OK = True
    return _NUMBA_OK


_NUMBA_OK: bool | None = None
if "numba" in sys.modules:  # imported already: watch for forks from now on
    threads.configure(sys.modules["numba"])


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        return True
    except OSError:
        return False


_CACHE_DIR: Path | None = None


def cache_dir() -> Path:
    """The directory of generated kernel modules (Numba's compiled code goes beside them in
    ``__pycache__`` unless ``NUMBA_CACHE_DIR`` says otherwise)."""
    global _CACHE_DIR
    if _CACHE_DIR is None:
        base = os.environ.get("POLYOPTIM_CACHE_DIR")
        if base:
            candidates = [Path(base)]
        else:
            xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
            candidates = [Path(xdg) / "polyoptim"]
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        candidates.append(Path(tempfile.gettempdir()) / f"polyoptim-{uid}")
        sub = f"fused-py{sys.version_info[0]}{sys.version_info[1]}"
        for c in candidates:
            if _writable(c / sub):
                _CACHE_DIR = c / sub
                break
        else:  # pragma: no cover - nothing writable at all
            _CACHE_DIR = Path(tempfile.mkdtemp(prefix="polyoptim-"))
    return _CACHE_DIR


def compile_log() -> list[dict[str, Any]]:
    """One entry per kernel this process loaded: ``name``, ``seconds`` (first call: compile or
    cache load), ``cached`` (loaded from the disk cache)."""
    return list(_compile_log)


# -- from a rule to a compiled kernel -------------------------------------------------------------
def _fingerprint() -> str:
    """Changes whenever the code the generated kernels depend on changes."""
    import numba

    here = Path(__file__).with_name
    h = hashlib.sha256(numba.__version__.encode())
    for name in ("numba_ops.py", "codegen.py"):
        h.update(here(name).read_bytes())
    return h.hexdigest()[:16]


_FINGERPRINT: str | None = None


def load(src: KernelSource, header: str) -> Any:
    """Import (writing it first if new) the module of ``src`` and return its compiled kernel,
    calling it once on no work so that compiling -- or loading from the disk cache -- is timed
    here and not inside a step."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        _FINGERPRINT = _fingerprint()
    text = f"# polyoptim kernel, ops {_FINGERPRINT}\n{src.text}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    kern = _kernels.get(digest)
    if kern is not None:
        return kern
    with _lock:
        kern = _kernels.get(digest)
        if kern is not None:
            return kern
        name = f"polyoptim_fused_{digest}"
        path = cache_dir() / f"{name}.py"
        if not path.exists():
            _publish(path, text)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        fn = module.kernel
        start = time.perf_counter()
        threads.launch(
            fn,
            np.zeros((0, 3), np.int64),
            np.zeros((1, len(src.slots)), np.int64),
            np.zeros(1, np.int64),
            np.zeros((1, max(1, len(src.scalars))), np.float64),
            1.0,
        )
        seconds = time.perf_counter() - start
        cached = sum(fn.stats.cache_hits.values()) > 0
        _compile_log.append(dict(name=header, seconds=seconds, cached=cached, module=name))
        _kernels[digest] = fn
    return fn


def _publish(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` atomically, never replacing an existing file: Numba keys
    its cache on the source file's timestamp, so a concurrent process (pytest-xdist) rewriting
    the same text would invalidate what the first one compiled."""
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    try:
        os.link(tmp, path)  # fails if another process got there first: theirs is identical
    except FileExistsError:
        pass
    except OSError:  # no hard links on this file system
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
