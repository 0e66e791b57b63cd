import torch
import torch.nn as nn


class Model(nn.Module):
    """Plain matrix product of an (M, K) and a (K, N) matrix."""

    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return torch.matmul(a, b)


M = 256
K = 512
N = 384


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
