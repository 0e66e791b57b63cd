"""pytest-kernelfalcon: PyTorch models to verified Triton kernels, judged by a trusted checker.

The public names load on first use, so a child process that imports one module of the
package never loads the checker or the executors.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker import Checker, CheckOptions, verify_candidate
    from pytest_kernelfalcon.core.outcome import TaskOutcome, Usage
    from pytest_kernelfalcon.core.verdict import Category, Tolerance, Verdict

_HOMES = {
    "Checker": "pytest_kernelfalcon.checker", "CheckOptions": "pytest_kernelfalcon.checker",
    "verify_candidate": "pytest_kernelfalcon.checker", "TaskOutcome": "pytest_kernelfalcon.core.outcome",
    "Usage": "pytest_kernelfalcon.core.outcome", "Category": "pytest_kernelfalcon.core.verdict",
    "Tolerance": "pytest_kernelfalcon.core.verdict", "Verdict": "pytest_kernelfalcon.core.verdict",
}
__all__ = ["CheckOptions", "Category", "Checker", "TaskOutcome", "Tolerance", "Usage", "Verdict",
           "verify_candidate"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Return a public name, importing its module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'pytest_kernelfalcon' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
