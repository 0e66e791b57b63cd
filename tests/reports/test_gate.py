"""CI gating against a baseline and a minimum pass rate; task-by-task comparison."""

from __future__ import annotations

import pytest

from pytest_kernelfalcon.reports.gate import compare_reports, evaluate_gate, parse_rate

from .helpers import outcome, report_of

BASE = [outcome("level1/a", True, 1.0), outcome("level1/b", True, 2.0), outcome("level1/c", False)]


def test_a_regression_fails_the_gate() -> None:
    now = report_of([outcome("level1/a", True, 1.0), outcome("level1/b", False), outcome("level1/c", False)])
    gate = evaluate_gate(now, report_of(BASE), None)
    assert not gate.passed
    assert gate.regressions == ("level1/b",)
    assert "level1/b" in gate.summary() and "FAILED" in gate.summary()


def test_an_improvement_passes_the_gate() -> None:
    now = report_of([outcome("level1/a", True), outcome("level1/b", True), outcome("level1/c", True)])
    gate = evaluate_gate(now, report_of(BASE), None)
    assert gate.passed and gate.regressions == () and gate.reasons == ()
    assert gate.pass_rate == 1.0


def test_a_task_missing_from_a_shard_is_not_a_regression() -> None:
    gate = evaluate_gate(report_of([outcome("level1/a", True)]), report_of(BASE), None)
    assert gate.passed


def test_fail_under() -> None:
    report = report_of(BASE)  # 2 of 3 pass
    assert evaluate_gate(report, None, 0.6).passed
    assert evaluate_gate(report, None, 2 / 3).passed
    low = evaluate_gate(report, None, 0.7)
    assert not low.passed and "66.7% is under the required 70.0%" in low.reasons[0]


def test_both_conditions_are_reported() -> None:
    now = report_of([outcome("level1/a", False), outcome("level1/b", False), outcome("level1/c", False)])
    gate = evaluate_gate(now, report_of(BASE), 0.5)
    assert len(gate.reasons) == 2 and gate.regressions == ("level1/a", "level1/b")


def test_prompts_changed_by_template_name() -> None:
    now = report_of(BASE, prompt_hashes={"fuse": "aa", "generate": "CHANGED", "compose": "new"})
    gate = evaluate_gate(now, report_of(BASE), None)
    assert gate.passed
    assert gate.prompts_changed == ("compose", "generate")
    assert "prompts changed since the baseline: compose, generate" in gate.summary()


@pytest.mark.parametrize(("text", "rate"), [("0.8", 0.8), ("80%", 0.8), (" 100% ", 1.0), (0, 0.0)])
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["80", "-0.1", "abc", "", "1.5"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="pass rate"):
        parse_rate(text)


def test_compare_reports_task_by_task() -> None:
    old = report_of([*BASE, outcome("level2/gone", True)])
    new = report_of([outcome("level1/a", True, 1.5), outcome("level1/b", True, 1.9),
                     outcome("level1/c", True, 1.0), outcome("level2/new", False)])
    diff = compare_reports(old, new, threshold=0.1)
    assert diff.newly_failing == () and diff.newly_passing == ("level1/c",)
    assert diff.only_old == ("level2/gone",) and diff.only_new == ("level2/new",)
    assert diff.faster == (("level1/a", 1.0, 1.5),)
    assert diff.slower == ()  # 2.0 -> 1.9 is within 10%
    assert compare_reports(old, new, threshold=0.01).slower == (("level1/b", 2.0, 1.9),)
