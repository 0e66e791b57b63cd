import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def axpy_kernel(x_ptr, y_ptr, out_ptr, sync_ptr, n, alpha, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, x + alpha * y, mask=mask)
    # grid-wide barrier: every block has stored its tile before any returns
    tl.atomic_add(sync_ptr, 1)
    arrived = tl.atomic_add(sync_ptr, 0)
    while arrived <= tl.num_programs(0):
        arrived = tl.atomic_add(sync_ptr, 0)


class ModelNew(nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        y = y.contiguous()
        out = torch.empty_like(x)
        sync = torch.zeros(1, device=x.device, dtype=torch.int32)
        n = out.numel()
        BLOCK = 512
        axpy_kernel[(triton.cdiv(n, BLOCK),)](x, y, out, sync, n, self.alpha, BLOCK=BLOCK)
        return out
