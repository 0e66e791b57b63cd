"""Timing on a real GPU: a fair kernel is timed plausibly, a cheat is flagged, timings never overlap."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pytest_kernelfalcon.checker.timing import BenchOptions, bench_task

pytestmark = pytest.mark.gpu

TASK = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0

N = 1 << 25

def get_inputs():
    return [torch.randn(N)]

def get_init_inputs():
    return []
"""

FAIR = """
import torch
import torch.nn as nn
import triton
import triton.language as tl

@triton.jit
def relu2(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, tl.maximum(x, 0.0) * 2.0, mask=mask)

class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.empty_like(x)
        relu2[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
        return out
"""

# does no work at all: returns uninitialised memory (the checker would reject it; the timer must flag it)
CHEAT = """
import torch
import torch.nn as nn

class ModelNew(nn.Module):
    def forward(self, x):
        return torch.empty_like(x)
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Write the task and both candidates; return their paths."""
    paths = {name: tmp_path / f"{name}.py" for name in ("task", "fair", "cheat")}
    for name, text in (("task", TASK), ("fair", FAIR), ("cheat", CHEAT)):
        paths[name].write_text(text)
    return paths


def test_fair_kernel_is_timed_plausibly(files: dict[str, Path], tmp_path: Path) -> None:
    result = bench_task(files["task"], files["fair"], BenchOptions(lock_dir=tmp_path / "locks"))
    assert result.error is None, result.error
    assert result.gpu_name
    assert result.new and result.new["runs"] >= 20
    assert result.speedup_eager is not None and 0.5 < result.speedup_eager < 5
    assert result.speedup_compile is not None and 0.3 < result.speedup_compile < 5
    assert result.flags == ()
    assert result.bandwidth_gbps and result.achieved_gbps and result.achieved_gbps < result.bandwidth_gbps
    print(result.to_json())


def test_cheat_is_flagged(files: dict[str, Path], tmp_path: Path) -> None:
    options = BenchOptions(lock_dir=tmp_path / "locks", compile=False)
    result = bench_task(files["task"], files["cheat"], options)
    assert result.error is None, result.error
    assert any("plausible" in f for f in result.flags), result.flags
    assert any("bandwidth" in f for f in result.flags), result.flags
    print(result.to_json())


def test_two_timings_never_overlap_on_one_gpu(files: dict[str, Path], tmp_path: Path) -> None:
    options = BenchOptions(lock_dir=tmp_path / "locks", compile=False)
    results = []
    threads = [threading.Thread(target=lambda: results.append(bench_task(files["task"], files["fair"], options)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (a, b) = sorted(results, key=lambda r: r.locked_from or 0)
    assert a.error is None and b.error is None
    assert a.locked_until is not None and b.locked_from is not None
    assert a.locked_until <= b.locked_from
