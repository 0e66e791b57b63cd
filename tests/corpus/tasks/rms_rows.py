"""Own corpus task: RMS-normalise each row, then scale by a learned weight."""

import torch
import torch.nn as nn


class Model(nn.Module):
    """Row-wise RMS normalisation with a weight vector."""

    def __init__(self, features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.sqrt(torch.mean(x * x, dim=-1, keepdim=True) + self.eps)
        return x / rms * self.weight


batch = 24
features = 300
eps = 1e-5


def get_inputs():
    return [torch.randn(batch, features)]


def get_init_inputs():
    return [features, eps]
