"""Executors (parent side): how a job directory is run in a child process.

``EXECUTORS`` maps an option value to the executor's factory, like ``llm.PROVIDERS``:
``cold`` starts a fresh process per job, ``warm`` keeps pre-imported workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_kernelfalcon.executor.base import Executor, Job, JobResult
from pytest_kernelfalcon.executor.cold import ColdExecutor
from pytest_kernelfalcon.executor.warm import WarmExecutor

EXECUTORS: dict[str, Callable[..., Any]] = {"cold": ColdExecutor, "warm": WarmExecutor}

__all__ = ["EXECUTORS", "ColdExecutor", "Executor", "Job", "JobResult", "WarmExecutor"]
