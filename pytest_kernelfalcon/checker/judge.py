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

from pytest_kernelfalcon.checker.blame import harness_cause, hub_cause
from pytest_kernelfalcon.checker.comparable_trials import from_job
from pytest_kernelfalcon.core.compare import (
    tolerance_for,
    trial_context,
    trial_facts,
    value_draw_tolerance,
)
from pytest_kernelfalcon.core.facts import RNG_NOTE, rng_dependent
from pytest_kernelfalcon.core.protocol import signal_name, task_valued
from pytest_kernelfalcon.core.verdict import Category, Tolerance, Verdict
from pytest_kernelfalcon.executor.base import JobResult

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.options import CheckOptions, Reference

Judgement = tuple[Category | None, str]
STDERR_CHARS = 600


def _crash_detail(result: JobResult, what: str) -> str:
    code = result.returncode
    if code is not None and code < 0:
        how = f"{what} process killed by {signal_name(-code)}"
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
    if (cause := harness_cause(result, reference=what == "reference")) is not None:  # the machine's fault
        return Verdict.failed(Category.HARNESS_ERROR, cause)
    if what == "reference" and (cause := hub_cause(result)) is not None:
        return Verdict.failed(Category.HARNESS_ERROR, cause)
    if (memory := _memory_failure(result, what)) is not None:
        return memory
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


def _memory_failure(result: JobResult, what: str) -> Verdict | None:
    """Out of device memory alone (a job that ran out beside other checks was run again alone first):
    the candidate's own ``out_of_memory``; for the reference, the machine's (cannot run here)."""
    from pytest_kernelfalcon.checker.memory import out_of_memory

    found = out_of_memory(result)
    if found is None:
        return None
    how = "even alone, after running out beside other checks" if result.notes else "alone"
    if what == "reference":
        return Verdict.failed(Category.HARNESS_ERROR, f"cannot run here: the reference ran out of device memory "
                                                      f"{how} ({found.describe()})")
    return Verdict.failed(Category.OUT_OF_MEMORY, f"{what} ran out of device memory {how} ({found.describe()})")


