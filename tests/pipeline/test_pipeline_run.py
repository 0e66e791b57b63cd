"""Whole pipeline runs with real Triton (interpreter): happy path, fuse rejection, kill -9 and resume."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pipeline_tiny as tiny
import pytest
from pipeline_tiny import task_of

from pytest_kernelfalcon.llm import ReplayMiss, ScriptedProvider
from pytest_kernelfalcon.pipeline import RunDir, run_task
from pytest_kernelfalcon.pipeline.context import TaskBudget, TaskScope
from pytest_kernelfalcon.pipeline.fuse import fuse_model

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.slow  # real checker children: about 10 s per check on CPU


def answers(fuse: list[str], kernel: str = tiny.KERNEL) -> Any:
    """Return a callback: fuse answers by round, every generate call gets ``kernel``."""
    def answer(req: Any) -> Any:
        if req.key.stage == "fuse":
            return tiny.answer(fuse[req.key.round - 1]) if req.key.round <= len(fuse) else ReplayMiss("no")
        return tiny.answer(kernel) if req.key.stage == "generate" else ReplayMiss("no")
    return answer


def test_happy_path_writes_a_verified_kernelbench_model_new(make_ctx: Any, tmp_path: Path, checker: Any) -> None:
    tiny.write_task(tmp_path)
    task = task_of(tmp_path)
    provider = ScriptedProvider(answers([tiny.FUSED]))
    ctx = make_ctx(provider, fuse="always")  # the LLM fuses even a one-subgraph task
    outcome = run_task(task, ctx)
    assert outcome.passed, outcome
    assert outcome.source == "scripted" and outcome.usage.calls == len(provider.requests)
    model_new = Path(str(outcome.model_new))
    names = {n.name for n in ast.parse(model_new.read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert {"get_inputs", "get_init_inputs", "sg0_ModelNew", "FusedModel"} <= names
    assert checker.verify(task.path, model_new).passed  # judged again, full audit
    task_dir = ctx.rundir.task_dir(task.id)
    for name in ("fused.py", "specs.json", "subgraphs/sg0.py", "generate/sg0/kernel.py", "outcome.json",
                 "fuse/_/w0/r1.prompt.md", "fuse/_/w0/r1.response.md", "fuse/_/w0/r1.verdict.json"):
        assert (task_dir / name).is_file(), name
    run = json.loads((ctx.rundir.path / "run.json").read_text())
    assert set(run["prompts"]) >= {"fuse", "generate", "feedback"} and run["provider"] == "scripted"
    assert (ctx.rundir.path / "llm" / "level1" / "1_ScaleRelu" / "fuse" / "_" / "w0-r1.json").is_file()
    stages = [(e["type"], e["stage"]) for e in ctx.rundir.events() if e["type"].startswith("stage_")]
    assert stages[:2] == [("stage_start", "fuse"), ("stage_end", "fuse")]
    assert stages[-1] == ("stage_end", "compose")
    again = run_task(task, ctx)  # a finished task is not rerun
    assert again == outcome


def test_fuser_rewrite_that_changes_semantics_is_rejected(make_ctx: Any, tmp_path: Path) -> None:
    tiny.write_task(tmp_path)
    provider = ScriptedProvider(answers([tiny.WRONG_FUSED, tiny.FUSED]))
    ctx = make_ctx(provider, fuse_rounds=2, fuse="always")
    task = task_of(tmp_path)
    scope = TaskScope(ctx, task, ctx.rundir.task_dir(task.id), TaskBudget(ctx.config))
    result = fuse_model(scope)
    assert result.passed and result.rounds == 2
    first = json.loads((scope.dir / "fuse" / "_" / "w0" / "r1.verdict.json").read_text())
    assert first["passed"] is False and first["category"] == "numeric_mismatch"
    assert "numeric_mismatch" in provider.requests[1].prompt
    assert "x * self.scale" in result.fused_path.read_text()


@pytest.mark.parametrize("fuse, prompts", [("always", 1), ("auto", 0)])
def test_a_failing_reference_stops_the_task_without_feedback(make_ctx: Any, tmp_path: Path, fuse: str,
                                                             prompts: int) -> None:
    """The task's own Model cannot run: nothing the LLM could fix, so no second prompt (kept module: none)."""
    broken = tiny.TASK.replace("return torch.relu(x * self.scale)", "raise RuntimeError('the task is broken')")
    tiny.write_task(tmp_path, broken)
    provider = ScriptedProvider(answers([tiny.FUSED, tiny.FUSED, tiny.FUSED]))
    outcome = run_task(task_of(tmp_path), make_ctx(provider, fuse_rounds=3, fuse=fuse))
    assert (outcome.stage, outcome.category) == ("fuse", "reference_error"), outcome
    assert "the task is broken" in outcome.detail
    assert len(provider.requests) == prompts


