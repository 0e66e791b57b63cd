"""The default check profile (issue 16): drawn sizes and values, dropped value draws, address reuse."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from checker_samples import write

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions, verify_candidate

Make = Callable[..., Path]

EXP_TASK = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.exp(x)

rows = 8
cols = 96

def get_inputs():
    return [torch.randn(rows, cols)]

def get_init_inputs():
    return []
"""

EXP_CANDIDATE = """
@triton.jit
def exp_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.exp(tl.load(x_ptr + offs, mask=mask)), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        exp_kernel[(triton.cdiv(x.numel(), 128),)](x, y, x.numel(), BLOCK=128)
        return y
"""

RELU_CANDIDATE = """
class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        return relu(x, torch.empty_like(x))
"""


def test_value_draws_that_overflow_the_reference_are_dropped_and_reported(tmp_path: Path, candidate: Make) -> None:
    task = write(tmp_path / "exp_task.py", EXP_TASK)
    options = CheckOptions(device="cpu", shapes="default", seeds=2, timeout_s=90.0)
    verdict = verify_candidate(task, candidate(EXP_CANDIDATE), options)
    assert verdict.passed, verdict.detail
    dropped = verdict.audit["profile"]["dropped_draws"]
    # exp(1000 x) and exp(10^3 x) overflow in the reference itself: never the candidate's fault
    assert any("values large" in d and "NaN/inf" in d for d in dropped), dropped
    assert any("values mixed" in d for d in dropped), dropped
    assert "value draw(s) dropped" in verdict.detail
    # the draws the reference takes are judged: all negative and near zero stay finite
    assert "negative" in verdict.detail and "near_zero" in verdict.detail


def test_default_verdict_lists_what_was_covered_and_replays_by_seed(relu_task: Path, candidate: Make) -> None:
    path = candidate(RELU_CANDIDATE)
    runs = []
    for _ in range(2):
        checker = Checker(CheckOptions(device="cpu", shapes="default", seeds=2, seed=7, timeout_s=90.0))
        try:
            runs.append(checker.verify(relu_task, path))
        finally:
            checker.close()
    first, again = runs
    assert first.passed, first.detail
    assert "profile default" in first.detail and "replay with --seed 7" in first.detail
    assert "address reuse" in first.detail
    roles = [s["role"] for s in first.shapes]
    assert roles[0] == "task" and {"sizes", "grow"} <= set(roles), first.shapes
    assert all(s["profile"] == "default" for s in first.shapes)
    sizes = next(s["overrides"] for s in first.shapes if s["role"] == "sizes")
    assert any(v % 2 == 1 for v in sizes.values()), sizes  # an odd size: not a multiple of 2..128
    grown = next(s["overrides"] for s in first.shapes if s["role"] == "grow")
    assert grown.get("batch_size", 0) > 16 or grown.get("dim", 0) > 64, grown  # past the task's own size
    assert again.shapes == first.shapes and again.seeds == first.seeds


def test_a_size_bug_only_the_drawn_plans_reach_is_rejected(relu_task: Path, candidate: Make) -> None:
    unmasked = """
    @triton.jit
    def full_blocks(x_ptr, y_ptr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(y_ptr + offs, tl.maximum(tl.load(x_ptr + offs), 0.0))


    class ModelNew(nn.Module):
        def __init__(self):
            super().__init__()

        def forward(self, x):
            x = x.contiguous()
            y = torch.empty_like(x)
            full_blocks[(x.numel() // 64,)](x, y, BLOCK=64)
            return y
    """
    path = candidate(textwrap.dedent(unmasked))
    official = verify_candidate(relu_task, path, CheckOptions(device="cpu", shapes="official", timeout_s=90.0))
    assert official.passed, official.detail
    verdict = verify_candidate(relu_task, path, CheckOptions(device="cpu", timeout_s=90.0))  # the default
    assert verdict.category is not None and verdict.category.value == "numeric_mismatch", verdict.detail
    assert "plan)" in verdict.detail and "first mismatch at index" in verdict.detail and "--seed 42" in verdict.detail


