"""The KernelBench-comparable verdict beside ours (``Verdict.kernelbench``), and in one line why they differ.

What KernelBench's own eval (``core/kernelbench.py``) would say of the same candidate. Computed from
the trials the check runs anyway where they can tell: our task plan's trials at the task's own
values (official sizes on the GPU, the scaled pick on the CPU), judged as KernelBench judges
(output count, shapes and dtypes, ``torch.allclose`` at atol=rtol=1e-2, no audit), against the
reference as KernelBench computes it where that differs (torch's default TF32 settings), leaving out
an address-reuse trial that returned the previous trial's output (KernelBench's trials never reuse
input memory). Where they cannot tell, the ``kernelbench`` job replays KernelBench's procedure in a
child (``child/kernelbench.py``): nothing ran (a static-audit rejection), the job ended without
results (a timeout, a crash), the candidate changed its own process (an in-process eval such as
KernelBench's can be fooled), its own seeded weights differ from the reference's (KernelBench copies
no state), the reference draws random numbers, side-stream work (KernelBench synchronizes the device
before it compares), a resident reference that TF32 changes.

``explain`` then names why ours differs: the audit (its finding, the op and source line), a drawn
plan (which one), precision (the measured error against the reference's own), our tighter
tolerance, the reference's TF32 setting, the weights, KernelBench's own trials.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.core.kernelbench import KB_POLICY
from pytest_kernelfalcon.core.protocol import task_valued
from pytest_kernelfalcon.core.verdict import Category, KernelBenchVerdict, Tolerance, Verdict

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.checker import Checker
    from pytest_kernelfalcon.checker.options import CheckOptions, Reference
    from pytest_kernelfalcon.executor.base import JobResult

JOB = "kernelbench job"
AUDIT = frozenset({Category.TORCH_COMPUTE, Category.NO_TRITON_LAUNCH, Category.SIDE_STREAM, Category.CHECKER_TAMPER,
                   Category.FALLBACK, Category.REFERENCE_REUSE, Category.RESULT_REUSE, Category.INPUT_MUTATION})
UNJUDGED = frozenset({Category.CANCELLED, Category.HARNESS_ERROR, Category.REFERENCE_ERROR,
                      Category.MISSING_CANDIDATE})


def plan_sizes(reference: Reference) -> str:
    """The task plan's sizes: ``official`` or its constants."""
    overrides = reference.cases[0].plan.get("overrides") if reference.cases else None
    return "official" if not overrides else ", ".join(f"{k}={v}" for k, v in sorted(dict(overrides).items()))


def unjudged(why: str, sizes: str = "official") -> KernelBenchVerdict:
    """A KernelBench-comparable verdict that could not be told (nothing of the candidate ran to an answer)."""
    return KernelBenchVerdict(None, "not judged", "none", 0, sizes, KB_POLICY, "not judged", why)


def pending(why: str, reason: str, sizes: str) -> KernelBenchVerdict:
    """A verdict only the ``kernelbench`` job can tell (``why``/``reason``: what our trials cannot tell)."""
    return KernelBenchVerdict(None, "", JOB, 0, sizes, KB_POLICY, why, reason)


def needs_job(kb: KernelBenchVerdict | None) -> bool:
    """Whether ``kb`` waits for the ``kernelbench`` job."""
    return kb is not None and kb.passed is None and kb.source == JOB


def _job_cause(reference: Reference, result: JobResult, failure: Verdict | None) -> tuple[str, str] | None:
    """(why, reason) when our candidate job cannot tell what KernelBench's eval would say, else None."""
    from pytest_kernelfalcon.core.facts import rng_dependent

    report = result.report or {}
    if failure is not None and not report.get("error"):
        return "no result", f"our candidate job ended without results ({failure.category.value if failure.category else '?'})"
    audit = report.get("audit") or {}
    changed = (audit.get("state_copy") or {}).get("changed", 0)
    causes = [
        (bool(audit.get("tamper")), "process", "the candidate changed its own process (an eval in that process, "
                                               "as KernelBench's is, may be fooled)"),
        (bool(audit.get("side_stream")), "side stream", "work left on a side stream (KernelBench synchronizes the "
                                                        "device before it compares)"),
        (bool(changed), "weights", f"ModelNew's own seeded construction differs from Model's in {changed} tensor(s) "
                                   "(KernelBench copies no state; ours copies the reference's)"),
        (rng_dependent(reference.cases), "random numbers", "the reference draws random numbers (KernelBench's "
                                                           "reference and candidate draw from one stream in turn)"),
        (reference.resident and _tf32_changes(reference), "reference tf32",
         "torch's TF32 defaults change the reference (not compared on the resident data path)"),
    ]
    return next(((why, reason) for hit, why, reason in causes if hit), None)


