import torch
import torch.nn as nn

import torch

import torch.nn as nn

class ReLUSubgraph(nn.Module):
    """
    Subgraph that applies a ReLU activation to its input tensor.
    """
    def __init__(self):
        super(ReLUSubgraph, self).__init__()
    
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Applies ReLU activation to the input tensor.

        Args:
            x (torch.Tensor): Input tensor of any shape.

        Returns:
            torch.Tensor: Output tensor with ReLU applied, same shape as input.
        """
        return torch.relu(x)

class FusedModel(nn.Module):
    """
    Model that performs a ReLU activation using a subgraph.
    """
    def __init__(self):
        super(FusedModel, self).__init__()
        self.relu_subgraph = ReLUSubgraph()
    
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Applies ReLU activation to the input tensor.

        Args:
            x (torch.Tensor): Input tensor of any shape.

        Returns:
            torch.Tensor: Output tensor with ReLU applied, same shape as input.
        """
        return self.relu_subgraph(x)



# --- from the task: constants, helpers, inputs ---
batch_size = 4096

dim = 393216

def get_inputs():
    x = torch.rand(batch_size, dim)
    return [x]

def get_init_inputs():
    return []  # No special initialization inputs needed
