"""The JSON report: round trip, Markdown, schema checks, and the fast_p / geomean arithmetic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_kernelfalcon.core.outcome import Usage
from pytest_kernelfalcon.reports.report import (
    PLOT_SKIPPED,
    SCHEMA,
    ReportError,
    build_report,
    geomean,
    load_report,
    outcomes_of,
    plot_note,
    summary_tables,
    write_report,
)

from .helpers import many_outcomes, outcome, report_of


def test_round_trip_build_write_load(tmp_path: Path) -> None:
    report = report_of(many_outcomes())
    write_report(tmp_path / "r.json", report)
    loaded = load_report(tmp_path / "r.json")
    assert loaded == report
    assert outcomes_of(loaded) == sorted(many_outcomes(), key=lambda o: o.task_id)


def test_markdown_summary_written_beside_and_no_png_without_matplotlib(tmp_path: Path) -> None:
    failing = outcome("level2/9_bad", False, detail="mismatch at [3]: 1.0 vs 2.0\nmore")
    written = write_report(tmp_path / "out" / "r.json", report_of([*many_outcomes(), failing]))
    markdown = (tmp_path / "out" / "r.md").read_text()
    assert "# kernelfalcon report" in markdown
    assert "| level1" in markdown  # a GitHub-style table row
    assert "`level2/9_bad`: check/numeric_mismatch mismatch at [3]: 1.0 vs 2.0" in markdown
    assert "fast_p" in markdown  # the aggregation is stated
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert written == [tmp_path / "out" / "r.json", tmp_path / "out" / "r.md"]
        assert plot_note(written) == PLOT_SKIPPED and "matplotlib" in PLOT_SKIPPED  # said, in one line
    else:
        assert (tmp_path / "out" / "r.png").stat().st_size > 0
        assert plot_note(written) is None


def test_markdown_has_a_row_per_task_and_lists_the_failing_ones(tmp_path: Path) -> None:
    outcomes = [outcome("level1/1_fast", True, speedup=2.5), outcome("level1/2_slow", True, speedup=0.8),
                outcome("level2/3_bad", False, detail="mismatch at [0]"),
                outcome("level2/4_odd", False, stage="generate", category="budget_exceeded")]
    write_report(tmp_path / "r.json", report_of(outcomes))
    markdown = (tmp_path / "r.md").read_text()
    tasks = markdown[markdown.index("## Tasks"):markdown.index("## Failed tasks")]
    rows = [line for line in tasks.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [o.task_id for o in outcomes]
    assert "2.50x" in rows[0] and "FAILED" in rows[2] and "generate/budget_exceeded" in rows[3]
    failing = markdown[markdown.index("## Failed tasks"):]
    assert "`level2/3_bad`" in failing and "`level2/4_odd`" in failing and "1_fast" not in failing


def test_cost_is_n_a_when_nothing_was_paid_for() -> None:
    paid = Usage(calls=2, input_tokens=100, output_tokens=50, cost_usd=0.25)

    def cost_shown(source: str) -> str:
        text = summary_tables(report_of([outcome("level1/a", True, source=source, usage=paid)]))
        return [line.split()[4] for line in text.splitlines() if line.startswith("level1")][-1]

    assert {source: cost_shown(source) for source in ("replay", "hand-written", "scripted", "check")} == \
        dict.fromkeys(("replay", "hand-written", "scripted", "check"), "n/a")
    assert cost_shown("live") == "0.25"


def test_speed_legend_gives_each_baseline_its_own_colour(tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pytest_kernelfalcon.reports.report import _plot_speed

    outcomes = [outcome("level1/a", True, speedup=2.0, speedup_compile=1.5),
                outcome("level2/b", True, speedup=0.5, speedup_compile=0.9)]
    fig, axis = plt.subplots()
    _plot_speed(axis, ["level1", "level2"], report_of(outcomes))
    colours = [tuple(h.get_facecolor()) for h in axis.get_legend().legend_handles]
    plt.close(fig)
    assert len(colours) == 2 and len(set(colours)) == 2


def test_write_is_atomic_no_temp_files_left(tmp_path: Path) -> None:
    write_report(tmp_path / "r.json", report_of(many_outcomes(3)))
    write_report(tmp_path / "r.json", report_of(many_outcomes(4)))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "r.png") == ["r.json", "r.md"]
    assert len(load_report(tmp_path / "r.json")["tasks"]) == 4


def test_load_rejects_other_schemas_and_garbage(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text(json.dumps({"schema": "kernelfalcon-report/0", "tasks": []}))
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ReportError, match="kernelfalcon-report/0"):
        load_report(tmp_path / "old.json")
    with pytest.raises(ReportError, match="not JSON"):
        load_report(tmp_path / "junk.json")
    with pytest.raises(ReportError, match="no 'schema' key"):
        load_report(tmp_path / "list.json")
    with pytest.raises(ReportError, match="cannot read"):
        load_report(tmp_path / "missing.json")


def test_duplicate_task_ids_are_refused() -> None:
    with pytest.raises(ReportError, match="duplicate"):
        build_report([outcome("level1/a", True), outcome("level1/a", False)], {})


def test_meta_defaults_and_versions_filled() -> None:
    report = build_report([outcome("level1/a", True)], {"provider": "scripted"})
    assert report["schema"] == SCHEMA
    assert report["meta"]["provider"] == "scripted"
    assert report["meta"]["shard"] is None
    assert report["meta"]["versions"]["python"].startswith("3.")
    assert report["meta"]["versions"]["pytest_kernelfalcon"]


def test_fast_p_and_geomean_on_hand_made_outcomes() -> None:
    outcomes = [
        outcome("level1/a", True, 0.5),
        outcome("level1/b", True, 1.0),  # exactly 1: not > 1
        outcome("level1/c", True, 1.6, speedup_compile=0.8),
        outcome("level1/d", True, 4.0),
        outcome("level1/e", False, 9.0),  # a failed task never counts, whatever its speed
        outcome("level1/f", True),  # passed, not timed
    ]
    speed = report_of(outcomes)["levels"]["level1"]["speed"]
    eager = speed["eager"]
    assert eager["timed"] == 4
    assert eager["fast_p"] == {"0": 4 / 6, "1": 2 / 6, "1.5": 2 / 6, "2": 1 / 6}
    assert math.isclose(eager["geomean_speedup"], (0.5 * 1.0 * 1.6 * 4.0) ** 0.25)
    assert speed["compile"]["timed"] == 1
    assert speed["compile"]["fast_p"]["0"] == 1 / 6
    assert math.isclose(speed["compile"]["geomean_speedup"], 0.8)


def test_aggregates_per_level_and_total() -> None:
    outcomes = [
        outcome("level1/a", True),
        outcome("level1/b", False, stage="generate", category="budget_exceeded"),
        outcome("level2/c", False),
        outcome("level2/d", False, usage=Usage(calls=1, cost_usd=None)),
    ]
    report = report_of(outcomes)
    level1, level2, total = report["levels"]["level1"], report["levels"]["level2"], report["total"]
    assert (level1["tasks"], level1["passed"], level1["failed"], level1["pass_rate"]) == (2, 1, 1, 0.5)
    assert level1["failures_by_stage"] == {"generate": 1}
    assert level2["failures_by_category"] == {"numeric_mismatch": 2}
    assert total["llm"]["calls"] == 7 and total["llm"]["cost_complete"] is False
    assert math.isclose(total["llm"]["cost_usd"], 0.03)
    assert total["pass_rate"] == 0.25 and total["speed"] is None


def test_geomean_edge_cases() -> None:
    assert geomean([]) is None
    assert math.isclose(geomean([2.0, 8.0]) or 0, 4.0)


def test_summary_tables_show_rates_failures_and_speed() -> None:
    text = summary_tables(report_of([*many_outcomes(), outcome("level1/z", False, stage="fuse", category="timeout")]))
    assert "pass rate" in text and "61.5%" in text  # 8 of 13 in total
    assert "timeout" in text and "fuse" in text
    assert "fast_1.5" in text and "geomean" in text
    untimed = summary_tables(report_of([outcome("level1/a", True)]))
    assert "fast_1.5" not in untimed and "100.0%" in untimed


def test_calls_without_usage_are_counted_and_shown() -> None:
    report = report_of([outcome("level1/2_silent", False, usage=Usage(2, 0, 40, unreported_calls=1))])
    assert report["total"]["llm"]["unreported_calls"] == 1
    assert "40 (1 call(s) unreported)" in summary_tables(report)
    assert (Usage(1, unreported_calls=1) + Usage(1)).unreported_calls == 1


def test_strength_says_which_drawn_plans_ran_or_that_none_did() -> None:
    from pytest_kernelfalcon.reports.report import strength_of

    task = {"role": "task", "profile": "default", "overrides": {}}
    full = {"shapes": [task, {"role": "sizes", "profile": "default"},
                       {"role": "grow", "grown": "dim1", "profile": "default"},
                       {"role": "grow", "grown": "batch_size", "profile": "default"}]}
    assert strength_of(full) == "default: sizes; grow batch_size, dim1"
    assert strength_of({"shapes": [task]}) == "default: task plan only (every drawn plan dropped)"
    assert strength_of({"shapes": [{"role": "task", "profile": "official"}]}) == "official"
