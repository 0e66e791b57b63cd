import torch
import torch.nn as nn


class Model(nn.Module):
    """Residual tanh refinement repeated until the mean activation turns negative.

    At most ``max_steps`` steps; the number of steps taken depends on the data.
    """

    def __init__(self, dim, max_steps):
        super().__init__()
        self.cell = nn.Linear(dim, dim)
        self.max_steps = max_steps

    def forward(self, x):
        for _ in range(self.max_steps):
            x = x + 0.5 * torch.tanh(self.cell(x))
            if x.mean().item() < 0:
                break
        return x


batch_size = 512
dim = 256
max_steps = 4


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [dim, max_steps]
