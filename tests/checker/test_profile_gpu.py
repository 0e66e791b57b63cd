"""The default profile on the GPU (issue 23): every drawn plan runs at official shapes as on the CPU, so a kernel
wrong only at other sizes is rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
from checker_samples import write
from size_bugs import CORRECT_RELU, CORRECT_SUM, FIXED_LENGTH_SUM, FLOOR_GRID_RELU

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions

pytestmark = pytest.mark.gpu


def _judge(task: Path, *candidates: Path) -> list:  # type: ignore[type-arg]
    checker = Checker(CheckOptions(device="cuda", shapes="default", timeout_s=240.0))
    try:
        return [checker.verify(task, c) for c in candidates]
    finally:
        checker.close()


def test_a_fixed_reduction_length_is_rejected_at_the_gpu_defaults(kernelbench_dir: Path, tmp_path: Path) -> None:
    task = kernelbench_dir / "level1" / "47_Sum_reduction_over_a_dimension.py"
    good, fixed = _judge(task, write(tmp_path / "good.py", CORRECT_SUM), write(tmp_path / "fixed.py", FIXED_LENGTH_SUM))
    assert good.passed, good.detail
    roles = {s.get("role") for s in good.shapes}
    assert {"task", "sizes", "grow"} <= roles, good.detail
    assert {s["grown"] for s in good.shapes if s.get("grown")} == {"batch_size", "dim1", "dim2"}, good.detail
    assert fixed.category is not None and fixed.category.value == "numeric_mismatch", fixed.detail
    assert "dim1" in fixed.detail


def test_a_grid_that_floors_is_rejected_at_the_gpu_defaults(kernelbench_dir: Path, tmp_path: Path) -> None:
    task = kernelbench_dir / "level1" / "19_ReLU.py"
    good, floor = _judge(task, write(tmp_path / "good.py", CORRECT_RELU), write(tmp_path / "floor.py", FLOOR_GRID_RELU))
    assert good.passed, good.detail
    assert floor.category is not None and floor.category.value == "numeric_mismatch", floor.detail


def test_our_own_sum_task_grows_every_constant(tmp_path: Path) -> None:
    from size_bugs import SUM_TASK

    task = write(tmp_path / "sum.py", SUM_TASK)
    good, fixed = _judge(task, write(tmp_path / "good.py", CORRECT_SUM), write(tmp_path / "fixed.py", FIXED_LENGTH_SUM))
    assert good.passed, good.detail
    assert fixed.category is not None and fixed.category.value == "numeric_mismatch", fixed.detail
