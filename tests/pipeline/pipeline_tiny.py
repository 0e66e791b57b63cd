"""Tiny tasks and hand-written answers for the pipeline tests (sources as strings, written into tmp_path)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return torch.relu(x * self.scale)


batch_size = 16
dim = 64
scale = 2.0


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [scale]
'''

FUSED = '''import torch
import torch.nn as nn


class ScaleRelu(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return torch.relu(x * self.scale)


class FusedModel(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.body = ScaleRelu(scale)

    def forward(self, x):
        return self.body(x)
'''

WRONG_FUSED = FUSED.replace("torch.relu(x * self.scale)", "torch.relu(x + self.scale)")

KERNEL = '''import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK = 64


@triton.jit
def scale_relu_kernel(x_ptr, out_ptr, n, scale, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.maximum(x * scale, 0.0)
    tl.store(out_ptr + offs, y, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        scale_relu_kernel[(triton.cdiv(n, BLOCK),)](x, out, n, self.scale, BLOCK=BLOCK)
        return out
'''

COMPILE_ERROR_KERNEL = KERNEL.replace("BLOCK = 64", "BLOCK = BLOCK_SIZE")  # NameError on import
WRONG_KERNEL = KERNEL.replace("tl.maximum(x * scale, 0.0)", "tl.maximum(x * scale, 0.5)")


def answer(code: str, note: str = "") -> str:
    """Return an LLM-style answer holding ``code`` in one python block."""
    return f"{note or 'Here is the code.'}\n\n```python\n{code}```\n"


def write_task(root: Path, source: str = TASK, name: str = "1_ScaleRelu") -> Path:
    """Write a task file under ``root/level1`` and return its path."""
    path = root / "level1" / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def task_of(root: Path) -> Any:
    """Return the ``TaskFile`` of the tiny task under ``root``."""
    from pytest_kernelfalcon.core.tasks import discover_tasks

    return discover_tasks([root / "level1"])[0]


def seed_task_dir(ctx: Any, prepared: Path) -> Path:
    """Copy the prepared fuse and extract results into ``ctx``'s task dir (as a resumed task)."""
    task_dir = ctx.rundir.task_dir(task_of(prepared).id)
    shutil.copytree(prepared / "out", task_dir, dirs_exist_ok=True)
    return task_dir
