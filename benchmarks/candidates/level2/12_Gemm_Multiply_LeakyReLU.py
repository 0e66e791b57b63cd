"""Candidate for KernelBench level2/12: Linear, multiply, LeakyReLU fused in one Triton matmul.

y = leaky_relu((x @ W^T + b) * multiplier); W is read through its strides (no transpose copy).
"""

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _gemm_mul_leaky_kernel(x_ptr, w_ptr, b_ptr, y_ptr, M, N, K, multiplier, slope,
                           stride_xm, stride_xk, stride_wn, stride_wk, stride_ym, stride_yn,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rm64 = rm.to(tl.int64)
    rn64 = rn.to(tl.int64)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = (k0 + tl.arange(0, BLOCK_K)).to(tl.int64)
        x = tl.load(x_ptr + rm64[:, None] * stride_xm + rk[None, :] * stride_xk,
                    mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0)
        w_t = tl.load(w_ptr + rk[:, None] * stride_wk + rn64[None, :] * stride_wn,
                      mask=(rk[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(x, w_t, input_precision="ieee")
    bias = tl.load(b_ptr + rn, mask=rn < N, other=0.0)
    y = (acc + bias[None, :]) * multiplier
    y = tl.where(y >= 0, y, y * slope)
    tl.store(y_ptr + rm64[:, None] * stride_ym + rn64[None, :] * stride_yn, y,
             mask=(rm[:, None] < M) & (rn[None, :] < N))


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features, multiplier, negative_slope):
        super().__init__()
        self.gemm = nn.Linear(in_features, out_features)
        self.multiplier = float(multiplier)
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        x = x.contiguous()
        w = self.gemm.weight
        M, K = x.shape
        N = w.shape[0]
        y = torch.empty((M, N), device=x.device, dtype=x.dtype)
        bm, bn, bk = 64, 64, 32
        grid = (triton.cdiv(M, bm), triton.cdiv(N, bn))
        _gemm_mul_leaky_kernel[grid](x, w, self.gemm.bias, y, M, N, K, self.multiplier,
                                     self.negative_slope, x.stride(0), x.stride(1),
                                     w.stride(0), w.stride(1), y.stride(0), y.stride(1),
                                     BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
        return y
