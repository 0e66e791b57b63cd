"""The KernelBench-comparable side of a run report: its pass rate beside ours, hybrid passes, where they differ.

Each task carries what KernelBench's own eval says of its final candidate (``TaskOutcome.kernelbench``,
``checker/comparable.py``). A level's comparable pass rate counts the tasks that eval passes; a task
it could not judge (nothing of the candidate ran, or no final candidate) counts as not passed and is
counted apart. The CI gate and ``report compare`` read our pass rate only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_kernelfalcon.core.outcome import TaskOutcome

AGGREGATION = {
    "kernelbench.pass_rate": "tasks whose final candidate KernelBench's own eval passes (its tolerance "
                             "atol=rtol=1e-2, the task's own inputs and sizes, no audit) / tasks in the level",
    "hybrid": "passed tasks whose forward ran torch ops that --falcon-allow-torch accepted",
}


def _label(passed: bool | None) -> str:
    return "?" if passed is None else ("pass" if passed else "fail")


def kernelbench_aggregate(outcomes: Sequence[TaskOutcome]) -> dict[str, Any]:
    """The KernelBench-comparable numbers of one group of outcomes."""
    n = len(outcomes)
    passed = sum(o.kernelbench_passed for o in outcomes)
    unjudged = sum(o.kernelbench is None or o.kernelbench.passed is None for o in outcomes)
    differ = sum(o.kernelbench is not None and o.kernelbench.passed is not None and o.kernelbench.passed != o.passed
                 for o in outcomes)
    return {"passed": passed, "pass_rate": passed / n if n else 0.0, "not_judged": unjudged, "differ": differ}


def hybrid_count(outcomes: Sequence[TaskOutcome]) -> int:
    """Passed tasks that ran torch ops under a hybrid policy."""
    return sum(o.passed and bool(o.allowed_torch) for o in outcomes)


def comparable_rate(aggregate: Mapping[str, Any]) -> float | None:
    """A group's KernelBench-comparable pass rate, None in a report written before it existed."""
    kb = aggregate.get("kernelbench")
    return float(kb["pass_rate"]) if isinstance(kb, Mapping) and "pass_rate" in kb else None


def differing_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(task, KernelBench's verdict, ours, why) for every task where the two differ or KernelBench's is unknown."""
    rows = []
    for task in report["tasks"]:
        kb = task.get("kernelbench")
        if not isinstance(kb, Mapping):
            continue
        ours = "pass" if task["passed"] else str(task.get("category") or "fail")
        hybrid = f" (hybrid: {'; '.join(task['allowed_torch'])})" if task.get("allowed_torch") else ""
        if kb.get("passed") is None or bool(kb["passed"]) != bool(task["passed"]):
            rows.append((task["task_id"], _label(kb.get("passed")), ours + hybrid, str(kb.get("reason") or "")))
    return rows


def differing_table(report: Mapping[str, Any], tablefmt: str) -> str | None:
    """The table of tasks where KernelBench's eval says otherwise than ours (None when there is none)."""
    from tabulate import tabulate

    rows = differing_rows(report)
    if not rows:
        return None
    wrap = None if tablefmt == "github" else [None, None, None, 100]  # a Markdown cell stays on one line
    return tabulate(rows, headers=["task", "KernelBench's eval", "ours", "why ours differs"], tablefmt=tablefmt,
                    maxcolwidths=wrap)


def kernelbench_cell(task: Mapping[str, Any]) -> str:
    """A task's KernelBench-comparable verdict for the tasks table (``-`` where the report has none)."""
    kb = task.get("kernelbench")
    return _label(kb.get("passed")) if isinstance(kb, Mapping) else "-"
