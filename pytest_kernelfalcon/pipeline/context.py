"""The run context: ``RunContext`` (what a run shares), ``TaskBudget`` (per task), ``TaskScope``, and the
exceptions that end a task (``BudgetExceeded``, ``HarnessFailure``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.core.outcome import Usage
from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.pipeline.config import PipelineConfig
from pytest_kernelfalcon.pipeline.prompts import Prompts, load_prompts
from pytest_kernelfalcon.pipeline.rundir import RunDir

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.checker import Checker
    from pytest_kernelfalcon.core.tasks import TaskFile
    from pytest_kernelfalcon.core.verdict import Verdict
    from pytest_kernelfalcon.executor.base import Executor
    from pytest_kernelfalcon.llm.base import Completion, Provider

EventSink = Callable[[dict[str, Any]], None]


class HarnessFailure(Exception):
    """Not the candidate's failure: the harness or the machine (``harness_error``), or the task's own
    reference (``reference_error``). The task stops with that category; nothing goes to the LLM."""

    def __init__(self, cause: str, category: str = Category.HARNESS_ERROR.value) -> None:
        super().__init__(cause)
        self.cause, self.category = cause, category


NOT_THE_CANDIDATES = (Category.HARNESS_ERROR, Category.REFERENCE_ERROR)


def stop_on_harness_error(verdict: Verdict) -> Verdict:
    """Return ``verdict``; raise ``HarnessFailure`` when it blames the harness or the task's reference
    (nothing the LLM could fix: never fed back as feedback), ``BudgetExceeded`` when the task's deadline
    passed during the check."""
    if "deadline" in verdict.audit:
        raise BudgetExceeded("wall time", verdict.detail)
    if verdict.category in NOT_THE_CANDIDATES:
        raise HarnessFailure(verdict.detail, verdict.category.value)
    return verdict


class BudgetExceeded(Exception):
    """A per-task budget ran out; ``what`` names it (calls, tokens, dollars, wall time)."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what} budget exceeded: {detail}")
        self.what = what


class TaskBudget:
    """Counters of one task (LLM calls, tokens, dollars, wall time), safe across worker threads."""

    def __init__(self, config: PipelineConfig, usage: Usage | None = None,
                 sources: tuple[str, ...] = ()) -> None:
        from pytest_kernelfalcon.executor.deadline import Deadline

        self.config = config
        self.started = time.monotonic()
        # every check of the task waits at most this long (locks, leases, workers, jobs): the wall-time budget
        self.deadline = Deadline(config.task_timeout_s, what="the task (--falcon-timeout)")
        self._lock = threading.Lock()
        self._usage = usage or Usage()
        self._sources: set[str] = set(sources)

    @property
    def usage(self) -> Usage:
        """Return the usage charged so far."""
        with self._lock:
            return self._usage

    @property
    def sources(self) -> frozenset[str]:
        """Return the sources (live, replay, scripted, hand-written) of the answers charged."""
        with self._lock:
            return frozenset(self._sources)

    def remaining_s(self) -> float:
        """Return the seconds left of the task's wall-time budget."""
        return self.config.task_timeout_s - (time.monotonic() - self.started)

    def check_time(self) -> None:
        """Raise ``BudgetExceeded`` once the wall-time budget is spent."""
        if self.remaining_s() <= 0:
            raise BudgetExceeded("wall time", f"task ran over {self.config.task_timeout_s:g} s")

    def before_call(self) -> None:
        """Raise ``BudgetExceeded`` when another LLM call would exceed a budget."""
        self.check_time()
        cfg, used = self.config, self.usage
        if cfg.max_llm_calls is not None and used.calls >= cfg.max_llm_calls:
            raise BudgetExceeded("LLM calls", f"{used.calls} of {cfg.max_llm_calls} calls used")
        tokens = used.input_tokens + used.output_tokens
        if cfg.max_tokens is not None and tokens >= cfg.max_tokens:
            raise BudgetExceeded("tokens", f"{tokens} of {cfg.max_tokens} tokens used")
        if cfg.budget_usd is not None and used.cost_usd is not None and used.cost_usd >= cfg.budget_usd:
            raise BudgetExceeded("dollars", f"${used.cost_usd:.4f} of ${cfg.budget_usd:.4f} spent")

    def charge(self, completion: Completion) -> Usage:
        """Add one completion's tokens and cost; return the usage of that call."""
        u = completion.usage
        one = Usage(1, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
                    completion.cost_usd if completion.cost_usd is not None else 0.0,
                    0 if u.reported else 1)
        with self._lock:
            self._usage = self._usage + one
            self._sources.add(completion.source)
        return one


