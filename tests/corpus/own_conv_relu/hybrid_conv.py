import torch
import torch.nn as nn
import torch.nn.functional as F
import triton
import triton.language as tl


@triton.jit
def bias_relu_kernel(y_ptr, b_ptr, out_ptr, n, HW, C, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    y = tl.load(y_ptr + offs, mask=inside, other=0.0)
    b = tl.load(b_ptr + (offs // HW) % C, mask=inside, other=0.0)
    tl.store(out_ptr + offs, tl.maximum(y + b, 0.0), mask=inside)


class ModelNew(nn.Module):
    """A hybrid: torch's convolution, then a Triton epilogue (bias and ReLU in one pass)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.conv.weight).contiguous()
        out = torch.empty_like(y)
        n = y.numel()
        bias_relu_kernel[(triton.cdiv(n, 1024),)](y, self.conv.bias, out, n, y.shape[2] * y.shape[3], y.shape[1],
                                                  BLOCK=1024)
        return out
