"""Both pass rates per level (KernelBench-comparable and ours), hybrid passes, and a gate that reads ours only."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_kernelfalcon.core.outcome import TaskOutcome
from pytest_kernelfalcon.core.verdict import KernelBenchVerdict
from pytest_kernelfalcon.reports.gate import evaluate_gate
from pytest_kernelfalcon.reports.report import (
    load_report,
    markdown_summary,
    outcomes_of,
    summary_tables,
    write_report,
)

from .helpers import outcome, report_of
from .test_cli_report import kf

AUDIT = "audit: torch_compute: aten.convolution.default x3 at k.py:12"


def kb(passed: bool | None, reason: str = "") -> KernelBenchVerdict:
    return KernelBenchVerdict(passed, "passed 3 trial(s)" if passed else "seed 42: output mismatch", "trials", 3,
                              why=reason.split(":", 1)[0], reason=reason)


def outcomes() -> list[TaskOutcome]:
    return [
        outcome("level1/1_same", True, kernelbench=kb(True)),
        outcome("level1/2_hybrid", False, category="torch_compute", kernelbench=kb(True, AUDIT)),
        outcome("level1/3_tf32", True, kernelbench=kb(False, "reference tf32: cuDNN convolutions in TF32")),
        outcome("level2/4_allowed", True, kernelbench=kb(True), allowed_torch=("aten.convolution.default x3 at k.py:12",)),
        outcome("level2/5_unjudged", False, category="harness_error", kernelbench=kb(None, "not judged: harness")),
        outcome("level2/6_no_final", False, stage="generate"),
    ]


def test_aggregates_give_both_rates_per_level_and_count_hybrids() -> None:
    report = report_of(outcomes())
    one, two = report["levels"]["level1"], report["levels"]["level2"]
    assert (one["pass_rate"], one["kernelbench"]["pass_rate"]) == (2 / 3, 2 / 3)
    assert one["kernelbench"]["differ"] == 2 and one["kernelbench"]["not_judged"] == 0
    assert (two["pass_rate"], two["kernelbench"]["pass_rate"]) == (1 / 3, 1 / 3)
    assert two["kernelbench"]["not_judged"] == 2 and two["hybrid"] == 1 and report["total"]["hybrid"] == 1
    assert report["total"]["kernelbench"]["passed"] == 3 and "kernelbench.pass_rate" in report["aggregation"]


def test_tables_and_markdown_show_the_comparable_rate_and_why_tasks_differ() -> None:
    report = report_of(outcomes(), config={"falcon_precision": "tf32", "falcon_allow_torch": ["convolution"]})
    text = summary_tables(report)
    assert "pass rate (ours)" in text and "KernelBench-comparable" in text and "66.7%" in text
    assert "level1/2_hybrid" in text and "aten.convolution.default x3 at k.py:12" in text
    assert "level1/3_tf32" in text and "reference tf32" in text and "level1/1_same" not in text
    markdown = markdown_summary(report)
    assert "- policy: precision tf32, torch allowed: convolution" in markdown
    assert re.search(r"\| `level2/4_allowed` +\| passed \(hybrid\) +\| - +\| pass +\|", markdown), markdown


def test_the_kernelbench_verdict_survives_write_load_and_merge(tmp_path: Path) -> None:
    write_report(tmp_path / "r.json", report_of(outcomes()))
    loaded = outcomes_of(load_report(tmp_path / "r.json"))
    assert loaded == sorted(outcomes(), key=lambda o: o.task_id)
    assert [o.kernelbench_passed for o in loaded] == [True, True, False, True, False, False]


def test_the_gate_and_compare_read_our_verdict_only(tmp_path: Path) -> None:
    old = [outcome("level1/a", True, kernelbench=kb(True)), outcome("level1/b", False, kernelbench=kb(True, AUDIT))]
    kb_drops = [outcome("level1/a", True, kernelbench=kb(False, "reference tf32: x")),
                outcome("level1/b", False, kernelbench=kb(False))]
    ours_drops = [outcome("level1/a", False, kernelbench=kb(True, AUDIT)), outcome("level1/b", False,
                                                                                  kernelbench=kb(True, AUDIT))]
    for name, group in (("old", old), ("kb_drops", kb_drops), ("ours_drops", ours_drops)):
        write_report(tmp_path / f"{name}.json", report_of(group))
    assert evaluate_gate(report_of(kb_drops), report_of(old), 0.5).passed
    assert not evaluate_gate(report_of(ours_drops), report_of(old), None).passed
    quiet = kf("compare", tmp_path / "old.json", tmp_path / "kb_drops.json")
    assert quiet.returncode == 0, quiet.stdout
    assert "pass rate (ours, gated): 50.0% -> 50.0%; KernelBench-comparable (not gated): 100.0% -> 0.0%" in quiet.stdout
    loud = kf("compare", tmp_path / "old.json", tmp_path / "ours_drops.json")
    assert loud.returncode == 1 and "newly failing: level1/a" in loud.stdout


def test_show_prints_both_rates_and_the_differences(tmp_path: Path) -> None:
    write_report(tmp_path / "r.json", report_of(outcomes()))
    done = kf("show", tmp_path / "r.json")
    assert done.returncode == 0, done.stderr
    assert "KernelBench-comparable" in done.stdout and "why ours differs" in done.stdout
    assert "level1/2_hybrid" in done.stdout and "not judged: harness" in done.stdout


def test_a_report_written_before_the_comparable_rate_still_shows(tmp_path: Path) -> None:
    report = report_of([outcome("level1/a", True)])
    for group in (*report["levels"].values(), report["total"]):
        del group["kernelbench"], group["hybrid"]
    for task in report["tasks"]:
        del task["kernelbench"], task["allowed_torch"]
    write_report(tmp_path / "old.json", report)
    done = kf("show", tmp_path / "old.json")
    assert done.returncode == 0 and "KernelBench-comparable" in done.stdout, done.stderr
