import torch
import torch.nn as nn


class Model(nn.Module):
    """Batch-level top-1 routing: a gate score picks one of two experts for the whole batch.

    The branch depends on the data (the sign of the mean gate score), so it is
    decided at run time with ``.item()``.
    """

    def __init__(self, dim):
        super().__init__()
        self.gate = nn.Linear(dim, 1, bias=False)
        self.expert_a = nn.Linear(dim, dim)
        self.expert_b = nn.Linear(dim, dim)

    def forward(self, x):
        score = self.gate(x).mean()
        if score.item() > 0:
            h = self.expert_a(x)
        else:
            h = self.expert_b(x)
        return x + torch.relu(h)


batch_size = 512
dim = 512


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [dim]
