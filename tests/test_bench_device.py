"""``polyoptim bench --device`` and the mixed-size model case (plumbing only: benchmarks are
never timed tests)."""

from __future__ import annotations

import pytest
import torch

from polyoptim import bench, cli


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a CPU machine")
def test_bench_on_cuda_without_cuda_fails_clearly(capsys):
    status = cli.main(["bench", "--device", "cuda", "--quick"])
    err = capsys.readouterr().err
    assert status == 2
    assert "CUDA is not available on this machine" in err
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        bench.run_bench(["adam"], ["c"], repeats=1, device="cuda")


def test_bench_refuses_an_unknown_device(capsys):
    assert cli.main(["bench", "--device", "tpu", "--quick"]) == 2
    assert "use cpu or cuda" in capsys.readouterr().err


def test_mixed_case_is_a_transformers_parameter_list():
    sizes = bench.case_sizes("m")
    d, vocab = 512, 8192
    assert sizes[0] == vocab * d and sizes[-1] == d
    assert len(sizes) == 2 + 6 * 12 + 2
    assert max(sizes) / min(sizes) > 1000  # a few large matrices, many small vectors
    assert bench.case_label("m", len(sizes), sum(sizes)).startswith("(m) 76 mixed, ")
    assert bench.case_label("b", 200, 200 * 80_000) == "(b) 200×80000"


def test_bench_table_has_the_mixed_case(tmp_path, monkeypatch):
    monkeypatch.setitem(bench.MIXED, "m", [1000, 10, 300, 7])
    monkeypatch.setattr(bench, "ROOF_ELEMENTS", 100_000)
    monkeypatch.setattr(bench, "fresh_process_first_call", lambda: None)
    report = bench.run_bench(["sgd"], ["m"], repeats=1)
    (row,) = report["results"]
    assert (row["tensors"], row["elements"]) == (4, 1317)
    assert {"torch_forloop", "torch_foreach", "poly_forloop"} <= set(row["ms"])
    bench.write_outputs(report, tmp_path)
    assert "| sgd | (m) 4 mixed, 1,317 | 20 |" in (tmp_path / "bench.md").read_text()
