import torch
import torch.nn as nn
import triton
import triton.language as tl


# --- kernel for sg0 (TaskModule) ---
@triton.jit
def sg0_sigmoid_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.exp(-x)
    tl.store(out_ptr + offs, 1 / (1 + y), mask=mask)

class sg0_ModelNew(nn.Module):

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Applies Sigmoid activation to the input tensor.

        Args:
            x (torch.Tensor): Input tensor of any shape.

        Returns:
            torch.Tensor: Output tensor with Sigmoid applied, same shape as input.
        """
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        sg0_sigmoid_kernel[triton.cdiv(n, 1024),](x, out, n, BLOCK=1024)
        return out

# --- subgraph classes served by their kernels ---
TaskModule = sg0_ModelNew


# --- the fused model ---
batch_size = 4096

dim = 393216

class FusedModel(nn.Module):
    """The task's module as one subgraph (no fuse call: its forward is already one subgraph); the
    constructor arguments are passed on untouched."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.body = TaskModule(*args, **kwargs)

    def forward(self, *inputs):
        return self.body(*inputs)


class ModelNew(FusedModel):
    """KernelBench entry point: the fused model, each subgraph served by its verified Triton kernel."""


def get_inputs():
    x = torch.rand(batch_size, dim)
    return [x]

def get_init_inputs():
    return []  # No special initialization inputs needed
