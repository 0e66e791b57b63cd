"""CI gating and report comparison: regressions against a baseline, a minimum pass rate.

Both read our verdicts only (``passed``); the KernelBench-comparable pass rate is shown beside, never
gated. Only tasks present in both reports are compared, so a shard's report can be
gated against the baseline of a whole run: a task absent from the current run
is listed in ``Comparison.only_old``, never counted as a regression.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_kernelfalcon.reports.comparable import comparable_rate

SpeedChange = tuple[str, float, float]  # (task id, old speedup, new speedup)


@dataclass(frozen=True)
class GateResult:
    """Whether a run passes its CI gate, and why not."""

    passed: bool
    regressions: tuple[str, ...]  # passed in the baseline, fail now
    pass_rate: float
    fail_under: float | None
    reasons: tuple[str, ...]
    prompts_changed: tuple[str, ...]  # template names whose hash differs from the baseline's
    new_failures: tuple[str, ...] = ()  # not in the baseline, fail now
    newly_passing: tuple[str, ...] = ()  # failed in the baseline, pass now
    known: tuple[str, ...] = ()  # failed in the baseline, fail again (do not fail the gate)

    def summary(self) -> str:
        """Return the lines the terminal summary prints for this gate."""
        lines = [f"falcon gate: {'passed' if self.passed else 'FAILED'} (pass rate {100 * self.pass_rate:.1f}%)"]
        lines += [f"  {reason}" for reason in self.reasons]
        lines += [f"  regression: {task_id}" for task_id in self.regressions]
        lines += [f"  newly failing (not in the baseline): {task_id}" for task_id in self.new_failures]
        lines += [f"  newly passing: {task_id}" for task_id in self.newly_passing]
        if self.known:
            lines.append(f"  known failures (failed in the baseline too): {len(self.known)}")
        if self.prompts_changed:
            lines.append(f"  prompts changed since the baseline: {', '.join(self.prompts_changed)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    """Task-by-task differences between an old and a new report."""

    newly_failing: tuple[str, ...]
    newly_passing: tuple[str, ...]
    only_old: tuple[str, ...]
    only_new: tuple[str, ...]
    faster: tuple[SpeedChange, ...]
    slower: tuple[SpeedChange, ...]
    prompts_changed: tuple[str, ...]
    pass_rates: tuple[float, float] = (0.0, 0.0)  # ours, old and new: what the gate reads
    comparable_rates: tuple[float | None, float | None] = (None, None)  # KernelBench-comparable: shown, never gated


def parse_rate(text: str | float) -> float:
    """Return a pass rate in [0, 1] from ``0.8``, ``"0.8"`` or ``"80%"``; raise ``ValueError``."""
    raw = str(text).strip()
    try:
        rate = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"pass rate must be a fraction (0.8) or a percentage (80%); got {text!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"pass rate must lie between 0 and 1 (0% and 100%); got {text!r}")
    return rate


def task_status(report: Mapping[str, Any]) -> dict[str, bool]:
    """Return ``{task id: passed}`` for every task of ``report``."""
    return {t["task_id"]: bool(t["passed"]) for t in report["tasks"]}


def changed_prompts(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the template names added, removed or changed between two reports' prompt hashes."""
    before = old["meta"].get("prompt_hashes") or {}
    after = new["meta"].get("prompt_hashes") or {}
    return tuple(sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n)))


def baseline_changes(baseline: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Return the task ids by change against ``baseline``: regressions, new failures, newly passing, known."""
    before, after = task_status(baseline), task_status(report)
    failing = sorted(t for t, ok in after.items() if not ok)
    return {
        "regressions": tuple(t for t in failing if before.get(t)),
        "new_failures": tuple(t for t in failing if t not in before),
        "known": tuple(t for t in failing if t in before and not before[t]),
        "newly_passing": tuple(sorted(t for t, ok in after.items() if ok and t in before and not before[t])),
    }


def evaluate_gate(
    report: Mapping[str, Any], baseline: Mapping[str, Any] | None, fail_under: float | None
) -> GateResult:
    """Return the gate's judgement: regressions and new failures against a baseline, a minimum pass rate."""
    pass_rate = float(report["total"]["pass_rate"])
    reasons: list[str] = []
    changes: dict[str, tuple[str, ...]] = {}
    prompts: tuple[str, ...] = ()
    if baseline is not None:
        changes = baseline_changes(baseline, report)
        prompts = changed_prompts(baseline, report)
        if changes["regressions"]:
            reasons.append(f"{len(changes['regressions'])} task(s) passed in the baseline and fail now")
        if changes["new_failures"]:
            reasons.append(f"{len(changes['new_failures'])} task(s) not in the baseline fail")
    if fail_under is not None and pass_rate < fail_under:
        reasons.append(f"pass rate {100 * pass_rate:.1f}% is under the required {100 * fail_under:.1f}%")
    return GateResult(not reasons, changes.get("regressions", ()), pass_rate, fail_under, tuple(reasons), prompts,
                      changes.get("new_failures", ()), changes.get("newly_passing", ()), changes.get("known", ()))


def _speedups(report: Mapping[str, Any]) -> dict[str, float]:
    """Return ``{task id: eager speedup}`` for passed, timed tasks."""
    return {t["task_id"]: t["speedup_eager"] for t in report["tasks"]
            if t["passed"] and t.get("speedup_eager") is not None}


def compare_reports(old: Mapping[str, Any], new: Mapping[str, Any], threshold: float = 0.1) -> Comparison:
    """Return the task-by-task differences; a speed change counts beyond a ``threshold`` ratio."""
    before, after = task_status(old), task_status(new)
    both = sorted(set(before) & set(after))
    old_speed, new_speed = _speedups(old), _speedups(new)
    changes = [(t, old_speed[t], new_speed[t]) for t in both if t in old_speed and t in new_speed]
    return Comparison(
        newly_failing=tuple(t for t in both if before[t] and not after[t]),
        newly_passing=tuple(t for t in both if after[t] and not before[t]),
        only_old=tuple(sorted(set(before) - set(after))),
        only_new=tuple(sorted(set(after) - set(before))),
        faster=tuple(c for c in changes if c[2] > c[1] * (1 + threshold)),
        slower=tuple(c for c in changes if c[2] * (1 + threshold) < c[1]),
        prompts_changed=changed_prompts(old, new),
        pass_rates=(float(old["total"]["pass_rate"]), float(new["total"]["pass_rate"])),
        comparable_rates=(comparable_rate(old["total"]), comparable_rate(new["total"])),
    )
