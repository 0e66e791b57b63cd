"""Discovery, size constants, shape plans and the static audit over all 270 real KernelBench problems (AST only)."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

from pytest_kernelfalcon.checker.static_audit import static_audit
from pytest_kernelfalcon.core.shapes import fuzz_plans, scaled_plans
from pytest_kernelfalcon.core.tasks import (
    TaskFile,
    discover_tasks,
    rewrite_constants,
    size_constants,
)


@pytest.fixture(scope="module")
def all_tasks(kernelbench_dir: Path) -> list[TaskFile]:
    """Every task under the KernelBench root."""
    return discover_tasks([kernelbench_dir])


def test_discovers_all_270_problems_per_level(all_tasks: list[TaskFile]) -> None:
    counts = Counter(t.level for t in all_tasks)
    assert counts == {"level1": 100, "level2": 100, "level3": 50, "level4": 20}
    ids = [t.id for t in all_tasks]
    assert len(set(ids)) == len(ids) == 270
    assert all(re.fullmatch(r"level[1-4]/\d+_[\w.-]+", i) for i in ids)
    assert "level1/19_ReLU" in ids
    assert ids.index("level1/2_Standard_matrix_multiplication_") < ids.index("level1/10_3D_tensor_matrix_multiplication")


def test_missing_packages_are_reported_per_task(all_tasks: list[TaskFile]) -> None:
    import importlib.util

    level4 = [t for t in all_tasks if t.level == "level4"]
    if importlib.util.find_spec("transformers") is None:
        assert all("transformers" in t.missing for t in level4)
    missing = {name for t in all_tasks for name in t.missing}
    assert "torch" not in missing
    assert all(importlib.util.find_spec(name) is None for name in missing)
    assert all(t.missing == () for t in all_tasks if t.level in ("level1", "level2"))


def test_every_scaled_plan_rewrites_levels_1_to_3_into_valid_source(all_tasks: list[TaskFile]) -> None:
    shrunk = 0
    for task in (t for t in all_tasks if t.level != "level4"):
        source = task.path.read_text()
        constants = size_constants(source)
        plans = scaled_plans(source)
        assert 1 <= len(plans) <= 17, task.id
        shrunk += bool(plans[0].overrides)
        for plan in plans:
            rewritten = rewrite_constants(source, plan.overrides)
            ast.parse(rewritten)
            assert {**constants, **plan.overrides} == size_constants(rewritten), task.id
    assert shrunk >= 245  # nearly every problem has a size worth shrinking


def test_fuzz_plans_are_deterministic_on_real_problems(all_tasks: list[TaskFile]) -> None:
    for task_id in ("level1/19_ReLU", "level2/13_ConvTranspose3d_Mean_Add_Softmax_Tanh_Scaling",
                    "level3/43_MinGPTCausalAttention"):
        source = next(t for t in all_tasks if t.id == task_id).path.read_text()
        base = scaled_plans(source)[4]
        plans = fuzz_plans(source, 6, seed=11, base=base)
        assert plans == fuzz_plans(source, 6, seed=11, base=base)
        assert plans != fuzz_plans(source, 6, seed=12, base=base)
        for plan in plans:
            ast.parse(rewrite_constants(source, plan.overrides))


def test_static_audit_never_crashes_on_references(all_tasks: list[TaskFile]) -> None:
    for task in all_tasks:
        findings = static_audit(task.path.read_text())
        assert findings, task.id  # every reference at least names `Model`
