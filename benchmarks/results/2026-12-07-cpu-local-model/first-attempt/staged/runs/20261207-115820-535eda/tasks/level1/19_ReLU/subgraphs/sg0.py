import torch
import torch.nn as nn



class TaskModule(nn.Module):
    """
    Simple model that performs a ReLU activation.
    """
    def __init__(self):
        super(TaskModule, self).__init__()
    
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Applies ReLU activation to the input tensor.

        Args:
            x (torch.Tensor): Input tensor of any shape.

        Returns:
            torch.Tensor: Output tensor with ReLU applied, same shape as input.
        """
        return torch.relu(x)

batch_size = 4096

dim = 393216



# --- subgraph sg0: TaskModule, recorded from a forward of FusedModel ---
Model = TaskModule

size_4096 = 4096
size_393216 = 393216


def get_inputs():
    return [torch.randn((size_4096, size_393216))]


def get_init_inputs():
    return []
