"""Candidate for KernelBench level1/88_MinGPTNewGelu: tanh-approximated GELU, one Triton pass."""

import math

import torch
import torch.nn as nn
import triton
import triton.language as tl

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@triton.jit
def _new_gelu_kernel(x_ptr, y_ptr, numel, k, BLOCK: tl.constexpr):
    start = tl.program_id(0).to(tl.int64) * BLOCK
    offs = start + tl.arange(0, BLOCK).to(tl.int64)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    u = k * (x + 0.044715 * x * x * x)
    # tanh(u) = 1 - 2 / (exp(2u) + 1): exp overflows to inf for large u, which gives 1
    t = 1.0 - 2.0 / (tl.exp(2.0 * u) + 1.0)
    tl.store(y_ptr + offs, 0.5 * x * (1.0 + t), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        numel = x.numel()
        block = 1024
        _new_gelu_kernel[(triton.cdiv(numel, block),)](x, y, numel, SQRT_2_OVER_PI, BLOCK=block)
        return y
