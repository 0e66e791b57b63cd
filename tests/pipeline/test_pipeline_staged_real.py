"""The staged pipeline on the three failures of a real model's first staged run (issue #25), replayed.

The answers are **recorded model output** (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, llama-cpp-python 0.3.16 on
a CPU; ``tests/recorded/README.md``), copied unchanged from
``benchmarks/results/2026-12-05-cpu-local-model/staged``. That run failed all three level-1 tasks:
ReLU's generate wrote ``tl.relu``, Sigmoid's generate computed ``exp(-x)``, Softmax's fuse gave
``FusedModel`` a ``dim`` argument ``Model`` does not take. Each test replays the recorded answer through
today's pipeline and the real checker (Triton interpreter) and shows the failure prevented or repaired.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_kernelfalcon.core.tasks import discover_tasks
from pytest_kernelfalcon.llm import ReplayMiss, ReplayProvider, ScriptedProvider
from pytest_kernelfalcon.pipeline import run_task

RECORDED = Path(__file__).resolve().parent.parent / "recorded"

pytestmark = pytest.mark.slow  # real checker children


def replay(tmp_path: Path, task: str, calls: dict[str, str]) -> ReplayProvider:
    """A replay of recorded calls laid out under ``task`` (``{"generate/sg0/w0-r1": file stem}``); a round
    with no recorded answer ends its worker (replay has nothing more to say)."""
    root = tmp_path / "recording"
    for key, name in calls.items():
        target = root / task / f"{key}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RECORDED / f"{name}.json", target)
    return ReplayProvider(root, strict=False)


def task_named(kernelbench_dir: Path, name: str) -> Any:
    return discover_tasks([kernelbench_dir / "level1" / f"{name}.py"])[0]


def llm_stages(ctx: Any) -> list[str]:
    return [e["stage"] for e in ctx.rundir.events() if e["type"] == "llm_call"]


def test_relu_skips_fuse_and_tl_relu_gets_feedback_naming_the_fix(make_ctx: Any, kernelbench_dir: Path,
                                                                   tmp_path: Path) -> None:
    import triton.language as tl

    task = task_named(kernelbench_dir, "19_ReLU")
    ctx = make_ctx(replay(tmp_path, task.id, {"generate/sg0/w0-r1": "staged_relu_generate_r1"}), workers=1)
    outcome = run_task(task, ctx)
    assert not outcome.passed and outcome.stage == "generate" and outcome.category == "compile_error", outcome
    assert llm_stages(ctx) == ["generate"]  # no fuse call: one op is already one subgraph
    plan = next(e for e in ctx.rundir.events() if e["type"] == "fuse_plan")
    assert plan["skip"] is True and "one op (relu)" in plan["reason"]
    work = ctx.rundir.task_dir(task.id) / "generate" / "sg0" / "w0"
    first = (work / "r1.prompt.md").read_text()  # the kept module is the whole task: asked as the task itself
    assert first.startswith("Write a Triton implementation of the PyTorch model below (task `level1/19_ReLU`)")
    assert (kernelbench_dir / "level1" / "19_ReLU.py").read_text() in first
    assert "has no attribute 'relu'" in json.loads((work / "r1.verdict.json").read_text())["detail"]
    feedback = (work / "r2.prompt.md").read_text()
    assert "`tl.relu` does not exist in the installed Triton" in feedback
    assert "For relu of a block `x`, write `tl.maximum(x, 0.0)`." in feedback
    nearest = feedback.split("Nearest names that exist there: ")[1].split(".\n")[0]
    names = [n.strip("` ").removeprefix("tl.") for n in nearest.split(",")]
    assert names and all(hasattr(tl, n) for n in names), names  # read from the installed triton.language


def test_sigmoid_mismatch_feedback_says_where_in_a_few_lines(make_ctx: Any, kernelbench_dir: Path,
                                                             tmp_path: Path) -> None:
    task = task_named(kernelbench_dir, "21_Sigmoid")
    ctx = make_ctx(replay(tmp_path, task.id, {"generate/sg0/w0-r1": "staged_sigmoid_generate_r1"}), workers=1)
    outcome = run_task(task, ctx)
    assert not outcome.passed and outcome.category == "numeric_mismatch", outcome
    assert llm_stages(ctx) == ["generate"]
    feedback = (ctx.rundir.task_dir(task.id) / "generate" / "sg0" / "w0" / "r2.prompt.md").read_text()
    lines = feedback.splitlines()
    where = next(i for i, line in enumerate(lines) if line.startswith("- where: output 0 (shape [16, 1536])"))
    assert "first wrong element at index (0, 0)" in lines[where]
    assert lines[where + 1].startswith("- got ") and ", expected " in lines[where + 1]
    got, want = (float(v) for v in lines[where + 1][len("- got "):].split(", expected "))
    assert abs(got - want) > 1e-3  # exp(-x) against 1 / (1 + exp(-x))
    assert lines[where + 2].startswith("- how many: ") and "out of tolerance" in lines[where + 2]
    assert lines[where + 3].startswith("- the plan that was run: seed 42, sizes {")


def test_softmax_keeps_its_module_and_constructor_without_a_fuse_call(make_ctx: Any, kernelbench_dir: Path,
                                                                      tmp_path: Path) -> None:
    task = task_named(kernelbench_dir, "23_Softmax")
    ctx = make_ctx(replay(tmp_path, task.id, {"fuse/_/w0-r1": "staged_softmax_fuse_r1"}), workers=1)
    outcome = run_task(task, ctx)
    assert outcome.stage == "generate", outcome  # fuse and extract passed; no generate answer is recorded
    assert "fuse" not in llm_stages(ctx)  # the recorded fuse answer (with its invented `dim`) is never asked
    task_dir = ctx.rundir.task_dir(task.id)
    fused = (task_dir / "fused.py").read_text()
    assert "return torch.softmax(x, dim=1)" in fused and "self.body = TaskModule(*args, **kwargs)" in fused
    specs = json.loads((task_dir / "specs.json").read_text())["specs"]
    assert [(s["class_name"], s["init_args_py"]) for s in specs] == [("TaskModule", "[]")]
    assert json.loads((task_dir / "fuse" / "kept.verdict.json").read_text())["passed"]


def test_softmax_fuse_answer_with_a_retyped_constructor_is_sent_back_before_it_runs(
        make_ctx: Any, kernelbench_dir: Path, tmp_path: Path) -> None:
    task = task_named(kernelbench_dir, "23_Softmax")
    ctx = make_ctx(replay(tmp_path, task.id, {"fuse/_/w0-r1": "staged_softmax_fuse_r1"}), workers=1,
                   fuse="always")
    outcome = run_task(task, ctx)
    assert not outcome.passed and outcome.stage == "fuse", outcome  # round 2 has no recorded answer
    work = ctx.rundir.task_dir(task.id) / "fuse" / "_" / "w0"
    assert "its constructor is `def __init__(self):`, exactly." in (work / "r1.prompt.md").read_text()
    assert not (work / "r1.verdict.json").exists()  # not run: the constructor was checked first
    feedback = (work / "r2.prompt.md").read_text()
    assert "FusedModel.__init__ is `def __init__(self, dim)`" in feedback
    assert "Model has `def __init__(self)`. Write exactly that constructor" in feedback


def test_a_kept_module_composes_into_a_verified_kernelbench_model_new(make_ctx: Any, kernelbench_dir: Path,
                                                                      checker: Any) -> None:
    """The recorded *direct* ReLU answer (real model output, same contract: ``ModelNew()`` for ``Model``),
    handed over as the generate answer by a scripted provider: fuse kept, kernel verified, composed."""
    task = task_named(kernelbench_dir, "19_ReLU")
    text = json.loads((RECORDED / "direct_relu_r1.json").read_text())["response"]["text"]
    ctx = make_ctx(ScriptedProvider(lambda req: text if req.key.stage == "generate" else ReplayMiss("no")),
                   workers=1)
    outcome = run_task(task, ctx)
    assert outcome.passed and outcome.extra["fuse"] == "kept" and outcome.extra["compose"] == "mechanical", outcome
    assert outcome.usage.calls == 1 and outcome.source == "scripted"
    model_new = Path(str(outcome.model_new))
    source = model_new.read_text()
    assert "class ModelNew(FusedModel)" in source and "TaskModule = sg0_ModelNew" in source
    assert "Model" not in source.replace("ModelNew", "").replace("FusedModel", "").replace("TaskModule", "")
    assert checker.verify(task.path, model_new).passed  # full audit, against the task's own Model


def test_a_kernel_called_without_a_grid_gets_feedback_naming_the_launch(make_ctx: Any, kernelbench_dir: Path,
                                                                        tmp_path: Path) -> None:
    """The first answer of the 2026-12-07 staged run (first attempt): ``tl.maximum`` as the prompt says, but
    ``return relu_kernel(...)`` with no launch grid."""
    task = task_named(kernelbench_dir, "19_ReLU")
    ctx = make_ctx(replay(tmp_path, task.id, {"generate/sg0/w0-r1": "staged_relu_generate_r1_nogrid"}), workers=1)
    outcome = run_task(task, ctx)
    assert not outcome.passed and outcome.category == "compile_error", outcome
    feedback = (ctx.rundir.task_dir(task.id) / "generate" / "sg0" / "w0" / "r2.prompt.md").read_text()
    assert "Line 29 calls the `@triton.jit` kernel `relu_kernel(...)` like a Python function." in feedback
    assert "`relu_kernel[(triton.cdiv(n, BLOCK),)](..., BLOCK=BLOCK)`, then return the output." in feedback
