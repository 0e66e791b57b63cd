"""Own corpus task with a tiny scalar output: coef * mean(w ** 2), coef = 1e-5."""

import torch
import torch.nn as nn


class Model(nn.Module):
    """A weight-decay style penalty whose value is far below the fp32 atol."""

    def __init__(self, coef: float):
        super().__init__()
        self.coef = coef

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.coef * torch.mean(w * w)


rows = 64
cols = 129
coef = 1e-5


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return [coef]
