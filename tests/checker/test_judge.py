"""Pure units for judge.py: the parent's judgement of synthetic job results (no processes)."""

from __future__ import annotations

import signal
from typing import Any

import torch

from pytest_kernelfalcon.checker.checker import CheckOptions, Reference
from pytest_kernelfalcon.checker.judge import judge_candidate
from pytest_kernelfalcon.core.protocol import ReferenceCase
from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.executor.base import JobResult

AUDIT_OK = {"enabled": True, "ops": {}, "forbidden": [], "triton_launches": 2, "launches_per_trial": [1, 1],
            "tamper": [], "side_stream": False, "state_copy": {}}
XS = [torch.randn(8), torch.randn(8)]


def reference(outputs: list[torch.Tensor], aliases: int = -1) -> Reference:
    trials = [{"seed": 42 + i, "strong": False, "inputs": [x], "outputs": [y], "inputs_after": [None],
               "aliases": [aliases]} for i, (x, y) in enumerate(zip(XS, outputs, strict=True))]
    case = ReferenceCase(plan={"kind": "official", "overrides": {}}, index=0, construct_seed=42, init_inputs=(),
                         trials=tuple(trials), strong_trials=())
    return Reference((case,), (), (), 42, 0.0)


def result(outputs: list[Any], mutated: tuple[bool, ...] = (False, False), aliases: int = -1,
           audit: dict[str, Any] | None = None, returncode: int = 0) -> JobResult:
    trials = [{"seed": 42 + i, "outputs": [y], "aliases": [aliases], "reused": [],
               "inputs_after": [XS[i] if mutated[i] else None]} for i, y in enumerate(outputs)]
    report = {"error": None, "cases": [{"trials": trials}], "audit": audit or AUDIT_OK, "timings": {}}
    return JobResult(returncode, False, False, "", 1.0, report, None)


def judge(ref: Reference, res: JobResult) -> tuple[Category | None, str]:
    verdict = judge_candidate(ref, res, CheckOptions(device="cpu"), "cpu")
    return verdict.category, verdict.detail


def test_correct_outputs_pass() -> None:
    ys = [x.relu() for x in XS]
    assert judge(reference(ys), result([y.clone() for y in ys]))[0] is None


def test_replayed_output_is_result_reuse() -> None:
    ys = [x.relu() for x in XS]
    category, detail = judge(reference(ys), result([ys[0].clone(), ys[0].clone()]))
    assert category == Category.RESULT_REUSE and "seed 43 returned exactly the output of seed 42" in detail


def test_constant_or_nan_answers_are_numeric_mismatch() -> None:
    ys = [x.relu() + 1 for x in XS]
    assert judge(reference(ys), result([torch.zeros(8), torch.zeros(8)]))[0] == Category.NUMERIC_MISMATCH
    nan = torch.full((8,), float("nan"))
    assert judge(reference(ys), result([nan, nan.clone()]))[0] == Category.NUMERIC_MISMATCH


def test_in_place_output_mutating_in_a_later_trial_is_input_mutation() -> None:
    ys = [x.relu() for x in XS]
    category, _ = judge(reference(ys), result([y.clone() for y in ys], mutated=(False, True), aliases=0))
    assert category == Category.INPUT_MUTATION


def test_returning_the_input_itself_is_result_reuse_unless_reference_does() -> None:
    ys = [x.clone() for x in XS]
    assert judge(reference(ys), result([y.clone() for y in ys], aliases=0))[0] == Category.RESULT_REUSE
    assert judge(reference(ys, aliases=0), result([y.clone() for y in ys], aliases=0))[0] is None


def test_audit_order_tamper_before_torch_compute_before_launch() -> None:
    ys = [x.relu() for x in XS]
    audit = {**AUDIT_OK, "forbidden": [{"op": "aten.relu.default", "count": 2, "where": "candidate.py:9"}],
             "launches_per_trial": [0, 0]}
    assert judge(reference(ys), result(ys, audit=audit))[0] == Category.TORCH_COMPUTE
    assert judge(reference(ys), result(ys, audit={**audit, "tamper": ["x"]}))[0] == Category.CHECKER_TAMPER
    assert judge(reference(ys), result(ys, audit={**audit, "forbidden": []}))[0] == Category.NO_TRITON_LAUNCH


def test_signal_deaths_and_malformed_reports() -> None:
    ys = [x.relu() for x in XS]
    killed = JobResult(-signal.SIGSEGV, False, False, "boom", 1.0, None, "no result.pt was written")
    category, detail = judge(reference(ys), killed)
    assert category == Category.CRASH and "SIGSEGV" in detail and "boom" in detail
    cpu_limit = JobResult(-signal.SIGXCPU, False, False, "", 1.0, None, "no result.pt was written")
    assert judge(reference(ys), cpu_limit)[0] == Category.TIMEOUT
    malformed = JobResult(0, False, False, "", 1.0, {"error": None, "audit": AUDIT_OK, "cases": []}, None)
    category, detail = judge(reference(ys), malformed)
    assert category == Category.CRASH and "malformed" in detail


def test_a_module_missing_in_the_reference_job_is_the_machines_fault() -> None:
    """Only trusted code runs in a reference job: a missing module there means this machine cannot run
    the task, wherever the import was made (here through importlib, so no frame names the task)."""
    from pytest_kernelfalcon.checker.judge import job_failure

    message = ("reference failed on every shape plan: <frozen importlib._bootstrap>:1140: "
               "ModuleNotFoundError: No module named 'kf_absent'")
    report = {"error": {"category": "reference_error", "message": message}}
    result = JobResult(0, False, False, "", 0.1, report, None)
    blamed = job_failure(result, "reference")
    assert blamed is not None and blamed.category == Category.HARNESS_ERROR
    assert "cannot run here" in blamed.detail and "kf_absent" in blamed.detail
    harness = job_failure(JobResult(0, False, False, "", 0.1, {"error": {
        "category": "reference_error", "message": message.replace("kf_absent", "numpy")}}, None), "reference")
    assert harness is not None and harness.category == Category.HARNESS_ERROR and "lacks" in harness.detail
