"""The parent's judgement of a finished job: from ``JobResult`` (and the reference) to a ``Verdict``.

Order: job failure (cancel, timeout, crash, the child's own error category) ->
checker_tamper -> torch_compute -> no_triton_launch -> side_stream ->
shape_mismatch -> result_reuse (same output memory across trials) ->
numeric_mismatch (or result_reuse when the wrong output equals another trial's)
-> result_reuse (output aliases an input, unlike the reference) -> input_mutation.
With ``audit=False`` only failures, shapes and numerics apply.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.compare import identical, numeric_mismatch, shape_mismatch, tolerance_for
from pytest_kernelfalcon.executor import JobResult
from pytest_kernelfalcon.verdict import Category, Tolerance, Verdict

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker import CheckOptions, Reference

Judgement = tuple[Category | None, str]
STDERR_CHARS = 600


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def _crash_detail(result: JobResult, what: str) -> str:
    code = result.returncode
    if code is not None and code < 0:
        how = f"{what} process killed by {_signal_name(-code)}"
    elif code == 0 and result.report_error == "no result.pt was written":
        how = f"{what} process exited with code 0 before writing its result (early exit)"
    else:
        how = f"{what} process exited with code {code}: {result.report_error or 'no valid result'}"
    tail = result.stderr_tail.strip()[-STDERR_CHARS:]
    return f"{how}; stderr tail: {tail}" if tail else how


def job_failure(result: JobResult, what: str) -> Verdict | None:
    """Return the verdict for a job that was cancelled, timed out, crashed or reported an error."""
    if result.cancelled:
        return Verdict.failed(Category.CANCELLED, f"{what} cancelled after {result.wall_s:.1f}s")
    if result.timed_out or result.returncode == -signal.SIGXCPU:
        return Verdict.failed(Category.TIMEOUT, f"{what} killed after {result.wall_s:.1f}s (time limit)")
    if result.report is None or result.returncode != 0:
        return Verdict.failed(Category.CRASH, _crash_detail(result, what))
    error = result.report.get("error")
    if error:
        try:
            category = Category(error["category"])
        except (ValueError, KeyError, TypeError):
            return Verdict.failed(Category.CRASH, f"{what} reported an unknown error: {error!r}"[:2000])
        return Verdict.failed(category, str(error.get("message", "")))
    return None


def _audit_judgement(audit: dict[str, Any]) -> Judgement | None:
    if audit.get("tamper"):
        return Category.CHECKER_TAMPER, "; ".join(audit["tamper"])
    if audit.get("forbidden"):
        ops = [f"{f['op']} x{f['count']} at {f['where']}" for f in audit["forbidden"]]
        return Category.TORCH_COMPUTE, "forward ran torch compute: " + "; ".join(ops)
    launches = audit.get("launches_per_trial") or [0]
    if min(launches) == 0:
        return Category.NO_TRITON_LAUNCH, f"no Triton kernel launched during forward (launches per trial: {launches})"
    if audit.get("side_stream"):
        return Category.SIDE_STREAM, "outputs changed after a device-wide synchronize: work left on a side stream"
    return None


def _context(trial: dict[str, Any], plan: dict[str, Any]) -> str:
    shapes = [list(x.shape) if hasattr(x, "shape") else x for x in trial["inputs"]]
    strong = ", strengthened inputs" if trial.get("strong") else ""
    return f"seed {trial['seed']}{strong}, sizes {plan.get('overrides') or 'official'}, input shapes {shapes}"


def _pairs(reference: Reference, report: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    if len(report["cases"]) != len(reference.cases):
        raise ValueError("result.pt has a different number of cases than the job")
    pairs = []
    for case, got in zip(reference.cases, report["cases"], strict=False):
        trials = list(case["trials"]) + (list(case["strong_trials"]) if reference.low_signal else [])
        if len(got["trials"]) != len(trials):
            raise ValueError("result.pt has a different number of trials than the job")
        pairs += [(case["plan"], t, g) for t, g in zip(trials, got["trials"], strict=False)]
    return pairs


def _reuse_of_values(pairs: Sequence[Any], index: int, tol: Tolerance) -> str | None:
    """Explain a wrong output as a replay: it equals another trial's output that was right for that trial."""
    _, trial, got = pairs[index]
    for j, (_, other, other_got) in enumerate(pairs):
        if j == index or not identical(got["outputs"], other_got["outputs"]):
            continue
        right_there = numeric_mismatch(other["outputs"], other_got["outputs"], tol, relative=True) is None
        if right_there and not identical(trial["outputs"], other["outputs"]):
            return f"seed {trial['seed']} returned exactly the output of seed {other['seed']} although inputs differ"
    return None


