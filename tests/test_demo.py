"""The ``polyoptim demo`` job: a short real run, its table and plot, and the CLI."""

from __future__ import annotations

import math
import struct
import zlib

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

import torch  # noqa: E402

import polyoptim  # noqa: E402
from polyoptim.cli import main  # noqa: E402
from polyoptim.demo import (  # noqa: E402
    SPECS,
    DemoResult,
    format_table,
    plot_losses,
    resolve_names,
    run_demo,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    """Check the PNG signature and IHDR chunk (with its CRC); return (width, height)."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(kind + body) == crc
    assert data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", body[:8])


@pytest.fixture(scope="module")
def results() -> list[DemoResult]:
    return run_demo(["Adam", "SGD", "LBFGS"], epochs=2, progress=False, seed=0)


def test_every_known_optimizer_exists_in_polyoptim() -> None:
    for name in SPECS:
        assert hasattr(polyoptim, name), name
    assert hasattr(polyoptim, "AdamW")  # Muon's partner for the biases


def test_run_demo_trains(results: list[DemoResult]) -> None:
    assert [r.name for r in results] == ["Adam", "SGD", "LBFGS"]
    for r in results:
        assert len(r.losses) == 3  # before training, then once per epoch
        assert all(math.isfinite(v) for v in r.losses), r
        assert r.final_loss == r.losses[-1]
        # Digits has 10 classes: an untrained net sits near ln(10) ~ 2.30.
        assert 2.0 < r.losses[0] < 2.6, r
        assert r.losses[-1] < 0.5 * r.losses[0], r
        assert r.accuracy > 0.5, r
        assert r.seconds > 0
    by_name = {r.name: r for r in results}
    assert by_name["Adam"].accuracy > 0.8
    # Every run starts from the same initial weights.
    assert len({r.losses[0] for r in results}) == 1


def test_run_demo_is_deterministic_and_leaves_rng_alone() -> None:
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    threads = torch.get_num_threads()
    a = run_demo("adam", epochs=1, progress=False, seed=3)
    b = run_demo(["ADAM"], epochs=1, progress=False, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.get_num_threads() == threads
    assert a[0].losses == pytest.approx(b[0].losses, rel=1e-5)
    assert a[0].accuracy == pytest.approx(b[0].accuracy, abs=1e-3)


def test_muon_runs_with_adamw_for_biases() -> None:
    (r,) = run_demo(["Muon"], epochs=1, progress=False)
    assert r.losses[-1] < r.losses[0]
    assert r.accuracy > 0.5


def test_table_lists_each_optimizer(results: list[DemoResult]) -> None:
    table = format_table(results)
    lines = table.splitlines()
    assert "optimizer" in lines[0] and "test accuracy" in lines[0]
    assert len(lines) == 2 + len(results)
    for r, line in zip(results, lines[2:]):
        assert line.split()[0] == r.name
        assert f"{100 * r.accuracy:.1f}%" in line


def test_plot_writes_a_png(results: list[DemoResult], tmp_path) -> None:
    path = plot_losses(results, tmp_path / "sub" / "curves.png")
    data = path.read_bytes()
    width, height = _png_size(data)
    assert width >= 400 and height >= 300
    assert len(data) > 10_000


def test_resolve_names() -> None:
    assert resolve_names(None) == list(SPECS)
    assert resolve_names("sgd, adamw,SGD") == ["SGD", "AdamW"]
    with pytest.raises(ValueError, match="unknown optimizer"):
        resolve_names("Adamm")


def test_cli_demo(tmp_path, capsys) -> None:
    path = tmp_path / "demo.png"
    argv = ["demo", "--optimizers", "Adam", "--epochs", "1", "--out", str(path), "--quiet"]
    argv += ["--dialect", "none"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Adam" in out and "test accuracy" in out
    _png_size(path.read_bytes())


def test_cli_rejects_unknown_optimizer(tmp_path, capsys) -> None:
    argv = ["demo", "--optimizers", "Nope", "--out", str(tmp_path / "x.png"), "--quiet"]
    assert main(argv) == 2
    assert "unknown optimizer" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_cli_without_subcommand_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