def _tf32_changes(reference: Reference) -> bool:
    return bool(((reference.cases[0].facts or {}).get("kernelbench") or {}).get("tf32_changes_reference"))


def task_trials(facts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The facts of the task plan's ordinary trials at the task's own values (what KernelBench's eval runs)."""
    return [f for f in facts if f.get("case", 0) == 0 and f.get("role", "task") == "task"
            and f.get("values", "task") == "task" and not f.get("strong")]


def _expected(reference: Reference) -> int:
    return sum(task_valued(t) for t in reference.cases[0].trials) if reference.cases else 0


def from_job(reference: Reference, result: JobResult, facts: Sequence[dict[str, Any]] | None,
             failure: Verdict | None, options: CheckOptions, tol: Tolerance) -> KernelBenchVerdict:
    """KernelBench's verdict from our candidate job (``facts``: the judged trials, None when not computed)."""
    sizes = plan_sizes(reference)
    if failure is not None and failure.category in UNJUDGED:
        return unjudged(f"not judged: {failure.category.value}", sizes)
    cause = _job_cause(reference, result, failure)
    if cause is not None:
        return pending(*cause, sizes)
    report = result.report or {}
    if facts is None:
        from pytest_kernelfalcon.checker.judge import candidate_facts

        try:
            facts = candidate_facts(reference, report, tol, options.precision)
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            return pending("no result", f"our candidate job's results do not pair up ({type(exc).__name__})", sizes)
    trials = task_trials(facts)
    error = report.get("error")
    if error and len(trials) < _expected(reference):  # it stopped inside the task plan: KernelBench's eval too
        detail = f"{error.get('category')}: {error.get('message')}"[:600]
        return KernelBenchVerdict(False, detail, "trials", len(trials), sizes, KB_POLICY)
    return judged(trials, sizes)


def _replayed_previous(trials: Sequence[dict[str, Any]], k: int) -> bool:
    before = trials[k - 1] if k else None
    return bool(trials[k].get("reuse") and before and trials[k]["digest"] == before["digest"]
                and trials[k]["ref_digest"] != before["ref_digest"])


def judged(trials: Sequence[dict[str, Any]], sizes: str) -> KernelBenchVerdict:
    """KernelBench's verdict over the task plan's trials (an address-reuse trial that replayed is left out)."""
    left = [t["seed"] for k, t in enumerate(trials) if _replayed_previous(trials, k)]
    used = [t for t in trials if t["seed"] not in left]
    note = (f"; seed {', '.join(map(str, left))} left out: with new values written into the previous trial's "
            "input memory it returned that trial's output (KernelBench's trials never reuse input memory)"
            if left else "")
    if not used:
        return unjudged("no trial at the task's own values ran", sizes)
    against = " (against the reference under torch's default TF32 settings)" if any(t.get("kb_tf32") for t in used) \
        else ""
    bad = next((t for t in used if t.get("kb")), None)
    if bad is not None:
        return KernelBenchVerdict(False, f"seed {bad['seed']}: {bad['kb']}{against}{note}", "trials", len(used),
                                  sizes, KB_POLICY)
    return KernelBenchVerdict(True, f"passed {len(used)} trial(s) at the task's own values{against}{note}",
                              "trials", len(used), sizes, KB_POLICY)


# -- the kernelbench job -----------------------------------------------------------------------------------
def completed(checker: Checker, verdict: Verdict, task: Path, candidate: Path,
              cancel: threading.Event | None) -> Verdict:
    """``verdict`` with its KernelBench-comparable verdict complete (the ``kernelbench`` job run where needed)
    and explained."""
    from pytest_kernelfalcon.checker.options import STATIC_REJECT

    kb = verdict.kernelbench
    if kb is None and verdict.category in STATIC_REJECT:
        kb = pending("nothing ran", "the static audit rejected it before it ran", "official")
    elif kb is None:
        kb = unjudged(f"not judged: {verdict.category.value if verdict.category else 'no candidate job'}")
    if needs_job(kb):
        kb = _by_job(checker, kb, task, candidate, cancel)
    return explain(dataclasses.replace(verdict, kernelbench=kb))


def _by_job(checker: Checker, kb: KernelBenchVerdict, task: Path, candidate: Path,
            cancel: threading.Event | None) -> KernelBenchVerdict:
    """Run the ``kernelbench`` job at the task plan of the (cached) reference and read its answer."""
    from pytest_kernelfalcon.checker.options import Reference

    try:
        source, task_source = candidate.read_text(), task.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return unjudged(f"not judged: {exc}")
    reference = checker.reference(task_source, cancel)
    if not isinstance(reference, Reference):
        return unjudged(f"not judged: the reference failed ({reference.category.value if reference.category else '?'})")
    result = checker.kernelbench_job(source, task_source, reference, cancel)
    return dataclasses.replace(kb, **job_answer(result), sizes=plan_sizes(reference))


def job_answer(result: JobResult) -> dict[str, Any]:
    """``passed``, ``detail``, ``trials`` of a finished ``kernelbench`` job (its process dying is a failure:
    KernelBench's eval runs in the candidate's process)."""
    from pytest_kernelfalcon.checker.judge import job_failure

    if result.cancelled:
        return {"passed": None, "detail": "cancelled"}
    failure = job_failure(result, "kernelbench eval")
    if failure is not None and failure.category in (Category.HARNESS_ERROR, Category.REFERENCE_ERROR):
        return {"passed": None, "detail": f"not judged: {failure.detail}"[:600]}
    if failure is not None:
        return {"passed": False, "detail": f"{failure.category.value if failure.category else '?'}: "
                                           f"{failure.detail}"[:600]}
    answer = (result.report or {}).get("kernelbench") or {}
    passed = answer.get("passed")
    return {"passed": passed if isinstance(passed, bool) else None, "detail": str(answer.get("detail", ""))[:600],
            "trials": int(answer.get("trials") or 0)}


# -- why the two differ ------------------------------------------------------------------------------------
def explain(verdict: Verdict) -> Verdict:
    """``verdict`` with ``kernelbench.why``/``reason`` saying why ours differs (empty where they agree)."""
    kb = verdict.kernelbench
    if kb is None or kb.passed is None:
        return verdict
    if kb.passed == verdict.passed:
        return dataclasses.replace(verdict, kernelbench=dataclasses.replace(kb, why="", reason=""))
    why, reason = _ours_failed(verdict) if kb.passed else _kernelbench_failed(verdict, kb)
    return dataclasses.replace(verdict, kernelbench=dataclasses.replace(kb, why=why, reason=reason))


SUFFIXES = (" [profile ", " [fuzz seed ", " [the reference draws", " [hybrid: ", "; precision: ")


def _head(text: str, limit: int = 300) -> str:
    """A verdict detail without the suffixes the judge appends (coverage, replay seed, notes), shortened."""
    for marker in SUFFIXES:
        text = text.split(marker, 1)[0]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _ours_failed(verdict: Verdict) -> tuple[str, str]:
    """Why we reject what KernelBench's eval passes: the audit, a drawn plan, precision, our tolerance."""
    category, detail = verdict.category, verdict.detail
    name = category.value if category else "?"
    if category in AUDIT:
        kind = "address reuse" if "address reuse" in detail and category == Category.RESULT_REUSE else "audit"
        return kind, f"{kind}: {name}: {_head(detail)}"
    if "; precision: " in detail:
        note = detail.split("; precision: ", 1)[1].split(" [profile ", 1)[0]
        return "precision", f"precision: {note} (first at {_where(detail)})"
    drawn = _drawn(detail)
    if drawn:
        return "drawn plan", f"drawn plan: {name} at {drawn}: {_head(detail)}"
    if "strengthened inputs" in detail:
        return "strengthened trials", f"strengthened trials (low-signal task): {name}: {_head(detail)}"
    if category == Category.NUMERIC_MISMATCH:
        tol = verdict.tolerance.policy if verdict.tolerance else "ours"
        return "tolerance", f"tolerance: {_head(detail)}: within KernelBench's atol=rtol=1e-2, not {tol}"
    return "trials", f"our trials: {name}: {_head(detail)}"


def _where(detail: str) -> str:
    """The context of a numeric failure's detail (seed, sizes, input shapes)."""
    return detail.split(": output ", 1)[0]


def _drawn(detail: str) -> str | None:
    """The drawn plan or value draw a failure's context names (``grow plan {'cols': 161}``), else None."""
    import re

    plan = re.search(r"sizes (\{[^}]*\}) \((sizes|grow|values) plan\)", detail)
    if plan:
        return f"the {plan.group(2)} plan {plan.group(1)}"
    values = re.search(r"values (large|negative|near_zero|mixed)", detail)
    return f"the value draw {values.group(1)}" if values else None


def _kernelbench_failed(verdict: Verdict, kb: KernelBenchVerdict) -> tuple[str, str]:
    """Why KernelBench's eval rejects what we accept: its TF32 reference, the weights, dtypes, its own trials."""
    if "torch's default TF32" in kb.detail:
        return "reference tf32", ("reference tf32: KernelBench's reference runs with torch's default TF32 settings "
                                  f"(cuDNN convolutions in TF32): {kb.detail}; ours (TF32 off) accepts the candidate")
    if kb.source == JOB and kb.why:
        return kb.why, f"{kb.why}: {kb.reason}; KernelBench's eval: {kb.detail}"
    if "did not match" in kb.detail:
        return "dtype", f"dtype: {kb.detail} (ours compares values, whatever the dtype)"
    return "trials", f"KernelBench's check: {kb.detail}"
