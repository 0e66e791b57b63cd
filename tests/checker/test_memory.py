"""Out of device memory is the machine's problem until shown otherwise (issue 22), on a simulated card."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
from pytest_kernelfalcon.checker.memory import candidate_need, out_of_memory, reference_need
from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.executor.base import JobResult
from pytest_kernelfalcon.executor.cold import ColdExecutor
from pytest_kernelfalcon.executor.leases import SIMULATED_ENV

OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which "
       "1.23 GiB is free. Process 3200 has 47.96 GiB memory in use.")

TASK = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        {reference_body}
        return x * self.alpha

def get_inputs():
    return [torch.randn(33, 65)]

def get_init_inputs():
    return [0.5]
'''

CANDIDATE = '''
import os
import torch
import torch.nn as nn

MARK = {mark!r}

class ModelNew(nn.Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        if {always} or not os.path.exists(MARK):
            open(MARK, "a").close()
            raise torch.OutOfMemoryError({oom!r})
        return x * self.alpha
'''


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture()
def card(monkeypatch: pytest.MonkeyPatch) -> str:
    """A simulated card of 64 GiB private to the test."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(SIMULATED_ENV, f"{name}:{64 << 30}")
    return f"simulated-{name}"


def _checker() -> Checker:
    return Checker(CheckOptions(device="cpu", shapes="official", seeds=2, timeout_s=60.0, audit=False),
                   ColdExecutor())


def test_the_error_says_what_was_asked_and_free() -> None:
    found = out_of_memory(JobResult(3, False, False, "", 1.0, {"error": {"message": f"OutOfMemoryError: {OOM}"}}, None))
    assert found is not None and (found.asked, found.free) == ("2.00 GiB", "1.23 GiB")
    assert out_of_memory(JobResult(1, False, False, "triton OutOfResources: out of resource: shared memory",
                                   1.0, None, "no result.pt was written")) is None  # a kernel's limit, not the card


def test_leases_follow_the_measured_peak() -> None:
    assert reference_need(None) is None and candidate_need(None, False) is None  # not measured: alone
    assert candidate_need(1 << 30, True) > candidate_need(1 << 30, False) > reference_need(1 << 30)  # type: ignore[operator]


def test_out_of_memory_beside_others_is_judged_again_alone(tmp_path: Path, card: str) -> None:
    task = _write(tmp_path / "task.py", TASK.format(reference_body="pass"))
    mark = tmp_path / "first-try"
    candidate = _write(tmp_path / "cand.py", CANDIDATE.format(mark=str(mark), always=False, oom=OOM))
    checker = _checker()
    try:
        verdict = checker.verify(task, candidate)
    finally:
        checker.close()
    assert mark.exists()  # it did run out of memory the first time
    assert verdict.passed, verdict.detail
    assert "run again alone" in verdict.audit["harness_notes"][0]


def test_out_of_memory_alone_is_its_own_category(tmp_path: Path, card: str) -> None:
    task = _write(tmp_path / "task.py", TASK.format(reference_body="pass"))
    candidate = _write(tmp_path / "cand.py", CANDIDATE.format(mark=str(tmp_path / "m"), always=True, oom=OOM))
    checker = _checker()
    try:
        verdict = checker.verify(task, candidate)
    finally:
        checker.close()
    assert verdict.category == Category.OUT_OF_MEMORY, verdict.detail
    assert "asked 2.00 GiB, free 1.23 GiB" in verdict.detail and "even alone" in verdict.detail


def test_a_reference_out_of_memory_alone_is_the_machines(tmp_path: Path, card: str) -> None:
    body = f"raise torch.OutOfMemoryError({OOM!r})"
    task = _write(tmp_path / "task.py", TASK.format(reference_body=body))
    candidate = _write(tmp_path / "cand.py", CANDIDATE.format(mark=str(tmp_path / "m"), always=False, oom=OOM))
    checker = _checker()
    try:
        verdict = checker.verify(task, candidate)
    finally:
        checker.close()
    assert verdict.category == Category.HARNESS_ERROR, verdict.detail
    assert verdict.detail.startswith("cannot run here: the reference ran out of device memory alone")


def test_a_check_whose_lease_waits_ends_at_its_deadline(tmp_path: Path, card: str) -> None:
    from pytest_kernelfalcon.executor.deadline import Deadline

    hold = ("import sys, time; from pytest_kernelfalcon.executor.leases import Card, lease\n"
            f"with lease(Card({card!r}, {64 << 30}), None):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        task = _write(tmp_path / "task.py", TASK.format(reference_body="pass"))
        candidate = _write(tmp_path / "cand.py", CANDIDATE.format(mark=str(tmp_path / "m"), always=False, oom=OOM))
        checker = _checker()
        try:
            verdict = checker.verify(task, candidate, cancel=Deadline(2.0, what="the test"))
        finally:
            checker.close()
    finally:
        holder.kill()
        holder.wait()
    assert verdict.category == Category.HARNESS_ERROR
    assert "passed while waiting for GPU memory" in verdict.detail and verdict.audit["deadline"]["seconds"] == 2.0