def _numeric(pairs: Sequence[Any], tol: Tolerance, audit: bool) -> Judgement | None:
    for i, (plan, trial, got) in enumerate(pairs):
        mismatch = numeric_mismatch(trial["outputs"], got["outputs"], tol, relative=bool(trial.get("strong")))
        if mismatch is None:
            continue
        reuse = _reuse_of_values(pairs, i, tol) if audit else None
        if reuse:
            return Category.RESULT_REUSE, reuse
        return Category.NUMERIC_MISMATCH, f"{_context(trial, plan)}: {mismatch.detail}"
    return None


def _mutated(pairs: Sequence[Any], index: int) -> bool:
    return any(got["inputs_after"][index] is not None and trial["inputs_after"][index] is None
               for _, trial, got in pairs)


def _aliasing(pairs: Sequence[Any]) -> Judgement | None:
    for plan, trial, got in pairs:
        for i, (mine, theirs) in enumerate(zip(got["aliases"], trial["aliases"], strict=False)):
            if mine < 0 or mine == theirs:
                continue
            if _mutated(pairs, mine):  # in any trial: in-place results may equal the input on some
                return Category.INPUT_MUTATION, f"{_context(trial, plan)}: output {i} was written into input {mine}"
            return Category.RESULT_REUSE, f"{_context(trial, plan)}: output {i} is input {mine} itself (the reference returns new memory)"
    return None


def _mutation(pairs: Sequence[Any]) -> Judgement | None:
    for plan, trial, got in pairs:
        for j, (mine, theirs) in enumerate(zip(got["inputs_after"], trial["inputs_after"], strict=False)):
            if mine is not None and theirs is None:
                return Category.INPUT_MUTATION, f"{_context(trial, plan)}: forward changed input {j}; the reference leaves it unchanged"
    return None


def _judge(reference: Reference, report: dict[str, Any], tol: Tolerance, audit: bool) -> Judgement:
    if audit:
        found = _audit_judgement(report["audit"])
        if found:
            return found
    pairs = _pairs(reference, report)
    for plan, trial, got in pairs:
        mismatch = shape_mismatch(trial["outputs"], got["outputs"])
        if mismatch:
            return Category.SHAPE_MISMATCH, f"{_context(trial, plan)}: {mismatch.detail}"
    if audit:
        for plan, trial, got in pairs:
            if got.get("reused"):
                return Category.RESULT_REUSE, f"{_context(trial, plan)}: output {got['reused'][0]} is the memory of an earlier trial's output"
    found = _numeric(pairs, tol, audit) or (_aliasing(pairs) or _mutation(pairs) if audit else None)
    if found:
        return found
    return None, f"passed {len(pairs)} trial(s) on {len(reference.cases)} shape plan(s) at {tol.policy}"


def _verdict_extra(reference: Reference, result: JobResult, options: CheckOptions, device: str) -> dict[str, Any]:
    report = result.report or {}
    seeds = [t["seed"] for c in reference.cases for t in c["trials"]]
    if reference.low_signal:
        seeds += [t["seed"] for c in reference.cases for t in c["strong_trials"]]
    timings = {"reference_s": reference.wall_s, "candidate_s": result.wall_s}
    timings.update({f"candidate_{k}": float(v) for k, v in (report.get("timings") or {}).items()})
    audit = dict(report.get("audit") or {})
    audit.update({"low_signal_probes": list(reference.probes), "discarded_plans": list(reference.discarded),
                  "base_seed": reference.base_seed})
    return {"seeds": tuple(dict.fromkeys(seeds)), "shapes": tuple(c["plan"] for c in reference.cases),
            "tolerance": tolerance_for(options.dtype), "low_signal": reference.low_signal, "device": device,
            "dtype": options.dtype, "tf32": False, "timings": timings, "audit": audit}


def judge_candidate(reference: Reference, result: JobResult, options: CheckOptions, device: str) -> Verdict:
    """Return the verdict of a finished candidate job against its reference."""
    start = time.monotonic()
    extra = _verdict_extra(reference, result, options, device)
    failure = job_failure(result, "candidate")
    if failure is not None:
        category, detail = failure.category, failure.detail
    else:
        try:
            category, detail = _judge(reference, result.report or {}, extra["tolerance"], options.audit)
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            category, detail = Category.CRASH, f"malformed result.pt: {type(exc).__name__}: {exc}"
    if options.shapes == "fuzz":
        detail += f" [fuzz seed {reference.base_seed}; replay with --seed {reference.base_seed}]"
    extra["timings"]["compare_s"] = time.monotonic() - start
    return Verdict(passed=category is None, category=category, detail=detail, **extra)
