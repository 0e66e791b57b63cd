"""verify end to end: low-signal strengthening, state copy by order, --no-audit, bad candidates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from checker_samples import CORRECT_FORWARD, write

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions, verify_candidate
from pytest_kernelfalcon.core.verdict import Category

Make = Callable[[str], Path]

SCALE_TASK = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(dim))

    def forward(self, x):
        return x * self.scale

dim = 32

def get_inputs():
    return [torch.randn(8, dim)]

def get_init_inputs():
    return [dim]
"""

SCALE_CANDIDATE = """
@triton.jit
def mul_kernel(x_ptr, s_ptr, y_ptr, n, dim, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    s = tl.load(s_ptr + offs % dim, mask=mask)
    tl.store(y_ptr + offs, x * s, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(dim))  # renamed: gets the reference's weights by order

    def forward(self, x):
        y = torch.empty_like(x)
        mul_kernel[(triton.cdiv(x.numel(), 128),)](x, self.gamma, y, x.numel(), x.shape[-1], BLOCK=128)
        return y
"""


def test_low_signal_task_rejects_a_copy_of_the_input(cpu_checker: Checker, positive_relu_task: Path,
                                                     candidate: Make) -> None:
    verdict = cpu_checker.verify(positive_relu_task, candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                return copy(x, torch.empty_like(x))
    """))
    assert verdict.low_signal and "output 0: identity(input 0)" in verdict.audit["low_signal_probes"]
    assert verdict.category == Category.NUMERIC_MISMATCH and "strengthened inputs" in verdict.detail
    assert verdict.seeds == (42, 43, 1042, 1043)


def test_low_signal_task_accepts_a_real_relu(cpu_checker: Checker, positive_relu_task: Path,
                                             candidate: Make) -> None:
    verdict = cpu_checker.verify(positive_relu_task, candidate(CORRECT_FORWARD))
    assert verdict.passed and verdict.low_signal, verdict.detail
    assert verdict.audit["launches_per_trial"] == [1, 1, 1, 1]


def test_renamed_weights_are_copied_by_order(cpu_checker: Checker, tmp_path: Path, candidate: Make) -> None:
    task = write(tmp_path / "scale.py", SCALE_TASK)
    verdict = cpu_checker.verify(task, candidate(SCALE_CANDIDATE))
    assert verdict.passed, verdict.detail
    assert verdict.audit["state_copy"] == {"by_name": 0, "by_order": 1, "unmatched": 0, "changed": 1}
    # KernelBench's eval copies no state: its ModelNew keeps its own gamma (zeros) and fails
    kb = verdict.kernelbench
    assert kb is not None and kb.passed is False and kb.source == "kernelbench job", kb
    assert kb.why == "weights" and "copies no state" in kb.reason and "output mismatch" in kb.detail, kb


def test_no_audit_allows_torch(relu_task: Path, candidate: Make) -> None:
    body = """
        class ModelNew(nn.Module):
            def forward(self, x):
                return torch.relu(x)
    """
    options = CheckOptions(device="cpu", seeds=2, audit=False)
    verdict = verify_candidate(relu_task, candidate(body), options)
    assert verdict.passed, verdict.detail
    assert verdict.audit["enabled"] is False


def test_reference_error_is_not_blamed_on_candidate(cpu_checker: Checker, tmp_path: Path,
                                                    candidate: Make) -> None:
    task = write(tmp_path / "bad.py", SCALE_TASK.replace("return x * self.scale", "return x @ self.scale[:3]"))
    verdict = cpu_checker.verify(task, candidate(SCALE_CANDIDATE))
    assert verdict.category == Category.REFERENCE_ERROR and "RuntimeError" in verdict.detail
