"""The agent pipeline: fuse -> extract -> generate -> compose, deterministic control in Python.

The public names load on first use, so reading ``pipeline.config`` (the plugin does, at start)
does not load the stages.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_kernelfalcon.pipeline.config import PipelineConfig
    from pytest_kernelfalcon.pipeline.context import (
        BudgetExceeded,
        HarnessFailure,
        RunContext,
        TaskBudget,
    )
    from pytest_kernelfalcon.pipeline.prompts import Prompts, load_prompts
    from pytest_kernelfalcon.pipeline.rundir import RunDir
    from pytest_kernelfalcon.pipeline.runner import run_task

_HOMES = {
    "PipelineConfig": "config", "BudgetExceeded": "context", "HarnessFailure": "context",
    "RunContext": "context", "TaskBudget": "context", "Prompts": "prompts", "load_prompts": "prompts",
    "RunDir": "rundir", "run_task": "runner",
}
__all__ = ["BudgetExceeded", "HarnessFailure", "PipelineConfig", "Prompts", "RunContext", "RunDir",
           "TaskBudget", "load_prompts", "run_task"]


def __getattr__(name: str) -> Any:
    """Return a public name, importing its module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'pytest_kernelfalcon.pipeline' has no attribute {name!r}")
    return getattr(import_module(f"pytest_kernelfalcon.pipeline.{_HOMES[name]}"), name)
