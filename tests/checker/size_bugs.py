"""Kernels wrong only at sizes other than the task's own (issue 23): a fixed reduction length and a grid that
floors. Shared by the CPU tests and the GPU ones (marked gpu)."""

from __future__ import annotations

SUM_TASK = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.sum(x, dim=self.dim, keepdim=True)

batch_size = 128
dim1 = 4096
dim2 = 63
reduce_dim = 1

def get_inputs():
    return [torch.rand(batch_size, dim1, dim2)]

def get_init_inputs():
    return [reduce_dim]
"""

SUM_KERNEL = """
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def sum_dim1(x_ptr, y_ptr, N, M, LIMIT, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    b = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    acc = tl.zeros([BLOCK_M], dtype=tl.float32)
    for start in range(0, LIMIT, BLOCK_N):
        rows = start + tl.arange(0, BLOCK_N)
        mask = (rows[:, None] < LIMIT) & (cols[None, :] < M)
        tile = tl.load(x_ptr + b * N * M + rows[:, None] * M + cols[None, :], mask=mask, other=0.0)
        acc += tl.sum(tile, axis=0)
    tl.store(y_ptr + b * M + cols, acc, mask=cols < M)


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        x = x.contiguous()
        b, n, m = x.shape
        y = torch.empty((b, 1, m), device=x.device, dtype=x.dtype)
        sum_dim1[(b, triton.cdiv(m, 32))](x, y, n, m, {limit}, BLOCK_N=64, BLOCK_M=32)
        return y
"""

CORRECT_SUM = SUM_KERNEL.format(limit="n")
FIXED_LENGTH_SUM = SUM_KERNEL.format(limit="min(n, 4096)")  # sums at most 4096 rows: the task's own length

RELU_KERNEL = """
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        relu_kernel[({grid},)](x, y, n, BLOCK=1024)
        return y
"""

FLOOR_GRID_RELU = RELU_KERNEL.format(grid="n // 1024")  # no program for a last partial block
CORRECT_RELU = RELU_KERNEL.format(grid="triton.cdiv(n, 1024)")
