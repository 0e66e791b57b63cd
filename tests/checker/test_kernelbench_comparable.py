"""The KernelBench-comparable verdict beside ours, on real candidates (Triton in the interpreter, real children).

One test per row of issue 24's table (KernelBench's eval passes what we reject: a hybrid left to torch's
convolution, a matmul at TF32 precision, a kernel wrong only at a grown size, a result cache; and, on
the GPU, KernelBench rejecting a direct convolution against its TF32 reference), then the cases our
trials cannot tell, where the ``kernelbench`` job answers: a static-audit rejection, a candidate that
patches the comparison an in-process eval uses, a process that dies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
from pytest_kernelfalcon.cli.verify import main
from pytest_kernelfalcon.core.isolation import DEFAULT_POLICY, is_root
from pytest_kernelfalcon.core.verdict import Category, Verdict
from pytest_kernelfalcon.executor.cold import ColdExecutor

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CONV = CORPUS / "tasks" / "conv_relu.py"
HYBRID = CORPUS / "own_conv_relu" / "hybrid_conv.py"


@pytest.fixture(scope="module")
def checker() -> Iterator[Checker]:
    """The default profile on the CPU (what every acceptance runs), one reference per task; jobs run as their own
    uid where this is root (as ``kernelfalcon verify`` runs them)."""
    executor = ColdExecutor(isolation=DEFAULT_POLICY if is_root() else None)
    made = Checker(CheckOptions(device="cpu", timeout_s=120.0), executor)
    yield made
    made.close()
    executor.close()


needs_root = pytest.mark.skipif(not is_root(), reason="code the static audit refused runs only as a candidate uid")


def judged(checker: Checker, task: Path, candidate: Path) -> Verdict:
    verdict = checker.verify(task, candidate).naming(candidate.name)
    assert verdict.kernelbench is not None, verdict
    return verdict


def test_hybrid_conv_passes_kernelbench_and_fails_ours_naming_the_op_and_line(checker: Checker) -> None:
    verdict = judged(checker, CONV, HYBRID)
    kb = verdict.kernelbench
    assert verdict.category == Category.TORCH_COMPUTE and kb is not None
    assert kb.passed is True and kb.source == "trials" and kb.trials == 3, kb
    assert kb.why == "audit" and "aten.convolution.default" in kb.reason and "hybrid_conv.py:25" in kb.reason, kb


@pytest.mark.parametrize(("allowed", "precision", "passes"), [
    (("convolution",), "fp32", True), (("addmm", "_softmax"), "fp32", False), ((), "tf32", False),
])
def test_the_hybrid_passes_under_allow_torch_convolution_and_nowhere_else(
        allowed: tuple[str, ...], precision: str, passes: bool) -> None:
    options = CheckOptions(device="cpu", timeout_s=120.0, allow_torch=allowed, precision=precision)
    made = Checker(options)
    try:
        verdict = made.verify(CONV, HYBRID).naming(HYBRID.name)
    finally:
        made.close()
    assert verdict.passed is passes, verdict.detail
    if passes:
        assert verdict.allowed_torch and verdict.allowed_torch[0].startswith("aten.convolution.default x")
        assert "hybrid_conv.py:25" in verdict.allowed_torch[0] and "[hybrid: torch allowed for" in verdict.detail
    else:
        assert verdict.category == Category.TORCH_COMPUTE and verdict.allowed_torch == ()


def test_tf32_matmul_is_rejected_by_precision_and_accepted_under_tf32(kernelbench_dir: Path) -> None:
    task, candidate = kernelbench_dir / "level1" / "1_Square_matrix_multiplication_.py", \
        CORPUS / "kb_matmul" / "tf32_operands.py"
    strict = Checker(CheckOptions(device="cpu", timeout_s=120.0))
    try:
        verdict = strict.verify(task, candidate)
    finally:
        strict.close()
    kb = verdict.kernelbench
    assert verdict.category == Category.NUMERIC_MISMATCH and "precision: fails only by a TF32-class margin" in \
        verdict.detail, verdict.detail
    assert kb is not None and kb.passed is True and kb.why == "precision", kb
    assert "x the reference's own fp32 error" in kb.reason and "--falcon-precision tf32" in kb.reason, kb
    loose = Checker(CheckOptions(device="cpu", timeout_s=120.0, precision="tf32"))
    try:
        accepted = loose.verify(task, candidate)
    finally:
        loose.close()
    assert accepted.passed and accepted.precision == "tf32", accepted.detail
    assert accepted.kernelbench is not None and accepted.kernelbench.passed and not accepted.kernelbench.reason


def test_kernel_wrong_only_at_a_grown_size_names_the_grow_plan(checker: Checker) -> None:
    verdict = judged(checker, CORPUS / "tasks" / "softmax_rows.py", CORPUS / "own_softmax_rows" / "capped_block.py")
    kb = verdict.kernelbench
    assert verdict.category == Category.NUMERIC_MISMATCH and "(grow plan)" in verdict.detail, verdict.detail
    assert kb is not None and kb.passed is True and kb.sizes == {"cols": 64, "rows": 16}, kb
    assert kb.why == "drawn plan" and "at the grow plan {'cols': 1" in kb.reason, kb
    assert "precision" not in kb.reason  # the tail it never writes is no rounding margin


def test_result_cache_passes_kernelbench_which_never_reuses_input_memory(checker: Checker) -> None:
    verdict = judged(checker, CORPUS / "tasks" / "scaled_add.py", CORPUS / "own_scaled_add" / "pointer_cache.py")
    kb = verdict.kernelbench
    assert verdict.category == Category.RESULT_REUSE and kb is not None
    assert kb.passed is True and kb.trials == 2 and "seed 44 left out" in kb.detail, kb
    assert kb.why == "address reuse" and kb.reason.startswith("address reuse: result_reuse: seed 44"), kb


def test_agreeing_verdicts_carry_no_reason(checker: Checker) -> None:
    for task, candidate in ((CONV, CORPUS / "own_conv_relu" / "correct.py"),
                            (CORPUS / "tasks" / "scaled_add.py", CORPUS / "own_scaled_add" / "off_by_one_mask.py")):
        verdict = judged(checker, task, candidate)
        kb = verdict.kernelbench
        assert kb is not None and kb.passed is verdict.passed and kb.why == kb.reason == "", (candidate, kb)


@needs_root
def test_a_static_rejection_is_judged_by_the_kernelbench_job(checker: Checker, kernelbench_dir: Path) -> None:
    verdict = judged(checker, kernelbench_dir / "level1" / "19_ReLU.py", CORPUS / "kb_relu" / "fallback.py")
    kb = verdict.kernelbench
    assert verdict.category == Category.FALLBACK and kb is not None
    assert kb.source == "kernelbench job" and kb.passed is True and kb.trials == 5, kb
    assert kb.sizes == dict(verdict_sizes(checker, kernelbench_dir / "level1" / "19_ReLU.py")), kb
    assert kb.why == "audit" and "fallback" in kb.reason and "static audit" in kb.reason, kb


def verdict_sizes(checker: Checker, task: Path) -> dict[str, int]:
    reference = checker.reference(task.read_text())
    assert not isinstance(reference, Verdict)
    return dict(reference.cases[0].plan["overrides"])


def test_without_a_candidate_uid_a_static_rejection_is_not_run_again(kernelbench_dir: Path) -> None:
    plain = Checker(CheckOptions(device="cpu", timeout_s=120.0), ColdExecutor())  # jobs as this process's uid
    try:
        verdict = plain.verify(kernelbench_dir / "level1" / "19_ReLU.py", CORPUS / "kb_relu" / "fallback.py")
    finally:
        plain.close()
        plain.executor.close()
    kb = verdict.kernelbench
    assert verdict.category == Category.FALLBACK and kb is not None and kb.passed is None, kb
    assert kb.reason.startswith("not run: the static audit rejected it") and "KernelBench's eval would run it" in \
        kb.reason, kb


@needs_root
def test_a_patched_allclose_fools_the_in_process_eval_but_not_ours(checker: Checker, kernelbench_dir: Path) -> None:
    verdict = judged(checker, kernelbench_dir / "level1" / "19_ReLU.py", CORPUS / "kb_relu" / "tamper_allclose.py")
    kb = verdict.kernelbench
    assert verdict.category == Category.CHECKER_TAMPER and kb is not None
    assert kb.source == "kernelbench job" and kb.passed is True, kb  # its kernel halves x: only a fooled eval passes


def test_a_process_that_exits_early_fails_kernelbench_too(checker: Checker, kernelbench_dir: Path) -> None:
    verdict = judged(checker, kernelbench_dir / "level1" / "47_Sum_reduction_over_a_dimension.py",
                     CORPUS / "kb_sum" / "exit_hidden.py")
    kb = verdict.kernelbench
    assert verdict.category == Category.CRASH and kb is not None
    # never run again: KernelBench's eval runs in the candidate's process and dies with it
    assert kb.source == "trials" and kb.passed is False and "its process died" in kb.detail, kb
    assert "early exit" in kb.detail and kb.why == kb.reason == ""


def test_cli_shows_both_verdicts_and_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(CONV), str(HYBRID), "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "KernelBench's eval would say: PASS" in out and "why ours differs: audit: torch_compute" in out, out
    assert main([str(CONV), str(HYBRID), "--device", "cpu", "--allow-torch", "aten.convolution", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["allowed_torch"][0].startswith("aten.convolution.default x"), data
    assert data["kernelbench"]["passed"] is True and data["kernelbench"]["policy"].startswith("kernelbench-eval")


def test_cli_unknown_torch_op_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(CONV), str(HYBRID), "--device", "cpu", "--allow-torch", "convolution,convolutoin"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kernelfalcon verify: --allow-torch: unknown aten op 'convolutoin' "
                   "(a name of torch.ops.aten, e.g. convolution, addmm)"]


@pytest.mark.gpu
def test_direct_conv_fails_kernelbench_against_its_tf32_reference_on_the_gpu() -> None:
    made = Checker(CheckOptions(device="cuda", timeout_s=180.0))
    try:
        direct = made.verify(CONV, CORPUS / "own_conv_relu" / "correct.py")
        hybrid = made.verify(CONV, HYBRID)
    finally:
        made.close()
    kb = direct.kernelbench
    assert direct.passed and kb is not None and kb.passed is False, (direct.detail, kb)
    assert kb.why == "reference tf32" and "torch's default TF32" in kb.reason, kb
    # the hybrid's own torch convolution follows the same TF32 setting in KernelBench's eval: it passes there
    assert hybrid.kernelbench is not None and hybrid.kernelbench.source == "kernelbench job"
    assert hybrid.kernelbench.passed is True, hybrid.kernelbench
