"""The benchmark-wide self-test: does the checker judge every task of a task set right?

For each task two candidates whose verdicts are known in advance:

- ``own``: the task's ``Model`` judged as its own candidate with the audit off. It must pass.
- ``torch_copy``: the task's source with ``Model`` renamed ``ModelNew``, judged with the full
  audit. It computes with torch and launches no Triton kernel, so it must be rejected as
  ``torch_compute`` or ``no_triton_launch``.

Any other verdict is a harness defect. A task that cannot run on this machine (a package it
imports is missing, the device runs out of memory) is listed apart with its reason and counts
as neither a pass nor a defect.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.core.facts import TaskFacts, summarize
from pytest_kernelfalcon.core.verdict import Category, Verdict

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.options import CheckOptions
    from pytest_kernelfalcon.core.tasks import TaskFile

COPY_REJECTED = frozenset({Category.TORCH_COMPUTE, Category.NO_TRITON_LAUNCH})
CANNOT_RUN = re.compile(r"cannot run here|out of memory|OutOfMemoryError|No module named", re.IGNORECASE)
OUT_OF_MEMORY = re.compile(r"out of memory|OutOfMemoryError|MemoryError|Cannot allocate memory|disk ran out of space|"
                           r"No space left on device", re.IGNORECASE)
MODEL_NAME = re.compile(r"\bModel\b")


@dataclass(frozen=True)
class SelftestRow:
    """What the self-test found for one task."""

    task: str
    status: str  # "ok" | "defect" | "cannot_run" | "not_run" (the time budget was spent first)
    own: str  # "pass" or the own-candidate verdict's category
    torch_copy: str  # the torch copy's category ("" when not judged)
    detail: str
    wall_s: float
    facts: TaskFacts | None = None  # from the own candidate's reference run (None when it did not pass)

    def to_json(self) -> dict[str, Any]:
        """Return the row as a JSON-ready dict."""
        return {"task": self.task, "status": self.status, "own": self.own, "torch_copy": self.torch_copy,
                "detail": self.detail, "wall_s": round(self.wall_s, 3),
                "facts": self.facts.to_json() if self.facts is not None else None}


def torch_copy_source(task_source: str) -> str:
    """Return the task's source with its ``Model`` class renamed ``ModelNew`` (references included)."""
    return MODEL_NAME.sub("ModelNew", task_source)


def _category(verdict: Verdict) -> str:
    return "pass" if verdict.passed else (verdict.category.value if verdict.category else "?")


def _cannot_run(verdict: Verdict) -> bool:
    harness = verdict.category in (Category.HARNESS_ERROR, Category.REFERENCE_ERROR)
    return harness and bool(CANNOT_RUN.search(verdict.detail))


def judge_task(task: TaskFile, plain: Any, audited: Any) -> SelftestRow:
    """Judge ``task``'s two known candidates with ``plain`` (audit off, entry Model) and ``audited``."""
    start = time.perf_counter()
    own = plain.verify(task.path, task.path, comparable=False)  # our checker's own judgement is under test
    if not own.passed:
        status = "cannot_run" if _cannot_run(own) else "defect"
        return SelftestRow(task.id, status, _category(own), "", own.detail, time.perf_counter() - start)
    facts = _facts(task, plain)
    copy = _judge_copy(task.path, audited)
    status = "ok" if copy.category in COPY_REJECTED else "defect"
    detail = "" if status == "ok" else f"torch copy: {copy.detail or 'accepted'}"
    return SelftestRow(task.id, status, "pass", _category(copy), detail, time.perf_counter() - start, facts)


def _facts(task: TaskFile, plain: Any) -> TaskFacts | None:
    """The task's facts from the reference run the own candidate was judged against (cached: no rerun)."""
    from pytest_kernelfalcon.checker.options import Reference

    reference = plain.reference(task.path.read_text(encoding="utf-8"))
    return summarize(reference.cases, reference.probes) if isinstance(reference, Reference) else None


def _judge_copy(task: Path, audited: Any) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="kf-selftest-") as tmp:
        copy = Path(tmp) / f"{task.stem}_torch_copy.py"
        copy.write_text(torch_copy_source(task.read_text(encoding="utf-8")))
        verdict: Verdict = audited.verify(task, copy, comparable=False)
        return verdict


def make_executor(kind: str, jobs: int, device: str) -> Any:
    """``warm``: a pool of ``jobs`` warm workers (as the pytest plugin uses); ``cold``: a fresh process per job."""
    from pytest_kernelfalcon.executor.cold import ColdExecutor

    if kind == "cold":
        return ColdExecutor()
    from pytest_kernelfalcon.executor.warm import WarmExecutor

    return WarmExecutor(pool_size=max(jobs, 1), device=device)


