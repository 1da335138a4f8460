"""Live comparison with the real MindSpore 2.10.0 (``make parity``).

Runs tools/mindspore_golden.py in ``.venv-mindspore`` into a temporary folder (the committed
fixtures are not touched) and replays every fresh case with polyoptim, exactly as the golden
tests do. Skipped unless ``.venv-mindspore`` exists (``bash tools/mindspore_env.sh``).
"""

from __future__ import annotations

import os
import subprocess

import pytest
import torch
from golden_format import list_cases, load_case, n_steps
from ms_golden_cases import QUIRKS, build, relerr, replay, state_errors

from polyoptim import mindspore as nn

ROOT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
PYTHON = os.path.join(ROOT, ".venv-mindspore", "bin", "python")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.path.exists(PYTHON), reason=".venv-mindspore is missing"),
]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("mindspore_live")
    subprocess.run(
        [PYTHON, os.path.join(ROOT, "tools", "mindspore_golden.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return out


def test_live_optimizers(fresh, record_property):
    failures, compared, worst_all = [], 0, 0.0
    for path in list_cases(fresh):
        case = load_case(path)
        meta = case["meta"]
        if meta["kind"] != "optimizer" or meta["sparse_grads"] or meta["name"] in QUIRKS:
            continue
        opt, ps, names = build(case)
        worst = replay(case, opt, ps, names)
        missing, extra, state_worst = state_errors(case, opt)
        worst_all = max(worst_all, worst, state_worst)
        compared += 1
        if worst > 1e-5 or state_worst > 1e-5 or missing or extra or n_steps(case) < 10:
            failures.append((meta["name"], worst, state_worst, missing, extra))
    record_property("mindspore_live_relerr", worst_all)
    assert compared >= 120
    assert not failures, failures


def test_live_schedules(fresh):
    for path in list_cases(fresh):
        case = load_case(path)
        meta = case["meta"]
        if meta["kind"] == "schedule":
            sched = getattr(nn, meta["schedule"])(**meta["kwargs"])
            for s in range(meta["global_steps"][0], meta["global_steps"][1] + 1):
                got = sched(torch.tensor([s], dtype=torch.int32))
                assert relerr(got.reshape(()), case["arrays"][f"lr{s}"]) <= 1e-6, meta["name"]
        elif meta["kind"] == "dynamic_lr":
            assert getattr(nn, meta["function"])(**meta["kwargs"]) == meta["returned"]


def test_live_checkpoint_round_trip(fresh, tmp_path):
    """A checkpoint MindSpore wrote loads here, and one written here loads in MindSpore."""
    theirs = nn.load_checkpoint(str(fresh / "checkpoints" / "adam_2steps.ckpt"))
    ours = str(tmp_path / "ours.ckpt")
    nn.save_checkpoint(theirs, ours, crc_check=True)
    script = (
        "import mindspore as ms, sys\n"
        "d = ms.load_checkpoint(sys.argv[1], crc_check=True)\n"
        "print(','.join(f'{k}:{v.asnumpy().sum():.9g}' for k, v in d.items()))\n"
    )
    res = subprocess.run([PYTHON, "-c", script, ours], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    line = res.stdout.strip().splitlines()[-1]
    sums = dict(item.split(":") for item in line.split(","))
    assert list(sums) == list(theirs)
    for k, v in theirs.items():
        assert float(sums[k]) == pytest.approx(float(v.double().sum()), rel=1e-6, abs=1e-9)
