import torch
import torch.nn as nn


class Model(nn.Module):
    """Sum of a 3-D tensor over one dimension (the dimension is dropped)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.sum(x, dim=self.dim)


batch_size = 32
rows = 256
cols = 255
reduce_dim = 1


def get_inputs():
    return [torch.randn(batch_size, rows, cols)]


def get_init_inputs():
    return [reduce_dim]
