"""The agent pipeline: fuse -> extract -> generate -> compose, deterministic control in Python."""

from pytest_kernelfalcon.pipeline.config import (
           BudgetExceeded,
           PipelineConfig,
           RunContext,
           TaskBudget,
)
from pytest_kernelfalcon.pipeline.prompts import Prompts, load_prompts
from pytest_kernelfalcon.pipeline.rundir import RunDir
from pytest_kernelfalcon.pipeline.runner import run_task

__all__ = ["BudgetExceeded", "PipelineConfig", "Prompts", "RunContext", "RunDir", "TaskBudget",
           "load_prompts", "run_task"]
