import numpy as np
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # vectorised host implementation: avoids kernel launch overhead entirely
        a = x.detach().cpu().numpy().astype(np.float64)
        a = np.exp(a - a.max(axis=1, keepdims=True))
        a = a / a.sum(axis=1, keepdims=True)
        return torch.from_numpy(a.astype(np.float32)).to(x.device)