def _checkers(options: CheckOptions, executor: Any) -> tuple[Any, Any]:
    """The own-candidate checker (audit off, entry Model) and the torch-copy one, sharing one reference cache."""
    from dataclasses import replace

    from pytest_kernelfalcon.checker.checker import Checker

    plain = Checker(replace(options, audit=False, entry="Model"), executor)
    audited = Checker(replace(options, audit=True, entry="ModelNew"), executor)
    audited._references = plain._references  # the reference does not depend on the audit: one run per task
    return plain, audited


def out_of_memory(row: SelftestRow) -> bool:
    """Whether a row failed because the device or the machine ran out of memory."""
    return row.status != "ok" and bool(OUT_OF_MEMORY.search(row.detail))


def _alone(task: TaskFile, options: CheckOptions, executor: Any, first: SelftestRow) -> SelftestRow:
    """Judge a task that ran out of memory beside others again, alone (fresh cache); still out: cannot run."""
    plain, audited = _checkers(options, executor)
    row = judge_task(task, plain, audited)
    if out_of_memory(row):
        return replace_row(row, status="cannot_run", detail=f"out of memory even alone: {row.detail}")
    note = f"out of memory beside other tasks, judged again alone: {first.detail[:200]}"
    return replace_row(row, detail=f"{row.detail} [{note}]" if row.detail else f"[{note}]")


def replace_row(row: SelftestRow, **changes: Any) -> SelftestRow:
    """A copy of ``row`` with ``changes``."""
    from dataclasses import replace

    return replace(row, **changes)


def skipped_row(task: TaskFile, why: str) -> SelftestRow:
    """A task the run did not reach (its time budget was spent): neither passed nor a defect."""
    return SelftestRow(task.id, "not_run", "", "", why, 0.0)


def run_selftest(tasks: Iterable[TaskFile], options: CheckOptions, jobs: int = 1,
                 progress: Callable[[int, int, SelftestRow], None] | None = None,
                 executor: str = "cold", budget_s: float | None = None) -> list[SelftestRow]:
    """Self-test every task (``jobs`` at a time); rows in task order; ``progress`` sees each as it ends.

    A task that runs out of memory while others run beside it is judged again alone at the end.
    With ``budget_s``, no task starts after that many seconds; those left are ``not_run``.
    """
    from pytest_kernelfalcon.core.gpus import resolve_device

    todo = list(tasks)
    started = time.monotonic()
    jobs_executor = make_executor(executor, jobs, resolve_device(options.device))
    plain, audited = _checkers(options, jobs_executor)
    rows: dict[int, SelftestRow] = {}
    crowded: dict[int, SelftestRow] = {}  # out of memory beside other tasks
    lock = threading.Lock()

    def report(index: int, row: SelftestRow) -> None:
        with lock:
            rows[index] = row
            if progress is not None:
                progress(len(rows), len(todo), row)

    def one(index: int) -> None:
        if budget_s is not None and time.monotonic() - started > budget_s:
            report(index, skipped_row(todo[index], f"not started: the run's time budget ({budget_s:g} s) was spent"))
            return
        row = judge_task(todo[index], plain, audited)
        if jobs > 1 and out_of_memory(row):
            crowded[index] = row  # judged again alone below
            return
        report(index, row)

    try:
        with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
            list(pool.map(one, range(len(todo))))
        for index, first in sorted(crowded.items()):
            report(index, _alone(todo[index], options, jobs_executor, first))
    finally:
        jobs_executor.close()
    return [rows[i] for i in range(len(todo))]


def tally(rows: Iterable[SelftestRow]) -> dict[str, int]:
    """Return counts: tasks, ok, defect, cannot_run, own_passed, copy_rejected, and tasks with each fact."""
    rows = list(rows)
    facts = [r.facts for r in rows if r.facts is not None]
    return {"tasks": len(rows), "ok": sum(r.status == "ok" for r in rows),
            "defect": sum(r.status == "defect" for r in rows),
            "cannot_run": sum(r.status == "cannot_run" for r in rows),
            "not_run": sum(r.status == "not_run" for r in rows),
            "own_passed": sum(r.own == "pass" for r in rows),
            "copy_rejected": sum(r.torch_copy in {c.value for c in COPY_REJECTED} for r in rows),
            "low_signal": sum(bool(f.low_signal) for f in facts),
            "degenerate": sum(bool(f.degenerate) for f in facts),
            "nondeterministic": sum(bool(f.nondeterministic) for f in facts),
            "int_or_bool_inputs": sum(bool({"int", "bool"} & set(f.input_kinds)) for f in facts)}
