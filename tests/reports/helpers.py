"""Hand-made outcomes and reports shared by the report tests."""

from __future__ import annotations

from typing import Any

from pytest_kernelfalcon.core.outcome import TaskOutcome, Usage
from pytest_kernelfalcon.reports.report import build_report

META: dict[str, Any] = {
    "config": {"falcon_strategy": "pipeline", "falcon_dtype": "fp32", "falcon_shard": None, "falcon_report": None},
    "provider": "replay",
    "model": "claude-x",
    "source": "replay",
    "gpu": None,
    "prompt_hashes": {"fuse": "aa", "generate": "bb"},
    "versions": {"python": "3.11", "torch": "2.13.0", "triton": "3.9", "pytest": "9", "pytest_kernelfalcon": "0.1.0"},
}


def outcome(task_id: str, passed: bool, speedup: float | None = None, **kw: Any) -> TaskOutcome:
    """Return a TaskOutcome for ``task_id`` ("levelN/name"); failures default to check/numeric_mismatch."""
    level = task_id.split("/")[0]
    if not passed:
        kw.setdefault("stage", "check")
        kw.setdefault("category", "numeric_mismatch")
    kw.setdefault("usage", Usage(calls=2, input_tokens=100, output_tokens=50, cost_usd=0.01))
    kw.setdefault("wall_s", 1.5)
    return TaskOutcome(task_id=task_id, level=level, passed=passed, speedup_eager=speedup, **kw)


def many_outcomes(n: int = 12) -> list[TaskOutcome]:
    """Return ``n`` outcomes over two levels, every third failing, passed ones timed."""
    return [outcome(f"level{1 + i % 2}/{i}_task", i % 3 != 0, speedup=None if i % 3 == 0 else 0.5 + 0.25 * i,
                    seeds=(i, i + 1), shapes=({"N": 8 + i},))
            for i in range(n)]


def report_of(outcomes: list[TaskOutcome], **meta: Any) -> dict[str, Any]:
    """Return a report of ``outcomes`` with the shared META (overridden by ``meta``)."""
    return build_report(outcomes, {**META, **meta})
