import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def linear_leaky_kernel(x_ptr, w_ptr, b_ptr, out_ptr, M, N, K, multiplier, slope,
                        BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + rk
        x = tl.load(x_ptr + rm[:, None] * K + kk[None, :],
                    mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
        # weight is (N, K): load the (BK, BN) tile of its transpose
        w = tl.load(w_ptr + rn[None, :] * K + kk[:, None],
                    mask=(rn[None, :] < N) & (kk[:, None] < K), other=0.0)
        acc += tl.dot(x, w, input_precision="ieee")
    bias = tl.load(b_ptr + rn, mask=rn < N, other=0.0)
    y = (acc + bias[None, :]) * multiplier
    y = tl.where(y >= 0, y, y * slope)
    tl.store(out_ptr + rm[:, None] * N + rn[None, :], y,
             mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def epilogue_kernel(y_ptr, out_ptr, n, multiplier, slope, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    y = tl.load(y_ptr + offs, mask=mask, other=0.0) * multiplier
    tl.store(out_ptr + offs, tl.where(y >= 0, y, y * slope), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features, multiplier, negative_slope):
        super().__init__()
        self.gemm = nn.Linear(in_features, out_features)
        self.multiplier = multiplier
        self.negative_slope = negative_slope

    def forward(self, x):
        x = x.contiguous()
        w = self.gemm.weight.contiguous()
        M, K = x.shape
        N = w.shape[0]
        # cuBLAS is already optimal for the GEMM; fuse only the epilogue in Triton
        y = torch.nn.functional.linear(x, w, self.gemm.bias)
        out = torch.empty_like(y)
        n = y.numel()
        epilogue_kernel[(triton.cdiv(n, 1024),)](y, out, n, self.multiplier, self.negative_slope, BLOCK=1024)
        return out
