"""verify end to end with real Triton (interpreter on CPU): correct, wrong and cheating candidates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from checker_samples import CORRECT_FORWARD

from pytest_kernelfalcon.checker.checker import Checker
from pytest_kernelfalcon.core.verdict import Category

Make = Callable[[str], Path]


def test_correct_relu_passes(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate(CORRECT_FORWARD))
    assert verdict.passed, verdict.detail
    assert verdict.category is None and verdict.seeds == (42, 43) and not verdict.low_signal
    assert verdict.audit["launches_per_trial"] == [1, 1]
    assert verdict.tolerance is not None and verdict.tolerance.policy == "kernelbench-fp32"


def test_wrong_relu_is_numeric_mismatch(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                print("PASS")
                return copy(x, torch.empty_like(x))
    """))
    assert verdict.category == Category.NUMERIC_MISMATCH
    assert "seed 42" in verdict.detail and "first mismatch at index (0, " in verdict.detail
    assert "max abs err" in verdict.detail and "kernelbench-fp32" in verdict.detail


def test_torch_compute_names_op_and_line(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    path = candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                y = relu(x, torch.empty_like(x))
                return torch.relu(x)
    """)
    line = path.read_text().splitlines().index("        return torch.relu(x)") + 1
    verdict = cpu_checker.verify(relu_task, path)
    assert verdict.category == Category.TORCH_COMPUTE
    assert "aten.relu.default" in verdict.detail and f"candidate.py:{line}" in verdict.detail


def test_no_kernel_launch(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                return x.clone()
    """))
    assert verdict.category == Category.NO_TRITON_LAUNCH


def test_runtime_monkey_patch_is_tamper(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    patch = "t = torch\nt.allclose = lambda *args, **kwargs: True\n"
    verdict = cpu_checker.verify(relu_task, candidate(patch + CORRECT_FORWARD))
    assert verdict.category == Category.CHECKER_TAMPER and "torch.allclose" in verdict.detail


def test_static_monkey_patch_rejects_without_running(cpu_checker: Checker, relu_task: Path,
                                                     candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("torch.allclose = None\n" + CORRECT_FORWARD))
    assert verdict.category == Category.CHECKER_TAMPER and "static audit" in verdict.detail
    assert verdict.timings == {}


def test_input_mutation(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                y = relu(x, torch.empty_like(x))
                copy(y, x)
                return y
    """))
    assert verdict.category == Category.INPUT_MUTATION and "input 0" in verdict.detail


def test_in_place_result_is_input_mutation(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                return relu(x, x)
    """))
    assert verdict.category == Category.INPUT_MUTATION and "written into input 0" in verdict.detail


def test_returning_a_cached_buffer_is_result_reuse(cpu_checker: Checker, relu_task: Path,
                                                   candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("""
        class ModelNew(nn.Module):
            def __init__(self):
                super().__init__()
                self.out = None

            def forward(self, x):
                if self.out is None:
                    self.out = relu(x, torch.empty_like(x))
                copy(self.out, torch.empty_like(x))
                return self.out
    """))
    assert verdict.category == Category.RESULT_REUSE and "earlier trial" in verdict.detail


def test_replaying_cached_values_is_result_reuse(cpu_checker: Checker, relu_task: Path,
                                                 candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("""
        class ModelNew(nn.Module):
            def __init__(self):
                super().__init__()
                self.saved = None

            def forward(self, x):
                if self.saved is None:
                    self.saved = relu(x, torch.empty_like(x))
                return copy(self.saved, torch.empty_like(x))
    """))
    assert verdict.category == Category.RESULT_REUSE and "although inputs differ" in verdict.detail


def test_shape_mismatch(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                return relu(x, torch.empty_like(x)).view(-1)
    """))
    assert verdict.category == Category.SHAPE_MISMATCH
    assert "[16, 64]" in verdict.detail and "[1024]" in verdict.detail


def test_runtime_error_names_the_line(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    path = candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                return relu(x, torch.empty_like(x)) * x.shape[7]
    """)
    verdict = cpu_checker.verify(relu_task, path)
    line = len(path.read_text().splitlines())
    assert verdict.category == Category.RUNTIME_ERROR
    assert f"candidate.py:{line}" in verdict.detail and "IndexError" in verdict.detail


def test_syntax_error_is_compile_error(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("class ModelNew(nn.Module:\n    pass\n"))
    assert verdict.category == Category.COMPILE_ERROR and "SyntaxError" in verdict.detail


def test_missing_entry_class(cpu_checker: Checker, relu_task: Path, candidate: Make) -> None:
    verdict = cpu_checker.verify(relu_task, candidate("class Other(nn.Module):\n    pass\n"))
    assert verdict.category == Category.COMPILE_ERROR and "ModelNew" in verdict.detail


def test_missing_candidate_file(cpu_checker: Checker, relu_task: Path, tmp_path: Path) -> None:
    verdict = cpu_checker.verify(relu_task, tmp_path / "absent.py")
    assert verdict.category == Category.MISSING_CANDIDATE
