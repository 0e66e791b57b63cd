"""pytest-kernelfalcon: PyTorch models to verified Triton kernels, judged by a trusted checker."""

from pytest_kernelfalcon.outcome import TaskOutcome, Usage
from pytest_kernelfalcon.verdict import Category, Tolerance, Verdict

__all__ = ["Category", "TaskOutcome", "Tolerance", "Usage", "Verdict"]
__version__ = "0.1.0"