def test_reuse_storage_writes_new_values_into_the_previous_tensors() -> None:
    import torch

    from pytest_kernelfalcon.child.candidate import reuse_storage

    old = [torch.zeros(3, 5), 7]
    fresh = [torch.randn(3, 5), 7]
    got = reuse_storage(old, fresh)
    assert got[0] is old[0] and got[0].data_ptr() == old[0].data_ptr()
    assert torch.equal(got[0], fresh[0]) and got[1] == 7
    other = [torch.randn(4, 5), 7]  # another shape: no reuse
    assert reuse_storage(old, other)[0] is other[0]
    assert reuse_storage(None, fresh) is fresh


@pytest.mark.parametrize("given, resolved", [("auto", "default"), ("default", "default"), ("official", "official")])
def test_auto_means_the_default_profile(given: str, resolved: str) -> None:
    from pytest_kernelfalcon.config import FalconConfig

    assert FalconConfig.from_values({"falcon_shapes": given, "falcon_device": "cpu"}).shapes == resolved
    assert CheckOptions().shapes == "default"


def test_every_size_constant_is_grown_so_a_fixed_reduction_length_fails(tmp_path: Path) -> None:
    """Issue 23: the grow plan once took batch_size past its value and never dim1, so a sum over at most the task's
    own 4096 rows passed; every size constant now has its own grow plan."""
    from size_bugs import CORRECT_SUM, FIXED_LENGTH_SUM, SUM_TASK

    task = write(tmp_path / "sum_task.py", SUM_TASK)
    options = CheckOptions(device="cpu", shapes="default", seeds=2, timeout_s=240.0)
    checker = Checker(options)
    try:
        good = checker.verify(task, write(tmp_path / "good.py", CORRECT_SUM))
        fixed = checker.verify(task, write(tmp_path / "fixed.py", FIXED_LENGTH_SUM))
    finally:
        checker.close()
    assert good.passed, good.detail
    grown = {s["grown"]: s["overrides"][s["grown"]] for s in good.shapes if s.get("grown")}
    assert set(grown) == {"batch_size", "dim1", "dim2"} and grown["dim1"] > 4096, good.shapes
    assert "grow batch_size" in good.detail and "dim1 " in good.detail
    assert fixed.category is not None and fixed.category.value == "numeric_mismatch", fixed.detail
    assert "dim1" in fixed.detail and "grow" in fixed.detail


def test_a_grid_that_floors_fails_at_the_drawn_sizes(tmp_path: Path) -> None:
    from checker_samples import RELU_TASK
    from size_bugs import CORRECT_RELU, FLOOR_GRID_RELU

    task = write(tmp_path / "relu.py", RELU_TASK.format(dist="randn").replace("dim = 64", "dim = 1024"))
    checker = Checker(CheckOptions(device="cpu", shapes="default", seeds=2, timeout_s=120.0))
    try:
        good = checker.verify(task, write(tmp_path / "good.py", CORRECT_RELU))
        floor = checker.verify(task, write(tmp_path / "floor.py", FLOOR_GRID_RELU))
    finally:
        checker.close()
    assert good.passed, good.detail
    assert floor.category is not None and floor.category.value == "numeric_mismatch", floor.detail


def test_a_drawn_job_that_fails_is_named_in_the_verdict() -> None:
    from pytest_kernelfalcon.checker.options import Reference
    from pytest_kernelfalcon.checker.profile import coverage, dropped
    from pytest_kernelfalcon.core.protocol import ReferenceCase
    from pytest_kernelfalcon.core.verdict import Category, Verdict

    case = ReferenceCase(plan={"role": "task", "overrides": {}}, index=0, construct_seed=42, init_inputs=(),
                         state_dict={}, probes=(), trials=({"seed": 42, "values": "task"},), strong_trials=())
    base = Reference((case,), (), (), 42, 1.0)
    failed = Verdict.failed(Category.HARNESS_ERROR, "cannot run here: the reference ran out of device memory alone")
    said = coverage(dropped(base, "sizes/grow", failed))
    assert "no sizes/grow plan ran (the sizes/grow reference job failed: cannot run here" in said, said
