import torch
import torch.nn as nn


class Model(nn.Module):
    """Linear layer, tanh, then softmax over the output features."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        x = torch.tanh(self.linear(x))
        return torch.softmax(x, dim=1)


batch_size = 256
in_features = 384
out_features = 200


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]
