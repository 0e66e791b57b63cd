import torch
import torch.nn as nn


class Model(nn.Module):
    """Elementwise chain: SiLU, scale, shift, clamp."""

    def __init__(self, scale, shift, low, high):
        super().__init__()
        self.scale = scale
        self.shift = shift
        self.low = low
        self.high = high

    def forward(self, x):
        x = x * torch.sigmoid(x)
        x = x * self.scale + self.shift
        return torch.clamp(x, min=self.low, max=self.high)


batch_size = 128
channels = 32
length = 256
scale = 2.0
shift = -0.5
low = -1.0
high = 1.5


def get_inputs():
    return [torch.randn(batch_size, channels, length) * 2.0]


def get_init_inputs():
    return [scale, shift, low, high]
