"""The KernelBench-comparable verdict beside ours (``Verdict.kernelbench``), completed, and why the two differ.

What KernelBench's own eval (``core/kernelbench.py``) would say of the same candidate. The judge
computes it from our task plan's trials where they can tell (``checker/comparable_trials.py``).
Where they cannot, the ``kernelbench`` job replays KernelBench's procedure in a child
(``child/kernelbench.py``): nothing ran (a static-audit rejection: run only where candidates run as
their own uid, since the audit refused that code), the job timed out, the candidate changed its own
process (an in-process eval such as
KernelBench's can be fooled), its own seeded weights differ from the reference's (KernelBench
copies no state), the reference draws random numbers, side-stream work (KernelBench synchronizes
the device before it compares), torch's TF32 defaults change a resident reference or one that the
candidate's own torch ops follow. A candidate whose process died (a crash) is never run again: KernelBench's
eval, in that process, dies with it.

``explain`` then names why ours differs: the audit (its finding, the op and source line), a drawn
plan (which one), precision (the measured error against the reference's own), our tighter
tolerance, the reference's TF32 setting, the weights, KernelBench's own trials.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_kernelfalcon.checker.comparable_trials import (
    AUDIT,
    JOB,
    needs_job,
    pending,
    plan_sizes,
    unjudged,
)
from pytest_kernelfalcon.checker.options import Reference
from pytest_kernelfalcon.core.verdict import Category, KernelBenchVerdict, Verdict

if TYPE_CHECKING:
    from pytest_kernelfalcon.executor.base import JobResult


class Checker(Protocol):
    """What completing a verdict needs of ``checker.Checker`` (kept apart: the checker imports this module)."""

    executor: Any

    def reference(self, task_source: str, cancel: threading.Event | None = None) -> Reference | Verdict: ...

    def kernelbench_job(self, source: str, task_source: str, reference: Reference,
                        cancel: threading.Event | None = None) -> JobResult: ...


# -- the kernelbench job -----------------------------------------------------------------------------------
def completed(checker: Checker, verdict: Verdict, task: Path, candidate: Path,
              cancel: threading.Event | None) -> Verdict:
    """``verdict`` with its KernelBench-comparable verdict complete (the ``kernelbench`` job run where needed)
    and explained."""
    from pytest_kernelfalcon.checker.options import STATIC_REJECT

    kb = verdict.kernelbench
    if kb is None and verdict.category in STATIC_REJECT:
        kb = _static(checker)
    elif kb is None:
        kb = unjudged(f"not judged: {verdict.category.value if verdict.category else 'no candidate job'}")
    if needs_job(kb):
        kb = _by_job(checker, kb, task, candidate, cancel)
    return explain(dataclasses.replace(verdict, kernelbench=kb))


def _static(checker: Checker) -> KernelBenchVerdict:
    """A static-audit rejection: the ``kernelbench`` job runs what the audit refused only where candidates run as
    their own uid (they cannot signal the harness's processes); elsewhere the verdict says it was not run."""
    from pytest_kernelfalcon.checker.refcache import candidates_own_uid

    if candidates_own_uid(checker.executor):
        return pending("nothing ran", "the static audit rejected it before it ran", {})
    return unjudged("not run: the static audit rejected it, and code it refused runs again only where candidates "
                    "run as their own uid (as root); KernelBench's eval would run it")


def _by_job(checker: Checker, kb: KernelBenchVerdict, task: Path, candidate: Path,
            cancel: threading.Event | None) -> KernelBenchVerdict:
    """Run the ``kernelbench`` job at the task plan of the (cached) reference and read its answer."""
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
    name, head = category.value if category else "?", _head(verdict.detail)
    if category in AUDIT:
        kind = "address reuse" if "(address reuse)" in head and category == Category.RESULT_REUSE else "audit"
        return kind, f"{kind}: {name}: {head}"
    if category == Category.TIMEOUT:
        return "time limit", (f"time limit: {head} over all our plans and trials (KernelBench's eval runs its 5 "
                              "trials at the task's sizes, with no limit of its own)")
    if "; precision: " in detail:
        note = detail.split("; precision: ", 1)[1].split(" [profile ", 1)[0]
        return "precision", f"precision: {note} (first at {_where(detail)})"
    drawn = _drawn(head)
    if drawn:
        return "drawn plan", f"drawn plan: {name} at {drawn}: {head}"
    if "strengthened inputs" in head:
        return "strengthened trials", f"strengthened trials (low-signal task): {name}: {head}"
    if category == Category.NUMERIC_MISMATCH:
        tol = verdict.tolerance.policy if verdict.tolerance else "ours"
        return "tolerance", f"tolerance: {head}: within KernelBench's atol=rtol=1e-2, not {tol}"
    return "trials", f"our trials: {name}: {head}"


def _where(detail: str) -> str:
    """The context of a numeric failure's detail (seed, sizes, input shapes)."""
    return detail.split(": output ", 1)[0]


def _drawn(head: str) -> str | None:
    """The drawn plan or value draw a failure's context names (``grow plan {'cols': 161}``), else None."""
    import re

    plan = re.search(r"sizes (\{[^}]*\}) \((sizes|grow|values) plan\)", head)
    if plan:
        return f"the {plan.group(2)} plan {plan.group(1)}"
    values = re.search(r"values (large|negative|near_zero|mixed)", head)
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
