"""Candidate for KernelBench level1/12: diag(A) @ B computed as a row scaling of B in Triton."""

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _row_scale_kernel(a_ptr, b_ptr, c_ptr, n_rows, n_cols,
                      BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    row_mask = rows < n_rows
    mask = row_mask[:, None] & (cols[None, :] < n_cols)
    a = tl.load(a_ptr + rows, mask=row_mask, other=0.0)
    offs = rows.to(tl.int64)[:, None] * n_cols + cols[None, :]
    b = tl.load(b_ptr + offs, mask=mask, other=0.0)
    tl.store(c_ptr + offs, a[:, None] * b, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        A = A.contiguous()
        B = B.contiguous()
        n_rows, n_cols = B.shape
        C = torch.empty_like(B)
        block_r, block_c = 16, 256
        grid = (triton.cdiv(n_rows, block_r), triton.cdiv(n_cols, block_c))
        _row_scale_kernel[grid](A, B, C, n_rows, n_cols, BLOCK_R=block_r, BLOCK_C=block_c)
        return C
