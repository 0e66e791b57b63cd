"""``run_task``: fuse -> extract -> generate -> compose for one task, with budgets, events and resume."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.core.outcome import TaskOutcome
from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.pipeline.compose import Kernel, compose_model
from pytest_kernelfalcon.pipeline.context import (
    BudgetExceeded,
    HarnessFailure,
    TaskBudget,
    TaskScope,
)
from pytest_kernelfalcon.pipeline.direct import direct_model
from pytest_kernelfalcon.pipeline.extract import ExtractRequest, extract_subgraphs
from pytest_kernelfalcon.pipeline.fuse import fuse_model
from pytest_kernelfalcon.pipeline.generate import generate_kernel
from pytest_kernelfalcon.pipeline.llmcall import load_usage
from pytest_kernelfalcon.pipeline.rundir import atomic_write_json, read_json

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.tasks import TaskFile
    from pytest_kernelfalcon.pipeline.context import RunContext


class StageFailed(Exception):
    """A stage ended the task: carries the stage, category and detail (observations are data, exits raise)."""

    def __init__(self, stage: str, category: str, detail: str) -> None:
        super().__init__(f"{stage}: {category}: {detail}")
        self.stage, self.category, self.detail = stage, category, detail


def run_task(task: TaskFile, ctx: RunContext) -> TaskOutcome:
    """Run the pipeline on ``task`` and return its outcome (a finished task's saved outcome as is)."""
    task_dir = ctx.rundir.task_dir(task.id)
    saved = _saved_outcome(task_dir)
    if saved is not None:
        return saved
    usage, sources = load_usage(task_dir)
    scope = TaskScope(ctx, task, task_dir, TaskBudget(ctx.config, usage, sources))
    start = time.monotonic()
    scope.emit("task_start", level=task.level)
    rounds: list[int] = []
    try:
        outcome = _pipeline(scope, rounds)
    except StageFailed as failed:
        outcome = TaskOutcome(task.id, task.level, False, stage=failed.stage, category=failed.category,
                              detail=failed.detail)
    outcome = replace(outcome, rounds=sum(rounds), usage=scope.budget.usage,
                      wall_s=round(time.monotonic() - start, 3), source=outcome_source(scope.budget.sources))
    atomic_write_json(task_dir / "outcome.json", outcome.to_json())
    scope.emit("task_end", passed=outcome.passed, stage=outcome.stage, category=outcome.category)
    return outcome


def _saved_outcome(task_dir: Any) -> TaskOutcome | None:
    """A finished task's outcome, to reuse on resume (a harness error is not reused: the machine may be fixed)."""
    if not (task_dir / "outcome.json").is_file():
        return None
    outcome = TaskOutcome.from_json(read_json(task_dir / "outcome.json"))
    return None if outcome.category == Category.HARNESS_ERROR.value else outcome


def outcome_source(sources: frozenset[str]) -> str:
    """Return the outcome's source label from the answers' sources (live beats replay beats scripted)."""
    for name, label in (("live", "live"), ("replay", "replay"), ("hand-written", "hand-written"),
                        ("scripted", "scripted")):
        if name in sources:
            return label
    return "check"


def _stage(scope: TaskScope, name: str, fn: Any, *args: Any, **fields: Any) -> Any:
    """Run one stage between start/end events; a budget running out ends the task at this stage."""
    from pytest_kernelfalcon.llm.base import ProviderError

    scope.emit("stage_start", stage=name, **fields)
    try:
        scope.budget.check_time()
        result = fn(*args)
    except BudgetExceeded as exc:
        scope.emit("stage_end", stage=name, ok=False, category=Category.BUDGET_EXCEEDED.value, **fields)
        raise StageFailed(name, Category.BUDGET_EXCEEDED.value, str(exc)) from exc
    except ProviderError as exc:
        scope.emit("stage_end", stage=name, ok=False, category=Category.LLM_ERROR.value, **fields)
        raise StageFailed(name, Category.LLM_ERROR.value, f"{type(exc).__name__}: {exc}") from exc
    except HarnessFailure as exc:
        scope.emit("stage_end", stage=name, ok=False, category=exc.category, **fields)
        raise StageFailed(name, exc.category, exc.cause) from exc
    ok = bool(getattr(result, "passed", getattr(result, "error", None) is None))
    scope.emit("stage_end", stage=name, ok=ok, resumed=getattr(result, "resumed", False), **fields)
    return result


def _pipeline(scope: TaskScope, rounds: list[int]) -> TaskOutcome:
    if scope.ctx.config.strategy == "direct":
        return _direct(scope, rounds)
    fused = _stage(scope, "fuse", fuse_model, scope)
    rounds.append(fused.rounds)
    if not fused.passed:
        raise StageFailed("fuse", str(fused.category), fused.detail)
    extracted = _stage(scope, "extract", extract_subgraphs, _extract_request(scope, fused.fused_path))
    if extracted.error is not None or not extracted.specs:
        raise StageFailed("extract", Category.RUNTIME_ERROR.value, extracted.error or "no subgraph was called")
    if extracted.outside_ops:
        scope.emit("warning", stage="extract", detail=f"FusedModel computes outside subgraphs: "
                                                      f"{dict(extracted.outside_ops)}")
    whole_task = fused.how == "kept" and len(extracted.specs) == 1
    kernels = [_generate(scope, spec, rounds, whole_task) for spec in extracted.specs]
    composed = _stage(scope, "compose", compose_model, scope, fused.fused_path, kernels)
    rounds.append(composed.rounds)
    if not composed.passed:
        raise StageFailed("compose", str(composed.category), composed.detail)
    verdict = composed.verdict
    return TaskOutcome(scope.task.id, scope.task.level, True, detail=f"composed ({composed.how})",
                       seeds=verdict.seeds, shapes=verdict.shapes, low_signal=verdict.low_signal,
                       model_new=str(composed.model_new),
                       extra={"specs": [s.id for s in extracted.specs], "fuse": fused.how,
                              "compose": composed.how}).with_verdict(verdict)


def _direct(scope: TaskScope, rounds: list[int]) -> TaskOutcome:
    result = _stage(scope, "direct", direct_model, scope)
    rounds.append(result.rounds)
    if not result.passed:
        raise StageFailed("direct", str(result.category), result.detail)
    verdict = result.verdict
    return TaskOutcome(scope.task.id, scope.task.level, True, detail="direct", seeds=verdict.seeds,
                       shapes=verdict.shapes, low_signal=verdict.low_signal, model_new=str(result.model_new),
                       extra={"strategy": "direct"}).with_verdict(verdict)


def _generate(scope: TaskScope, spec: Any, rounds: list[int], whole_task: bool) -> Kernel:
    result = _stage(scope, "generate", generate_kernel, scope, spec, whole_task, subgraph=spec.id)
    rounds.append(result.rounds)
    if not result.passed:
        raise StageFailed("generate", str(result.category), f"{spec.id} ({spec.class_name}): {result.detail}")
    return Kernel(spec.id, spec.class_name, result.kernel_path)


def _extract_request(scope: TaskScope, fused_path: Any) -> ExtractRequest:
    checker = scope.ctx.checker
    return ExtractRequest(scope.task.path, fused_path, scope.dir, device=checker.device,
                          gpu=checker.options.gpu, timeout_s=scope.ctx.config.extract_timeout_s,
                          executor=checker.executor)
