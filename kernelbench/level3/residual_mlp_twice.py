import torch
import torch.nn as nn
import torch.nn.functional as F


class MLPBlock(nn.Module):
    """Pre-norm residual MLP block: x + W2 gelu(W1 layernorm(x))."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc_in = nn.Linear(dim, hidden)
        self.fc_out = nn.Linear(hidden, dim)

    def forward(self, x):
        return x + self.fc_out(F.gelu(self.fc_in(self.norm(x))))


class Model(nn.Module):
    """Two identical residual MLP blocks in sequence (separate weights, same shapes)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.block1 = MLPBlock(dim, hidden)
        self.block2 = MLPBlock(dim, hidden)

    def forward(self, x):
        return self.block2(self.block1(x))


batch_size = 256
dim = 256
hidden = 1024


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [dim, hidden]
