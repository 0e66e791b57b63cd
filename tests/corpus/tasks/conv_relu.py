"""Own corpus task: 3x3 convolution then ReLU, on inputs of a large scale (outputs of about 170).

At this scale the reference's cuDNN convolution differs with TF32 on (torch's default, what
KernelBench's eval runs) by more than KernelBench's atol=rtol=1e-2 on outputs near zero, while an
fp32 kernel stays within our 1e-4 of the fp32 reference.
"""

import torch
import torch.nn as nn


class Model(nn.Module):
    """Conv2d (with bias) followed by ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


batch_size = 2
in_channels = 16
out_channels = 8
kernel_size = 3
height = 12
width = 12


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width) * 300.0]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]