def split_allowed(audit: dict[str, Any], allowed: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The forbidden ops the hybrid policy ``allowed`` does not accept, and those it does (``op xN at where``)."""
    from pytest_kernelfalcon.core.ops import is_accepted

    found = list(audit.get("forbidden") or [])
    accepted = [f for f in found if allowed and is_accepted(f["op"], allowed)]
    return [f for f in found if f not in accepted], [f"{f['op']} x{f['count']} at {f['where']}" for f in accepted]


def _audit_judgement(audit: dict[str, Any], allowed: Sequence[str] = ()) -> Judgement | None:
    if audit.get("tamper"):
        return Category.CHECKER_TAMPER, "; ".join(audit["tamper"])
    forbidden, _ = split_allowed(audit, allowed)
    if forbidden:
        ops = [f"{f['op']} x{f['count']} at {f['where']}" for f in forbidden]
        more = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return Category.TORCH_COMPUTE, "forward ran torch compute: " + "; ".join(ops) + more
    launches = audit.get("launches_per_trial") or [0]
    if min(launches) == 0:
        return Category.NO_TRITON_LAUNCH, f"no Triton kernel launched during forward (launches per trial: {launches})"
    if audit.get("side_stream"):
        return Category.SIDE_STREAM, ("forward returned with Triton work on a side stream that the calling stream "
                                      "does not wait for (wait_stream or synchronize before returning)")
    return None


def _context(trial: dict[str, Any], plan: dict[str, Any]) -> str:
    return trial_context(trial["seed"], bool(trial.get("strong")), plan, trial["inputs"],
                         str(trial.get("values", "task")), bool(trial.get("reuse_storage")))


def _pairs(reference: Reference, report: dict[str, Any]
           ) -> list[tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(case index, plan, reference trial, candidate trial) of every trial the job ran; a job that reported
    an error stopped early (the cases and trials it finished are kept, the last one may be partial)."""
    done, stopped = report["cases"], bool(report.get("error"))
    if len(done) > len(reference.cases) or (len(done) < len(reference.cases) and not stopped):
        raise ValueError("result.pt has a different number of cases than the job")
    pairs = []
    for k, (case, got) in enumerate(zip(reference.cases, done, strict=False)):
        trials = reference.trials_of(case)
        last = k == len(done) - 1
        if len(got["trials"]) > len(trials) or (len(got["trials"]) < len(trials) and not (stopped and last)):
            raise ValueError("result.pt has a different number of trials than the job")
        pairs += [(k, case.plan, t, g) for t, g in zip(trials, got["trials"], strict=False)]
    return pairs


def trial_tolerance(tol: Tolerance, trial: dict[str, Any], precision: str) -> tuple[Tolerance, Tolerance | None]:
    """A trial's tolerance (value draws: scaled by the reference's own error; ``tf32``: TF32-class error
    accepted) and the wider TF32-class one that classifies a failure under ``fp32`` (None: not measured)."""
    from pytest_kernelfalcon.core.precision import tf32_tolerance

    own = tol if task_valued(trial) else value_draw_tolerance(tol, trial["outputs"], trial.get("ref_error"))
    wider = tf32_tolerance(own, trial.get("tf32_error"))
    if precision == "tf32" and wider is not None:
        return wider, None
    return own, wider


def files_facts(reference: Reference, report: dict[str, Any], tol: Tolerance,
                precision: str = "fp32") -> list[dict[str, Any]]:
    """Return the per-trial facts of a candidate whose outputs came back in ``result.pt`` (host tensors)."""
    facts = []
    for k, plan, trial, got in _pairs(reference, report):
        own, wider = trial_tolerance(tol, trial, precision)
        found = trial_facts(trial["outputs"], got["outputs"], own, bool(trial.get("strong")),
                            kb_ref=trial.get("kb_outputs"), wider=wider)
        found.update(seed=trial["seed"], context=_context(trial, plan), aliases=list(got["aliases"]),
                     ref_aliases=list(trial["aliases"]), reused=list(got.get("reused") or []),
                     mutated=[x is not None for x in got["inputs_after"]],
                     ref_mutated=[x is not None for x in trial["inputs_after"]], case=k,
                     role=plan.get("role", "task"), values=str(trial.get("values", "task")),
                     strong=bool(trial.get("strong")), reuse=bool(trial.get("reuse_storage")),
                     ref_error=trial.get("ref_error"), wider_atol=wider.atol if wider else None,
                     kb_tf32=trial.get("kb_outputs") is not None)
        facts.append(found)
    return facts


def _replayed(facts: Sequence[dict[str, Any]], index: int) -> str | None:
    """Explain a wrong output as a replay: it equals another trial's output that was right for that trial."""
    mine = facts[index]
    for j, other in enumerate(facts):
        if j != index and other["digest"] == mine["digest"] and other["right_relative"] \
                and other["ref_digest"] != mine["ref_digest"]:
            return f"seed {mine['seed']} returned exactly the output of seed {other['seed']} although inputs differ"
    return None


def _numeric(facts: Sequence[dict[str, Any]], audit: bool) -> Judgement | None:
    for i, found in enumerate(facts):
        if found["numeric"] is None:
            continue
        reuse = _replayed(facts, i) if audit else None
        if reuse:
            return Category.RESULT_REUSE, f"{found['context']}: {reuse}; {found['numeric']}"
        return Category.NUMERIC_MISMATCH, f"{found['context']}: {found['numeric']}{_precision_class(facts)}"
    return None


def _precision_class(facts: Sequence[dict[str, Any]]) -> str:
    """``; precision: ...`` when every numeric failure is within the TF32-class bound (it fails only by that margin)."""
    from pytest_kernelfalcon.core.precision import precision_note

    failing = [f for f in facts if f["numeric"] is not None]
    if not failing or not all(f.get("wider_ok") for f in failing):
        return ""
    first = failing[0]
    return f"; {precision_note(first['max_abs'], first.get('ref_error'), first['wider_atol'])}"


def _mutated(facts: Sequence[dict[str, Any]], index: int) -> bool:
    return any(f["mutated"][index] and not f["ref_mutated"][index] for f in facts)


def _aliasing(facts: Sequence[dict[str, Any]]) -> Judgement | None:
    for found in facts:
        for i, (mine, theirs) in enumerate(zip(found["aliases"], found["ref_aliases"], strict=False)):
            if mine < 0 or mine == theirs:
                continue
            if _mutated(facts, mine):  # in any trial: in-place results may equal the input on some
                return Category.INPUT_MUTATION, f"{found['context']}: output {i} was written into input {mine}"
            return Category.RESULT_REUSE, f"{found['context']}: output {i} is input {mine} itself (the reference returns new memory)"
    return None


def _mutation(facts: Sequence[dict[str, Any]]) -> Judgement | None:
    for found in facts:
        for j, (mine, theirs) in enumerate(zip(found["mutated"], found["ref_mutated"], strict=False)):
            if mine and not theirs:
                return Category.INPUT_MUTATION, f"{found['context']}: forward changed input {j}; the reference leaves it unchanged"
    return None


def judge_facts(facts: Sequence[dict[str, Any]], audit: bool) -> Judgement | None:
    """Return the first failing judgement over per-trial facts (shape, reuse, numerics, aliasing, mutation)."""
    for found in facts:
        if found["shape"]:
            return Category.SHAPE_MISMATCH, f"{found['context']}: {found['shape']}"
    if audit:
        for found in facts:
            if found["reused"]:
                return Category.RESULT_REUSE, f"{found['context']}: output {found['reused'][0]} is the memory of an earlier trial's output"
    found_numeric = _numeric(facts, audit)
    if found_numeric or not audit:
        return found_numeric
    return _aliasing(facts) or _mutation(facts)


def candidate_facts(reference: Reference, report: dict[str, Any], tol: Tolerance, precision: str) -> list[dict[str, Any]]:
    """The per-trial facts of a candidate job: the comparer's (resident path) or computed here (files)."""
    return list(report["facts"]) if "facts" in report else files_facts(reference, report, tol, precision)


def _judge(reference: Reference, facts: Sequence[dict[str, Any]], tol: Tolerance, audit: bool) -> Judgement:
    if len(facts) != reference.trial_count:
        raise ValueError(f"{len(facts)} trial results for {reference.trial_count} trials")
    return judge_facts(facts, audit) or (
        None, f"passed {len(facts)} trial(s) on {len(reference.cases)} shape plan(s) at {tol.policy}")


def _where_stopped(reference: Reference, error: dict[str, Any]) -> str:
    """`` (at seed S, sizes ...)`` for a job that stopped with an error inside a trial it names."""
    case, trial = error.get("case"), error.get("trial")
    if not isinstance(case, int) or not isinstance(trial, int) or not 0 <= case < len(reference.cases):
        return ""
    trials = reference.trials_of(reference.cases[case])
    if trial >= len(trials):
        return ""
    found = trials[trial]  # a resident reference keeps summaries: the input shapes stand for the inputs
    found = found if "inputs" in found else {**found, "inputs": found.get("input_shapes", [])}
    return f" (at {_context(found, reference.cases[case].plan)})"


def _verdict_extra(reference: Reference, result: JobResult, options: CheckOptions, device: str) -> dict[str, Any]:
    report = result.report or {}
    seeds = [t["seed"] for c in reference.cases for t in c.trials]
    if reference.low_signal:
        seeds += [t["seed"] for c in reference.cases for t in c.strong_trials]
    timings = {"reference_s": reference.wall_s, "reference_cached": float(reference.cached),
               "candidate_s": result.wall_s}
    timings.update({f"candidate_{k}": float(v) for k, v in (report.get("timings") or {}).items()})
    audit = dict(report.get("audit") or {})
    audit.update({"low_signal_probes": list(reference.probes), "discarded_plans": list(reference.discarded),
                  "base_seed": reference.base_seed})
    if rng_dependent(reference.cases):
        audit["rng"] = RNG_NOTE
    return {"seeds": tuple(dict.fromkeys(seeds)), "shapes": tuple(c.plan for c in reference.cases),
            "tolerance": tolerance_for(options.dtype), "low_signal": reference.low_signal, "device": device,
            "dtype": options.dtype, "tf32": False, "timings": timings, "audit": audit,
            "precision": options.precision}


def _facts_or_none(reference: Reference, result: JobResult, options: CheckOptions,
                   tol: Tolerance) -> list[dict[str, Any]] | None:
    """The facts of a job our judgement did not need them of (a failed audit, an error): for KernelBench's verdict."""
    try:
        return candidate_facts(reference, result.report or {}, tol, options.precision) if result.report else None
    except (KeyError, TypeError, IndexError, ValueError, AttributeError):
        return None


def _judged(reference: Reference, result: JobResult, options: CheckOptions,
            tol: Tolerance) -> tuple[Judgement, list[dict[str, Any]] | None]:
    """Our judgement of a job that ran to the end, and its facts (not computed past a failed audit: they serve
    only the KernelBench-comparable verdict then)."""
    report = result.report or {}
    audited = _audit_judgement(report["audit"], options.allow_torch) if options.audit else None
    if audited is not None:
        return audited, None
    facts = candidate_facts(reference, report, tol, options.precision)
    return _judge(reference, facts, tol, options.audit), facts


def judge_candidate(reference: Reference, result: JobResult, options: CheckOptions, device: str,
                    comparable: bool = True) -> Verdict:
    """Return the verdict of a finished candidate job against its reference; ``comparable`` adds what
    KernelBench's eval says of the same trials (``checker/comparable.py``)."""
    start = time.monotonic()
    extra = _verdict_extra(reference, result, options, device)
    failure = job_failure(result, "candidate")
    facts = None
    if failure is not None:
        category, detail = failure.category, failure.detail + _where_stopped(reference, (result.report or {}).get(
            "error") or {})
    else:
        try:
            (category, detail), facts = _judged(reference, result, options, extra["tolerance"])
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            category, detail = Category.CRASH, f"malformed result.pt: {type(exc).__name__}: {exc}"
            failure = Verdict.failed(category, detail)
    if comparable:
        extra["kernelbench"] = from_job(reference, result, facts if facts is not None else _facts_or_none(
            reference, result, options, extra["tolerance"]), failure)
    if options.audit and options.allow_torch:
        extra["allowed_torch"] = tuple(split_allowed((result.report or {}).get("audit") or {}, options.allow_torch)[1])
        if category is None and extra["allowed_torch"]:
            detail += f" [hybrid: torch allowed for {'; '.join(extra['allowed_torch'])}]"
    detail += _notes(reference, options, extra)
    extra["timings"]["compare_s"] = time.monotonic() - start
    return Verdict(passed=category is None, category=category, detail=detail, **extra)


def _notes(reference: Reference, options: CheckOptions, extra: dict[str, Any]) -> str:
    """The detail's closing notes: random numbers, the fuzz seed, the default profile's coverage and replay seed
    (recorded in ``extra["audit"]["profile"]`` too)."""
    notes = f" [the reference draws random numbers; {RNG_NOTE}]" if "rng" in extra["audit"] else ""
    seed = reference.base_seed
    if options.shapes == "fuzz":
        notes += f" [fuzz seed {seed}; replay with --seed {seed}]"
    elif options.shapes == "default":
        from pytest_kernelfalcon.checker.profile import coverage, dropped_draws

        covered = coverage(reference)
        notes += f" [{covered}; seed {seed}, replay with --seed {seed}]"
        extra["audit"]["profile"] = {"name": "default", "seed": seed, "coverage": covered,
                                     "dropped_draws": dropped_draws(reference)}
    return notes
