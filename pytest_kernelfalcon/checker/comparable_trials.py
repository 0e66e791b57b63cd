"""The KernelBench-comparable verdict from our own candidate job: its task plan's trials, judged KernelBench's way.

Our task plan's trials at the task's own values (official sizes on the GPU, the scaled pick on the
CPU) are what KernelBench's eval runs, but for the seeds: judged as it judges (output count, shapes
and dtypes, ``torch.allclose`` at atol=rtol=1e-2, no audit; ``core/kernelbench.py``), against the
reference as it computes it where that differs (torch's default TF32 settings), leaving out an
address-reuse trial that returned the previous trial's output (KernelBench's trials never reuse input
memory). Where they cannot tell, the verdict waits for the ``kernelbench`` job (``checker/comparable.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.core.kernelbench import KB_POLICY
from pytest_kernelfalcon.core.protocol import task_valued
from pytest_kernelfalcon.core.verdict import Category, KernelBenchVerdict, Verdict

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.options import Reference
    from pytest_kernelfalcon.executor.base import JobResult

JOB = "kernelbench job"
AUDIT = frozenset({Category.TORCH_COMPUTE, Category.NO_TRITON_LAUNCH, Category.SIDE_STREAM, Category.CHECKER_TAMPER,
                   Category.FALLBACK, Category.REFERENCE_REUSE, Category.RESULT_REUSE, Category.INPUT_MUTATION})
UNJUDGED = frozenset({Category.CANCELLED, Category.HARNESS_ERROR, Category.REFERENCE_ERROR,
                      Category.MISSING_CANDIDATE})


def plan_sizes(reference: Reference) -> dict[str, int]:
    """The task plan's size constants (empty: official sizes)."""
    overrides = reference.cases[0].plan.get("overrides") if reference.cases else None
    return {str(k): int(v) for k, v in dict(overrides or {}).items()}


def unjudged(why: str, sizes: dict[str, int] | None = None) -> KernelBenchVerdict:
    """A KernelBench-comparable verdict that could not be told (nothing of the candidate ran to an answer)."""
    return KernelBenchVerdict(None, "not judged", "none", 0, sizes or {}, KB_POLICY, "not judged", why)


def pending(why: str, reason: str, sizes: dict[str, int]) -> KernelBenchVerdict:
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
             failure: Verdict | None) -> KernelBenchVerdict:
    """KernelBench's verdict from our candidate job (``facts``: its trials' facts, None where they do not pair up
    with the reference's)."""
    sizes = plan_sizes(reference)
    if failure is not None and failure.category in UNJUDGED:
        return unjudged(f"not judged: {failure.category.value}", sizes)
    report = result.report or {}
    if failure is not None and failure.category == Category.CRASH and not report.get("error"):
        # the candidate's process died: KernelBench's eval runs in that process and dies with it (never re-run:
        # a process that kills its parent is contained by the comparer on the resident path only)
        return KernelBenchVerdict(False, f"its process died: {failure.detail}"[:600], "trials", 0, sizes, KB_POLICY)
    cause = _job_cause(reference, result, failure)
    if cause is not None:
        return pending(*cause, sizes)
    if facts is None:
        return pending("no result", "our candidate job's results do not pair up with the reference's", sizes)
    trials = task_trials(facts)
    if any(t.get("kb_tf32") for t in trials) and (report.get("audit") or {}).get("forbidden"):
        return pending("reference tf32", "torch's TF32 defaults change the reference, and forward runs torch "
                                         "compute that they change alike in KernelBench's eval", sizes)
    error = report.get("error")
    if error and len(trials) < _expected(reference):  # it stopped inside the task plan: KernelBench's eval too
        detail = f"{error.get('category')}: {error.get('message')}"[:600]
        return KernelBenchVerdict(False, detail, "trials", len(trials), sizes, KB_POLICY)
    return judged(trials, sizes)


def _replayed_previous(trials: Sequence[dict[str, Any]], k: int) -> bool:
    before = trials[k - 1] if k else None
    return bool(trials[k].get("reuse") and before and trials[k]["digest"] == before["digest"]
                and trials[k]["ref_digest"] != before["ref_digest"])


def judged(trials: Sequence[dict[str, Any]], sizes: dict[str, int]) -> KernelBenchVerdict:
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
