"""Inline sample sources for checker tests: a ReLU task template and a Triton header."""

from __future__ import annotations

import textwrap
from pathlib import Path

RELU_TASK = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)

batch_size = 16
dim = 64

def get_inputs():
    return [torch.{dist}(batch_size, dim)]

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
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(y_ptr + offs, tl.maximum(x, 0.0), mask=mask)


@triton.jit
def copy_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=mask), mask=mask)


def relu(x, y):
    relu_kernel[(triton.cdiv(x.numel(), 256),)](x, y, x.numel(), BLOCK=256)
    return y


def copy(x, y):
    copy_kernel[(triton.cdiv(x.numel(), 256),)](x, y, x.numel(), BLOCK=256)
    return y
"""

CORRECT_FORWARD = """
class ModelNew(nn.Module):
    def forward(self, x):
        return relu(x, torch.empty_like(x))
"""


def write(path: Path, source: str) -> Path:
    """Write dedented ``source`` to ``path`` and return the path."""
    path.write_text(textwrap.dedent(source).lstrip())
    return path
