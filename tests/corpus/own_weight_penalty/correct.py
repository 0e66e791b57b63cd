import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def mean_square_kernel(w_ptr, out_ptr, n, coef, BLOCK: tl.constexpr):
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, n, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        w = tl.load(w_ptr + offs, mask=offs < n, other=0.0)
        acc += w * w
    tl.store(out_ptr, coef * (tl.sum(acc, axis=0) / n))


class ModelNew(nn.Module):
    def __init__(self, coef: float):
        super().__init__()
        self.coef = coef

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        w = w.contiguous()
        out = torch.empty((), device=w.device, dtype=w.dtype)
        mean_square_kernel[(1,)](w, out, w.numel(), self.coef, BLOCK=1024)
        return out
