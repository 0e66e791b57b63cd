"""Generate stage with real Triton (interpreter) and the real checker: feedback, dedup, early exit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pipeline_tiny as tiny
import pytest
from pipeline_tiny import seed_task_dir, task_of

from pytest_kernelfalcon.llm import ReplayMiss, ScriptedProvider, ScriptStep
from pytest_kernelfalcon.pipeline.context import TaskBudget, TaskScope
from pytest_kernelfalcon.pipeline.extract import load_specs
from pytest_kernelfalcon.pipeline.generate import generate_kernel
from pytest_kernelfalcon.pipeline.runner import run_task

pytestmark = pytest.mark.slow  # real checker children: about 10 s per check on CPU


def scope_for(ctx: Any, prepared: Path) -> tuple[TaskScope, Any]:
    task_dir = seed_task_dir(ctx, prepared)
    spec = load_specs(task_dir / "specs.json").specs[0]
    return TaskScope(ctx, task_of(prepared), task_dir, TaskBudget(ctx.config)), spec


def by_key(answers: dict[tuple[int, int], Any]) -> Any:
    """Return a callback answering generate calls by (worker, round); others get ReplayMiss."""
    return lambda req: answers.get((req.key.worker, req.key.round), ReplayMiss(f"none for {req.key}"))


def events(ctx: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in ctx.rundir.events() if e["type"] == kind]


def test_compile_error_is_fed_back_and_fixed_next_round(make_ctx: Any, prepared: Path) -> None:
    provider = ScriptedProvider(by_key({(0, 1): tiny.answer(tiny.COMPILE_ERROR_KERNEL),
                                        (0, 2): tiny.answer(tiny.KERNEL)}))
    ctx = make_ctx(provider)
    scope, spec = scope_for(ctx, prepared)
    result = generate_kernel(scope, spec)
    assert result.passed and (result.worker, result.round) == (0, 2)
    first = [e for e in events(ctx, "verdict") if e["worker"] == 0 and e["round"] == 1][0]
    assert first["category"] == "compile_error"
    second_prompt = [r for r in provider.requests if (r.key.worker, r.key.round) == (0, 2)][0].prompt
    assert "compile_error" in second_prompt and first["detail"][:60] in second_prompt
    assert (scope.dir / "generate" / "sg0" / "kernel.py").read_text() == tiny.KERNEL
    assert events(ctx, "worker_exhausted")  # worker 1 had no answers: it stopped, the spec did not fail


def test_numeric_mismatch_is_fed_back(make_ctx: Any, prepared: Path) -> None:
    provider = ScriptedProvider(by_key({(0, 1): tiny.answer(tiny.WRONG_KERNEL), (0, 2): tiny.answer(tiny.KERNEL)}))
    ctx = make_ctx(provider, workers=1)
    scope, spec = scope_for(ctx, prepared)
    assert generate_kernel(scope, spec).passed
    second_prompt = provider.requests[1].prompt
    assert "numeric_mismatch" in second_prompt and "round 1 of 2" in second_prompt


def test_duplicate_candidate_is_not_rerun(make_ctx: Any, prepared: Path) -> None:
    same = tiny.answer("# worker 1 says hello\n" + tiny.WRONG_KERNEL)
    provider = ScriptedProvider(by_key({(0, 1): tiny.answer(tiny.WRONG_KERNEL), (1, 1): same}))
    ctx = make_ctx(provider, max_rounds=1)
    scope, spec = scope_for(ctx, prepared)
    result = generate_kernel(scope, spec)
    assert not result.passed and result.category == "numeric_mismatch"
    assert len(events(ctx, "verdict")) == 1 and len(events(ctx, "duplicate")) == 1
    assert len(list((scope.dir / "generate" / "sg0").rglob("*.verdict.json"))) == 1


def test_all_workers_failing_is_a_categorised_generate_failure(make_ctx: Any, prepared: Path) -> None:
    provider = ScriptedProvider(by_key({(0, 1): tiny.answer(tiny.WRONG_KERNEL), (1, 1): "I cannot."}))
    ctx = make_ctx(provider, max_rounds=1)
    seed_task_dir(ctx, prepared)
    outcome = run_task(task_of(prepared), ctx)
    assert not outcome.passed and outcome.stage == "generate" and outcome.category == "numeric_mismatch"
    assert "sg0" in outcome.detail and outcome.usage.calls == 2
    assert not any(r.key.stage == "fuse" for r in provider.requests)  # fused.py existed: not redone


def test_first_win_cancels_the_other_worker(make_ctx: Any, prepared: Path) -> None:
    slow = ScriptStep(text=tiny.answer(tiny.WRONG_KERNEL), delay_s=120.0)
    provider = ScriptedProvider(by_key({(0, 1): tiny.answer(tiny.KERNEL), (1, 1): slow}))
    ctx = make_ctx(provider)
    scope, spec = scope_for(ctx, prepared)
    start = time.monotonic()
    result = generate_kernel(scope, spec)
    assert result.passed and result.worker == 0
    assert time.monotonic() - start < 60  # worker 1's in-flight call was cancelled, not waited for
    cancelled = events(ctx, "cancelled")
    assert [(e["worker"], e["subgraph"]) for e in cancelled] == [(1, "sg0")]
    win_t = [e for e in events(ctx, "verdict") if e["passed"]][0]["t"]
    assert len(provider.requests) == 2  # nothing was asked after the win
    assert cancelled[0]["t"] >= win_t
