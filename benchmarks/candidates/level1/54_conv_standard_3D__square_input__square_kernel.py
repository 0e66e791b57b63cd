"""Candidate for KernelBench level1/54: 3D convolution (stride 1, no padding) as an implicit GEMM.

Each program computes a block of output positions for a block of output channels. The
reduction runs over (input channel, kd, kh, kw) flattened into one axis of length
``C_in * KS**3``: a block of that axis gathers an input tile [positions, taps] and a weight
tile [taps, channels], multiplied with ``tl.dot`` (IEEE fp32). Stride, padding, dilation,
groups or bias other than the task's defaults are refused in the constructor.
"""

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _conv3d_kernel(x_ptr, w_ptr, y_ptr, C_in, D, H, W, C_out, OD, OH, OW,
                   KS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
                   BLOCK_R: tl.constexpr):
    n = tl.program_id(2).to(tl.int64)
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    co = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    n_out = OD * OH * OW
    p_mask = p < n_out
    c_mask = co < C_out
    od = p // (OH * OW)
    oh = (p // OW) % OH
    ow = p % OW
    taps = KS * KS * KS
    n_red = C_in * taps
    x_batch = x_ptr + n * C_in * D * H * W
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for r0 in range(0, n_red, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R)
        r_mask = r < n_red
        ci = r // taps
        t = r % taps
        kd = t // (KS * KS)
        kh = (t // KS) % KS
        kw = t % KS
        d = od[:, None] + kd[None, :]
        h = oh[:, None] + kh[None, :]
        w = ow[:, None] + kw[None, :]
        x_off = ((ci[None, :].to(tl.int64) * D + d) * H + h) * W + w
        xv = tl.load(x_batch + x_off, mask=p_mask[:, None] & r_mask[None, :], other=0.0)
        w_off = co[None, :].to(tl.int64) * n_red + r[:, None]
        wv = tl.load(w_ptr + w_off, mask=r_mask[:, None] & c_mask[None, :], other=0.0)
        acc += tl.dot(xv, wv, input_precision="ieee")
    y_off = (n * C_out + co.to(tl.int64))[None, :] * n_out + p.to(tl.int64)[:, None]
    tl.store(y_ptr + y_off, acc, mask=p_mask[:, None] & c_mask[None, :])


class ModelNew(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = False):
        super().__init__()
        if (stride, padding, dilation, groups, bias) != (1, 0, 1, 1, False):
            raise ValueError("this candidate implements stride 1, no padding, no groups, no bias")
        self.conv3d = nn.Conv3d(in_channels, out_channels, (kernel_size,) * 3, bias=False)
        self.kernel_size = kernel_size

    def forward(self, x):
        x = x.contiguous()
        w = self.conv3d.weight.contiguous()
        N, C_in, D, H, W = x.shape
        C_out = w.shape[0]
        ks = self.kernel_size
        OD, OH, OW = D - ks + 1, H - ks + 1, W - ks + 1
        y = torch.empty((N, C_out, OD, OH, OW), device=x.device, dtype=x.dtype)
        block_p, block_c, block_r = 64, 64, 32
        grid = (triton.cdiv(OD * OH * OW, block_p), triton.cdiv(C_out, block_c), N)
        _conv3d_kernel[grid](x, w, y, C_in, D, H, W, C_out, OD, OH, OW,
                             KS=ks, BLOCK_P=block_p, BLOCK_C=block_c, BLOCK_R=block_r)
        return y
