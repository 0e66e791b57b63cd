"""Structural checks of a loaded report: every field the commands and the gate read, with its type.

A malformed report raises ``ReportError`` with one line naming the first bad field, so
``kernelfalcon report`` exits 2 on it and exit 1 keeps meaning "regression".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TASK_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("task_id", str), ("level", str), ("passed", bool),
)
AGGREGATE_FIELDS = ("tasks", "passed", "failed", "pass_rate")


def report_problem(data: Mapping[str, Any]) -> str | None:
    """Return the first structural problem of a report (one line), or ``None`` when it is well formed."""
    if not isinstance(data.get("meta"), dict):
        return f"'meta' must be an object, got {_kind(data.get('meta'))}"
    for key in ("levels", "total"):
        if not isinstance(data.get(key), dict):
            return f"{key!r} must be an object, got {_kind(data.get(key))}"
    if not isinstance(data.get("tasks"), list):
        return f"'tasks' must be a list, got {_kind(data.get('tasks'))}"
    return _aggregates_problem(data) or _tasks_problem(data["tasks"])


def _aggregates_problem(data: Mapping[str, Any]) -> str | None:
    groups = [(f"levels.{name}", agg) for name, agg in data["levels"].items()] + [("total", data["total"])]
    for where, agg in groups:
        if not isinstance(agg, dict):
            return f"{where} must be an object, got {_kind(agg)}"
        missing = [k for k in AGGREGATE_FIELDS if not isinstance(agg.get(k), (int, float))]
        if missing:
            return f"{where} lacks a number for {', '.join(missing)}"
    return None


def _tasks_problem(tasks: list[Any]) -> str | None:
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            return f"tasks[{index}] must be an object, got {_kind(task)}"
        for key, kind in TASK_FIELDS:
            if not isinstance(task.get(key), kind):
                name = task.get("task_id") if isinstance(task.get("task_id"), str) else f"tasks[{index}]"
                return f"task {name}: {key!r} must be {kind.__name__ if isinstance(kind, type) else kind}, " \
                       f"got {_kind(task.get(key))}"
    return None


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"
