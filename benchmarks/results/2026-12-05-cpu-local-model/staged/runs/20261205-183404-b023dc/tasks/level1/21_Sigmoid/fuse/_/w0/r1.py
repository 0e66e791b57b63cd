import torch
import torch.nn as nn

import torch

import torch.nn as nn

class SigmoidSubgraph(nn.Module):
    """
    Subgraph that performs a Sigmoid activation.
    """
    def __init__(self):
        super(SigmoidSubgraph, self).__init__()
    
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Applies Sigmoid activation to the input tensor.

        Args:
            x (torch.Tensor): Input tensor of any shape.

        Returns:
            torch.Tensor: Output tensor with Sigmoid applied, same shape as input.
        """
        return torch.sigmoid(x)

class FusedModel(nn.Module):
    """
    Simple model that performs a Sigmoid activation.
    """
    def __init__(self):
        super(FusedModel, self).__init__()
        self.sigmoid_subgraph = SigmoidSubgraph()
    
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Applies Sigmoid activation to the input tensor.

        Args:
            x (torch.Tensor): Input tensor of any shape.

        Returns:
            torch.Tensor: Output tensor with Sigmoid applied, same shape as input.
        """
        return self.sigmoid_subgraph(x)



# --- from the task: constants, helpers, inputs ---
batch_size = 4096

dim = 393216

def get_inputs():
    x = torch.rand(batch_size, dim)
    return [x]

def get_init_inputs():
    return []  # No special initialization inputs needed
