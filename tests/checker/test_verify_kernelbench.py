"""Real KernelBench level-1 tasks at scaled shapes, fuzz shapes, and the ``kernelfalcon verify`` CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from checker_samples import CORRECT_FORWARD

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
from pytest_kernelfalcon.cli.verify import main
from pytest_kernelfalcon.core.verdict import Category

Make = Callable[[str], Path]

SOFTMAX = """
@triton.jit
def softmax_kernel(x_ptr, y_ptr, cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < cols
    x = tl.load(x_ptr + row * cols + offs, mask=mask, other=-float("inf"))
    e = tl.exp(x - tl.max(x, axis=0))
    tl.store(y_ptr + row * cols + offs, e / tl.sum(e, axis=0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        y = torch.empty_like(x)
        rows, cols = x.shape
        softmax_kernel[(rows,)](x, y, cols, BLOCK=triton.next_power_of_2(cols))
        return y
"""


@pytest.fixture(scope="module")
def scaled_checker() -> Checker:
    """A CPU checker at scaled shapes."""
    return Checker(CheckOptions(device="cpu", shapes="scaled", seeds=2, timeout_s=90.0))


def test_relu_scaled_passes_and_is_low_signal(scaled_checker: Checker, kernelbench_dir: Path,
                                              candidate: Make) -> None:
    verdict = scaled_checker.verify(kernelbench_dir / "level1" / "19_ReLU.py", candidate(CORRECT_FORWARD))
    assert verdict.passed, verdict.detail
    (plan,) = verdict.shapes
    assert plan["kind"] == "scaled" and plan["overrides"]["batch_size"] * plan["overrides"]["dim"] <= 1 << 16
    assert verdict.audit["discarded_plans"] and "over budget" in verdict.audit["discarded_plans"][0]["error"]
    assert verdict.low_signal  # torch.rand inputs: the input itself passes as a ReLU


def test_relu_scaled_rejects_identity(scaled_checker: Checker, kernelbench_dir: Path, candidate: Make) -> None:
    verdict = scaled_checker.verify(kernelbench_dir / "level1" / "19_ReLU.py", candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                return copy(x, torch.empty_like(x))
    """))
    assert verdict.category == Category.NUMERIC_MISMATCH and "strengthened" in verdict.detail


def test_softmax_scaled_passes(scaled_checker: Checker, kernelbench_dir: Path, candidate: Make) -> None:
    verdict = scaled_checker.verify(kernelbench_dir / "level1" / "23_Softmax.py", candidate(SOFTMAX))
    assert verdict.passed, verdict.detail
    assert verdict.shapes[0]["overrides"]["dim"] < 393216


def test_fuzz_prints_and_uses_its_seed(relu_task: Path, candidate: Make) -> None:
    checker = Checker(CheckOptions(device="cpu", shapes="fuzz", seeds=2, seed=7, timeout_s=90.0))
    verdict = checker.verify(relu_task, candidate(CORRECT_FORWARD))
    assert verdict.passed, verdict.detail
    assert "fuzz seed 7" in verdict.detail and "--seed 7" in verdict.detail
    assert verdict.shapes and all(s["kind"] == "fuzz" for s in verdict.shapes)
    assert verdict.seeds[:2] == (7, 8)


def test_cli_json_pass(relu_task: Path, candidate: Make, capsys: pytest.CaptureFixture[str]) -> None:
    path = candidate(CORRECT_FORWARD)
    code = main([str(relu_task), str(path), "--device", "cpu", "--shapes", "official", "--seeds", "2", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["passed"] is True and data["category"] is None
    assert data["task"] == str(relu_task) and data["candidate"] == str(path)
    assert data["seeds"] == [42, 43] and data["shapes"][0]["kind"] == "official"
    assert data["tolerance"]["policy"] == "kernelbench-fp32"


def test_cli_json_pass_on_the_resident_path(relu_task: Path, candidate: Make,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = candidate(CORRECT_FORWARD)
    code = main([str(relu_task), str(path), "--device", "cpu", "--shapes", "official", "--seeds", "2",
                 "--data-path", "resident", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["passed"] is True, data["detail"]
    assert "candidate_shell_s" in data["timings"]  # judged by the comparer, not from result.pt tensors


def test_cli_rejection_exits_1_with_summary(relu_task: Path, candidate: Make,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = candidate("torch.allclose = None\n" + CORRECT_FORWARD)
    assert main([str(relu_task), str(path), "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL [checker_tamper]") and "static audit" in out


def test_cli_names_the_users_candidate_file(relu_task: Path, candidate: Make,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    copy = candidate("torch.allclose = None\n" + CORRECT_FORWARD)
    mine = copy.rename(copy.with_name("my_relu.py"))
    assert main([str(relu_task), str(mine), "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"static audit, {re.escape(str(mine))}:\d+\)", out) and "candidate.py" not in out, out


def test_cli_help_states_exit_codes_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for code, meaning in (("0", "accepted"), ("1", "rejected"), ("2", "bad usage"), ("3", "harness error")):
        assert f"{code} the candidate was {meaning}" in out or f"{code} {meaning}" in out
    assert "dtype of inputs, weights and outputs" in out and "(default: fp32)" in out
    assert "(default: 120.0)" in out and "(default: 3)" in out


def test_cli_usage_errors_exit_2(relu_task: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(relu_task)]) == 2
    assert main([str(relu_task), str(relu_task), "--dtype", "fp64"]) == 2
    assert main([str(relu_task), str(tmp_path / "missing.py")]) == 2
    assert main([str(relu_task), str(relu_task), "--seeds", "0"]) == 2
    assert main([str(relu_task), str(relu_task), "--device", "cpu", "--shapes", "scaled",
                 "--data-path", "resident"]) == 2
    assert "cannot read" in capsys.readouterr().err
