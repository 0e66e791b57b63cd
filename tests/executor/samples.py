"""Inline tasks, candidates and helpers for the executor tests (tiny shapes, CPU interpreter)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

RELU_TASK = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)

def get_inputs():
    return [torch.randn(8, 32)]

def get_init_inputs():
    return []
"""

HEADER = """
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)
"""

FORWARD = """
class ModelNew(nn.Module):
    def forward(self, x):
        {pre}
        y = torch.empty_like(x)
        relu_kernel[(triton.cdiv(x.numel(), 256),)](x, y, x.numel(), BLOCK=256)
        return y
"""

# name -> (code run at the start of forward, expected verdict)
FAULTS: dict[str, tuple[str, str]] = {
    "correct": ("pass", "pass"),
    "torch_compute": ("return torch.relu(x)", "torch_compute"),
    "segfault": ("import os; getattr(os, 'kill')(os.getpid(), 11)", "crash"),
    "os_exit": ("import os; getattr(os, '_exit')(0)", "crash"),
    "hang": ("import time; time.sleep(600)", "timeout"),
    "exception": ("raise RuntimeError('boom')", "runtime_error"),
    "fork_spam": ("import os, time\n        for _ in range(40):\n"
                  "            if getattr(os, 'fork')() == 0:\n"
                  "                getattr(os, 'setsid')(); time.sleep(600)", "pass"),
}

EMPTY_JOB = {"version": 1, "mode": "candidate", "entry": "ModelNew", "device": "cpu", "dtype": "fp32",
             "cases": [], "audit": False, "poison": False}


def candidate_source(fault: str) -> str:
    """Return a ReLU candidate whose forward first runs the code of ``fault``."""
    pre = FAULTS[fault][0]
    return textwrap.dedent(HEADER) + textwrap.dedent(FORWARD).replace("{pre}", pre)


def write(path: Path, source: str) -> Path:
    """Write ``source`` (dedented) to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def import_job(jobdir: Path, body: str) -> Path:
    """Write a candidate job with no trials whose candidate.py is ``body`` (it runs at import)."""
    import torch

    write(jobdir / "candidate.py", body)
    torch.save(EMPTY_JOB, jobdir / "job.pt")
    return jobdir


def read_json(path: Path) -> Any:
    """Load a JSON file a job wrote."""
    return json.loads(path.read_text())


def process_stats() -> list[tuple[int, str, int, int]]:
    """Return (pid, state, parent pid, process group) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found.append((int(entry.name), fields[0], int(fields[1]), int(fields[2])))
    return found


def zombies_of(pids: set[int]) -> list[int]:
    """Return zombie processes whose parent is one of ``pids``."""
    return [pid for pid, state, ppid, _ in process_stats() if state == "Z" and ppid in pids]


def group_members(pgids: set[int]) -> list[int]:
    """Return live (non-zombie) processes whose process group is one of ``pgids``."""
    return [pid for pid, state, _, pgid in process_stats() if state not in ("Z", "X") and pgid in pgids]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def uid_processes(uid: int) -> list[int]:
    """Return live processes whose real uid is ``uid``."""
    from pytest_kernelfalcon.core.isolation import status_uid

    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and status_uid(e) == uid]


def my_pid() -> int:
    """This (test) process's pid."""
    return os.getpid()
