"""Fork safety of the fused CPU kernel (kernels/threads.py).

Numba's GNU OpenMP layer (its choice on Linux without TBB, and the fastest here) terminates a
forked child that launches a parallel kernel: there a forked child steps eagerly; on the
fork-safe layers (workqueue, tbb) it steps on the fused kernel. Each case runs in its own
process group with a timeout, so a child that is killed or hangs fails the test instead of the
test run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from polyoptim.kernels import cpu_fused

pytestmark = pytest.mark.skipif(not cpu_fused.available(), reason="needs Numba")

TIMEOUT = 240  # seconds: a loaded machine starts torch slowly; a hang is caught all the same


def run_script(code: str, **env: str | None) -> tuple[dict, str]:
    """Run ``code`` in a new Python process (and process group) with ``env`` changes (None
    removes a variable); return the JSON of its last stdout line and its stderr."""
    environ = dict(os.environ)
    for k, v in env.items():
        if v is None:
            environ.pop(k, None)
        else:
            environ[k] = v
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and any child it forked
        out, err = proc.communicate()
        pytest.fail(f"hung for {TIMEOUT} s\nstdout:\n{out}\nstderr:\n{err}")
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    return json.loads(out.strip().splitlines()[-1]), err


# The parent steps once on the fused kernel (starting Numba's threads), forks, and the child
# takes the second step; the parent then takes the same second step itself and compares. The
# child runs no torch op but the step (its gradient is set before the fork): torch's own OpenMP
# pool is no safer in a forked child, which is not what is tested here.
FORK_STEP = """
import json, os, sys, tempfile, torch, numba, polyoptim
from polyoptim.kernels import cpu_fused

launches = []
real = cpu_fused._launch
cpu_fused._launch = lambda *a: (launches.append(1), real(*a))[1]

torch.manual_seed(0)
n = 300_000  # several work rows, so every thread of the pool has work
w = torch.nn.Parameter(torch.randn(n))
opt = polyoptim.Adam([w], lr=0.1)
w.grad = torch.randn(n)
opt.step()
w.grad = torch.randn(n)
path = os.path.join(tempfile.mkdtemp(), "child.pt")
pid = os.fork()
if pid == 0:
    launches.clear()
    opt.step()
    torch.save({"w": w.detach(), "launches": len(launches)}, path)
    os._exit(0)
_, status = os.waitpid(pid, 0)
child = torch.load(path) if status == 0 else None
opt.step()
print(json.dumps({
    "status": status,
    "layer": numba.threading_layer(),
    "child_launches": child and child["launches"],
    "maxdiff": child and (child["w"] - w.detach()).abs().max().item(),
}))
"""


def test_forked_child_of_an_openmp_process_steps_eagerly_with_a_warning():
    res, err = run_script(FORK_STEP, NUMBA_THREADING_LAYER="omp")  # Numba's default here
    assert res["layer"] == "omp"
    assert res["status"] == 0, err  # before: "Terminating: fork() called from a process ..."
    assert res["child_launches"] == 0
    assert res["maxdiff"] <= 1e-6  # eager == fused within float rounding
    assert "not fork-safe" in err


def test_forked_child_steps_on_the_default_path():
    res, err = run_script(FORK_STEP, NUMBA_THREADING_LAYER=None)
    assert res["status"] == 0, err
    assert res["maxdiff"] <= 1e-6
    assert (res["child_launches"] >= 1) == (res["layer"] != "omp")


def test_forked_child_steps_on_the_fused_kernel_on_workqueue():
    res, err = run_script(FORK_STEP, NUMBA_THREADING_LAYER="workqueue")
    assert res["layer"] == "workqueue"
    assert res["status"] == 0, err
    assert res["child_launches"] >= 1  # the child ran the fused kernel, not a fallback
    assert res["maxdiff"] == 0.0  # and took exactly the parent's step


def test_threads_stepping_at_once_on_workqueue():
    """workqueue terminates the process when two threads enter it at once (the kernels release
    the GIL), so launches take a lock there."""
    res, _ = run_script(
        """
        import json, threading, torch, numba, polyoptim

        def train(seed, out):
            g = torch.Generator().manual_seed(seed)
            w = torch.nn.Parameter(torch.randn(200_000, generator=g))
            opt = polyoptim.Adam([w], lr=0.01)
            for _ in range(40):
                w.grad = torch.randn(200_000, generator=g)
                opt.step()
            out[seed] = w.detach().clone()

        alone, together = {}, {}
        for s in (1, 2):
            train(s, alone)
        ts = [threading.Thread(target=train, args=(s, together)) for s in (1, 2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        same = all(torch.equal(alone[s], together[s]) for s in (1, 2))
        print(json.dumps({"layer": numba.threading_layer(), "same": same}))
        """,
        NUMBA_THREADING_LAYER="workqueue",
    )
    assert res["layer"] == "workqueue" and res["same"], res


def test_training_loop_with_forked_dataloader_workers():
    """Several epochs of the default optimizer with DataLoader(num_workers=2), fork start
    method: each epoch forks new workers from a process that has run the fused kernel. Same
    numbers as torch.optim.Adam on the same batches."""
    res, _ = run_script(
        """
        import json, torch, polyoptim
        import torch.nn.functional as F
        from torch.utils.data import DataLoader, TensorDataset

        torch.manual_seed(0)
        X = torch.randn(384, 32)
        y = X @ torch.randn(32, 1) + 0.1 * torch.randn(384, 1)
        data = TensorDataset(X, y)

        def train(make_opt):
            torch.manual_seed(1)
            model = torch.nn.Sequential(
                torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1)
            )
            opt = make_opt(model.parameters())
            loader = DataLoader(
                data, batch_size=32, shuffle=True, num_workers=2,
                multiprocessing_context="fork", generator=torch.Generator().manual_seed(2),
            )
            losses = []
            for _ in range(4):
                total = 0.0
                for xb, yb in loader:
                    opt.zero_grad()
                    loss = F.mse_loss(model(xb), yb)
                    loss.backward()
                    opt.step()
                    total += loss.item()
                losses.append(total)
            return [p.detach() for p in model.parameters()], losses

        ours, losses = train(lambda ps: polyoptim.Adam(ps, lr=1e-2))
        ref, _ = train(lambda ps: torch.optim.Adam(ps, lr=1e-2))
        diff = max((a - b).abs().max().item() for a, b in zip(ours, ref))
        print(json.dumps({"losses": losses, "diff": diff}))
        """,
        NUMBA_THREADING_LAYER=None,
    )
    assert res["diff"] < 1e-5, res
    assert res["losses"][-1] < 0.5 * res["losses"][0], res


def test_fork_while_another_thread_launches():
    """A fork taken while another thread holds the launch lock (workqueue) must not leave the
    child's copy of the lock held forever."""
    res, err = run_script(
        """
        import json, os, time, torch, polyoptim
        from polyoptim.kernels import threads

        w = torch.nn.Parameter(torch.ones(100_000))
        opt = polyoptim.Adam([w], lr=0.1)
        w.grad = torch.ones(100_000)
        opt.step()
        threads._launch_lock.acquire()  # as if another thread were inside a launch
        pid = os.fork()
        if pid == 0:
            opt.step()
            os._exit(0)
        threads._launch_lock.release()
        deadline = time.monotonic() + 60
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        print(json.dumps({"exited": done[0] != 0, "status": done[1]}))
        """,
        NUMBA_THREADING_LAYER="workqueue",
    )
    assert res == {"exited": True, "status": 0}, err
