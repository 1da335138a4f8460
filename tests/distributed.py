"""Running a test body on 2 CPU processes over gloo (loopback only), with a timeout.

``spawn(fn, tmp_path, *args)`` starts ``fn(rank, world_size, port, out_dir, *args)`` in two
fresh processes (the ``spawn`` start method), each already joined to a gloo process group on
127.0.0.1; a process that fails, is killed or runs past the timeout fails the test. Results come
back as files the workers write under ``out_dir``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
TIMEOUT = 300  # seconds for the whole run: these machines are shared and slow to start torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(
    rank: int, fn: Callable[..., None], port: int, out: str, args: tuple, init: bool
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_WORLD_SIZE=str(WORLD),
    )
    torch.set_num_threads(1)  # two processes on a small shared machine
    if not init:
        fn(rank, WORLD, Path(out), *args)
        return
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        fn(rank, WORLD, Path(out), *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., None], out: Path, *args: Any, init: bool = True) -> None:
    """Run ``fn(rank, world_size, out, *args)`` on 2 processes (in a gloo group if ``init``;
    otherwise only the environment of ``torchrun`` is set and ``fn`` makes the group)."""
    ctx = mp.start_processes(
        _entry,
        args=(fn, free_port(), str(out), args, init),
        nprocs=WORLD,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + TIMEOUT
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
            pytest.fail(f"distributed run did not finish in {TIMEOUT} s")
