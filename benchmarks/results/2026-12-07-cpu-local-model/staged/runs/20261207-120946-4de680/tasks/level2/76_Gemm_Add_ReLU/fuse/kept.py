import torch
import torch.nn as nn


class TaskModule(nn.Module):
    """
    Simple model that performs a matrix multiplication, adds a bias term, and applies ReLU.
    """
    def __init__(self, in_features, out_features, bias_shape):
        super(TaskModule, self).__init__()
        self.gemm = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x):
        """
        Args:
            x (torch.Tensor): Input tensor with shape (batch_size, in_features).
        Returns:
            torch.Tensor: Output tensor with shape (batch_size, out_features).
        """
        x = self.gemm(x)
        x = x + self.bias
        x = torch.relu(x)
        return x

batch_size = 1024
in_features = 8192
out_features = 8192
bias_shape = (out_features,)

def get_inputs():
    return [torch.rand(batch_size, in_features)]

def get_init_inputs():
    return [in_features, out_features, bias_shape]


class FusedModel(nn.Module):
    """The task's module as one subgraph (no fuse call: its forward is already one subgraph); the
    constructor arguments are passed on untouched."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.body = TaskModule(*args, **kwargs)

    def forward(self, *inputs):
        return self.body(*inputs)