@dataclass
class RunContext:
    """What every task of a run shares: settings, provider (recorded), checker, run dir, prompts."""

    config: PipelineConfig
    provider: Provider
    checker: Checker
    rundir: RunDir
    executor: Executor
    prompts: Prompts = field(default_factory=load_prompts)
    on_event: EventSink | None = None

    @classmethod
    def build(cls, config: PipelineConfig, provider: Provider, *, checker: Checker | None = None,
              executor: Executor | None = None, rundir: RunDir | None = None,
              on_event: EventSink | None = None, record: bool = True) -> RunContext:
        """Return a context: run dir made, provider wrapped by the ``Recorder``, ``run.json`` written."""
        from pytest_kernelfalcon.executor.cold import ColdExecutor

        rundir = rundir or RunDir.create(config.run_root)
        executor = executor or ColdExecutor()
        checker = checker or _make_checker(config, executor)
        if record:
            from pytest_kernelfalcon.llm import Recorder

            provider = Recorder(provider, rundir.path)
        prompts = load_prompts(config.prompts_dir)
        ctx = cls(config, provider, checker, rundir, executor, prompts, on_event)
        rundir.write_run_json(run_record(ctx))
        return ctx

    def emit(self, event: dict[str, Any]) -> None:
        """Record ``event`` in ``events.jsonl`` and pass it to the live-progress callback."""
        record = self.rundir.event(event)
        if self.on_event is not None:
            self.on_event(record)

    def close(self) -> None:
        """Close the provider (its recorder flushes); the checker belongs to whoever made it."""
        self.provider.close()


def _make_checker(config: PipelineConfig, executor: Executor) -> Checker:
    from pytest_kernelfalcon.checker.checker import Checker, CheckOptions

    return Checker(config.check or CheckOptions(), executor)


def run_record(ctx: RunContext) -> dict[str, Any]:
    """Return ``run.json``'s content: config, versions, GPU, isolation, prompt hashes, provider, model."""
    from pytest_kernelfalcon.core.gpus import cuda_device_name
    from pytest_kernelfalcon.reports.report import package_versions

    return {
        "run_id": ctx.rundir.run_id,
        "config": ctx.config.to_json(),
        "provider": getattr(ctx.provider, "name", type(ctx.provider).__name__),
        "model": getattr(ctx.provider, "model", ctx.config.model),
        "prompts": ctx.prompts.hashes(),
        "prompt_origins": dict(ctx.prompts.origins),
        "versions": package_versions(),
        "gpu": cuda_device_name(),
        "isolation": isolation_of(ctx.checker.executor),
    }


def isolation_of(executor: Any) -> dict[str, Any] | None:
    """What isolation the executor applies to candidates (``None`` when it does not say)."""
    report = getattr(executor, "isolation_report", None)
    return report.to_json() if report is not None else None


@dataclass(frozen=True)
class TaskScope:
    """One task's view of the run: the context, the task, its directory and its budget."""

    ctx: RunContext
    task: TaskFile
    dir: Path
    budget: TaskBudget

    def emit(self, kind: str, **fields: Any) -> None:
        """Record an event of this task (``task`` and ``type`` filled in)."""
        self.ctx.emit({"type": kind, "task": self.task.id, **fields})
