"""``kernelfalcon report show|compare|merge`` through a real subprocess: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pytest_kernelfalcon.reports.report import load_report, write_report
from pytest_kernelfalcon.reports.shard import select_shard

from .helpers import many_outcomes, outcome, report_of


def kf(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``kernelfalcon report ARGS`` in a child process."""
    command = [sys.executable, "-m", "pytest_kernelfalcon.cli", "report", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_show_prints_tables(tmp_path: Path) -> None:
    write_report(tmp_path / "r.json", report_of(many_outcomes()))
    done = kf("show", tmp_path / "r.json")
    assert done.returncode == 0, done.stderr
    assert "pass rate" in done.stdout and "level2" in done.stdout and "fast_2" in done.stdout
    assert "provider: replay" in done.stdout


def test_compare_exit_codes_and_output(tmp_path: Path) -> None:
    old = [outcome("level1/a", True, 2.0), outcome("level1/b", True, 1.0), outcome("level1/c", False)]
    regressed = [outcome("level1/a", True, 1.0), outcome("level1/b", False), outcome("level1/c", True)]
    improved = [outcome("level1/a", True, 1.0), outcome("level1/b", True, 1.0), outcome("level1/c", True)]
    for name, outcomes in (("old", old), ("regressed", regressed), ("improved", improved)):
        write_report(tmp_path / f"{name}.json", report_of(outcomes))
    bad = kf("compare", tmp_path / "old.json", tmp_path / "regressed.json")
    assert bad.returncode == 1
    assert "newly failing: level1/b" in bad.stdout and "newly passing: level1/c" in bad.stdout
    assert "slower: level1/a 2.00x -> 1.00x" in bad.stdout
    good = kf("compare", tmp_path / "old.json", tmp_path / "improved.json")
    assert good.returncode == 0 and "slower: level1/a" in good.stdout
    strict = kf("compare", "--fail-on-slower", tmp_path / "old.json", tmp_path / "improved.json")
    assert strict.returncode == 1


def test_merge_writes_one_report(tmp_path: Path) -> None:
    outcomes = many_outcomes(10)
    paths = []
    for i in (1, 2):
        ids = set(select_shard([o.task_id for o in outcomes], i, 2))
        paths.append(tmp_path / f"shard{i}.json")
        write_report(paths[-1], report_of([o for o in outcomes if o.task_id in ids], shard={"index": i, "count": 2}))
    done = kf("merge", "-o", tmp_path / "all.json", *paths)
    assert done.returncode == 0, done.stderr
    merged = load_report(tmp_path / "all.json")
    assert merged["total"] == report_of(outcomes)["total"]
    assert (tmp_path / "all.md").is_file()
    overlap = kf("merge", "-o", tmp_path / "twice.json", paths[0], paths[0])
    assert overlap.returncode == 2 and "is in report 1 and report 2" in overlap.stderr
    assert not (tmp_path / "twice.json").exists()


def test_usage_and_unreadable_exit_2(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something-else/3"}))
    assert kf().returncode == 2
    assert kf("frobnicate").returncode == 2
    assert kf("merge", tmp_path / "x.json").returncode == 2  # -o is required
    missing = kf("show", tmp_path / "nope.json")
    assert missing.returncode == 2 and "cannot read report" in missing.stderr
    wrong = kf("compare", tmp_path / "other.json", tmp_path / "other.json")
    assert wrong.returncode == 2 and "kernelfalcon-report/1" in wrong.stderr
    assert kf("--help").returncode == 0
