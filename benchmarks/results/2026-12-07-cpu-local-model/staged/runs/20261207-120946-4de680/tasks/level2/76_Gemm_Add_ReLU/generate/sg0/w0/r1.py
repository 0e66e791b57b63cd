import torch
import torch.nn as nn
import triton
import triton.language as tl

@triton.jit
def gemm_add_relu_kernel(x_ptr, y_ptr, out_ptr, alpha, beta, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.load(y_ptr + offs, mask=mask)
    out = tl.empty_like(x)
    out = alpha * x + beta * y
    out = torch.relu(out)
    tl.store(out_ptr + offs, out, mask=mask)

class ModelNew(nn.Module):
    def __init__(self, alpha, beta):
        super().__init__()
        self.gemm_add_relu = nn.Linear(in_features, out_features, bias=False)
        self.alpha = alpha
        self.beta = beta

    def forward(self, x):
        """
        Args:
            x (torch.Tensor): Input tensor with shape (batch_size, in_features).
        Returns:
            torch.Tensor: Output tensor with shape (batch_size, out_features).
        """
        x = self.gemm_add_relu(x)
        x = x * self.alpha + self.beta
        x = torch.relu(x)
        return x

batch_size = 1024
in_features = 8192
out_features = 8192
bias_shape = (out_features,)

def get_inputs():
    return [torch.rand(batch_size, in_features)]

def get_init_inputs():
    return [alpha, beta]
