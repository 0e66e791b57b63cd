"""The pipeline replaying a real model's recorded answers on real KernelBench tasks.

The answers in ``tests/recorded`` are recorded model output (Qwen2.5-Coder-1.5B-Instruct Q4_K_M,
llama-cpp-python 0.3.16 on a CPU), written by the ``Recorder`` during ``benchmarks/local_model.sh``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_kernelfalcon.core.tasks import discover_tasks
from pytest_kernelfalcon.llm import ReplayProvider
from pytest_kernelfalcon.pipeline import run_task

RECORDED = Path(__file__).resolve().parent.parent / "recorded"

pytestmark = pytest.mark.slow  # real checker children


def replay_root(tmp_path: Path, task: str, calls: dict[str, str]) -> Path:
    """Lay recorded calls out as a recording of ``task``: ``{"direct/_/w0-r1": "direct_relu_r1"}``."""
    root = tmp_path / "recording"
    for key, name in calls.items():
        target = root / task / f"{key}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RECORDED / f"{name}.json", target)
    return root


def test_direct_strategy_accepts_the_real_models_relu(make_ctx: Any, kernelbench_dir: Path, tmp_path: Path) -> None:
    task = discover_tasks([kernelbench_dir / "level1" / "19_ReLU.py"])[0]
    provider = ReplayProvider(replay_root(tmp_path, task.id, {"direct/_/w0-r1": "direct_relu_r1"}), strict=False)
    ctx = make_ctx(provider, strategy="direct", workers=1)
    outcome = run_task(task, ctx)
    assert outcome.passed and outcome.stage is None and outcome.extra == {"strategy": "direct"}, outcome
    assert outcome.usage.calls == 1 and outcome.usage.unreported_calls == 1  # the stream carried no usage
    assert Path(str(outcome.model_new)).read_text().count("@triton.jit") == 1
    stages = [e["stage"] for e in ctx.rundir.events() if e["type"] == "stage_start"]
    assert stages == ["direct"]