DRIVER = """
import os, sys, json
sys.path.insert(0, {here!r})
import pipeline_tiny as tiny
from pathlib import Path
from pytest_kernelfalcon.checker.checker import CheckOptions
from pytest_kernelfalcon.llm import ScriptedProvider, ScriptStep
from pytest_kernelfalcon.pipeline import PipelineConfig, RunContext, RunDir, run_task
from pytest_kernelfalcon.core.tasks import discover_tasks
def answer(req):
    if req.key.stage == "fuse":
        return tiny.answer(tiny.FUSED)
    return ScriptStep(text=tiny.answer(tiny.KERNEL), delay_s=600)  # generate hangs until killed
config = PipelineConfig(workers=2, fuse="always", check=CheckOptions(device="cpu", shapes="scaled", seeds=1),
                        run_root=Path({root!r}))
ctx = RunContext.build(config, ScriptedProvider(answer), rundir=RunDir.create(Path({root!r}), "killed"))
run_task(discover_tasks([Path({tasks!r})])[0], ctx)
"""


def test_kill_9_mid_run_then_resume_loses_nothing_and_redoes_nothing(make_ctx: Any, tmp_path: Path) -> None:
    tiny.write_task(tmp_path)
    runs = tmp_path / "runs"
    script = DRIVER.format(here=str(HERE), root=str(runs), tasks=str(tmp_path / "level1"))
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    events = runs / "killed" / "events.jsonl"
    try:
        _wait_for(lambda: _reached_generate(events), child)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    task_dir = runs / "killed" / "tasks" / "level1" / "1_ScaleRelu"
    fused_mtime, specs_mtime = (task_dir / "fused.py").stat().st_mtime_ns, (task_dir / "specs.json").stat().st_mtime_ns
    assert not (task_dir / "outcome.json").exists()
    provider = ScriptedProvider(answers([]))  # no fuse answers at all: fuse must not be asked again
    ctx = make_ctx(provider, run_root=runs)
    ctx.rundir = RunDir.open("killed", runs)
    outcome = run_task(task_of(tmp_path), ctx)
    assert outcome.passed, outcome
    assert {r.key.stage for r in provider.requests} == {"generate"}
    assert (task_dir / "fused.py").stat().st_mtime_ns == fused_mtime
    assert (task_dir / "specs.json").stat().st_mtime_ns == specs_mtime
    assert (task_dir / "fuse" / "_" / "w0" / "r1.response.md").is_file()  # written before the kill
    assert outcome.usage.calls == 1 + len(provider.requests)  # the killed session's fuse call counted
    kinds = [e.get("stage") for e in ctx.rundir.events() if e["type"] == "stage_end" and e.get("resumed")]
    assert kinds == ["fuse", "extract"]


def _wait_for(condition: Any, child: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if child.poll() is not None:
            pytest.fail(f"driver exited early with {child.returncode}")
        if time.monotonic() > deadline:
            pytest.fail("the driver never reached the generate stage")
        time.sleep(0.2)


def _reached_generate(events: Path) -> bool:
    if not events.is_file():
        return False
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.endswith("}")]
    return any(e["type"] == "stage_start" and e["stage"] == "generate" for e in lines)
