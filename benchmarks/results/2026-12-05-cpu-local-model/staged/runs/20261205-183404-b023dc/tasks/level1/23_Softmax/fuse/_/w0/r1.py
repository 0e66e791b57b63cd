import torch
import torch.nn as nn

import torch

import torch.nn as nn

class SoftmaxSubgraph(nn.Module):
    """
    Subgraph that performs a Softmax activation.
    """
    def __init__(self, dim: int):
        super(SoftmaxSubgraph, self).__init__()
        self.dim = dim
    
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Applies Softmax activation to the input tensor.

        Args:
            x (torch.Tensor): Input tensor of shape (batch_size, num_features).

        Returns:
            torch.Tensor: Output tensor with Softmax applied, same shape as input.
        """
        return torch.softmax(x, dim=self.dim)

class FusedModel(nn.Module):
    """
    Simple model that performs a Softmax activation using subgraph classes.
    """
    def __init__(self, dim: int):
        super(FusedModel, self).__init__()
        self.softmax_subgraph = SoftmaxSubgraph(dim)
    
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Applies Softmax activation to the input tensor.

        Args:
            x (torch.Tensor): Input tensor of shape (batch_size, num_features).

        Returns:
            torch.Tensor: Output tensor with Softmax applied, same shape as input.
        """
        return self.softmax_subgraph(x)



# --- from the task: constants, helpers, inputs ---
batch_size = 4096

dim = 393216

def get_inputs():
    x = torch.rand(batch_size, dim)
    return [x]

def get_init_inputs():
    return []  # No special initialization inputs needed
