"""The ``polyoptim`` command line: ``--version`` and where ``bench`` writes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import polyoptim
from polyoptim import bench
from polyoptim.cli import main, version_line

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag_prints_the_package_version_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"polyoptim {polyoptim.__version__} (torch {torch.__version__}; ")


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="needs Numba")
def test_version_says_whether_the_fused_kernel_is_on(monkeypatch):
    from importlib import metadata

    monkeypatch.delenv("POLYOPTIM_FUSED", raising=False)
    assert version_line().endswith(f"fused CPU kernel: on, Numba {metadata.version('numba')})")
    monkeypatch.setenv("POLYOPTIM_FUSED", "0")
    assert version_line().endswith("fused CPU kernel: off (POLYOPTIM_FUSED=0))")


def test_version_flag_works_as_a_command():
    run = subprocess.run(
        [sys.executable, "-m", "polyoptim", "--version"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"polyoptim {polyoptim.__version__} (torch ")


def test_the_package_version_is_the_one_the_wheel_gets():
    """pyproject reads the version from ``polyoptim.__version__``: one place to change it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]
    assert "version" not in project["project"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "polyoptim.__version__"


@pytest.fixture
def tiny_bench(monkeypatch):
    """The real benchmark on a 3 x 1000 case, without the fresh-process probe."""
    monkeypatch.setitem(bench.SIZES, "t", (3, 1000))
    monkeypatch.setattr(bench, "ROOF_ELEMENTS", 100_000)
    monkeypatch.setattr(bench, "fresh_process_first_call", lambda: None)


def test_bench_without_out_writes_no_files_and_prints_the_report(
    tiny_bench, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--algorithms", "sgd", "--sizes", "t", "--repeats", "1"]) == 0
    assert list(tmp_path.iterdir()) == []  # nothing in the working directory
    out = capsys.readouterr().out
    assert "| sgd | (t) 3×1000 | 20 |" in out
    assert "wrote" not in out


def test_bench_out_writes_the_report_files_there(tiny_bench, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "reports" / "run1"
    args = ["bench", "--algorithms", "sgd", "--sizes", "t", "--repeats", "1"]
    assert main([*args, "--out", str(target)]) == 0
    assert {p.name for p in target.iterdir()} >= {"bench.md", "bench.json"}
    assert "| sgd | (t) 3×1000 | 20 |" in (target / "bench.md").read_text()
    assert f"wrote {target / 'bench.md'}" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["reports"]


def test_bench_help_says_files_are_written_only_with_out(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "default: write no files" in capsys.readouterr().out
