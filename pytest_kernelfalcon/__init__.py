"""pytest-kernelfalcon: PyTorch models to verified Triton kernels, judged by a trusted checker."""

from pytest_kernelfalcon.checker import Checker, CheckOptions, verify_candidate
from pytest_kernelfalcon.outcome import TaskOutcome, Usage
from pytest_kernelfalcon.verdict import Category, Tolerance, Verdict

__all__ = ["Category", "CheckOptions", "Checker", "TaskOutcome", "Tolerance", "Usage", "Verdict",
           "verify_candidate"]
__version__ = "0.1.0"
