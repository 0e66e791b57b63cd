"""Shards: parsing, disjoint and complete partitions, determinism; merging shards equals one run."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from pytest_kernelfalcon.cli.report import merge_reports
from pytest_kernelfalcon.reports.report import ReportError
from pytest_kernelfalcon.reports.shard import parse_shard, select_shard

from .helpers import many_outcomes, report_of

IDS = [f"level{1 + i % 4}/{i}_task" for i in range(37)]


@pytest.mark.parametrize(("text", "parsed"), [("1/1", (1, 1)), ("2/4", (2, 4)), (" 4/4 ", (4, 4))])
def test_parse_shard(text: str, parsed: tuple[int, int]) -> None:
    assert parse_shard(text) == parsed


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "2", "a/b", "1/2/3", "-1/4", "1.5/4", ""])
def test_parse_shard_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 40])
def test_shards_are_disjoint_complete_and_balanced(count: int) -> None:
    shards = [select_shard(IDS, i, count) for i in range(1, count + 1)]
    flat = [t for s in shards for t in s]
    assert sorted(flat) == sorted(IDS)  # complete, and no task twice (disjoint)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shard_does_not_depend_on_collection_order() -> None:
    shuffled = IDS[:]
    random.Random(7).shuffle(shuffled)
    for i in range(1, 5):
        assert sorted(select_shard(shuffled, i, 4)) == sorted(select_shard(IDS, i, 4))
    assert select_shard(shuffled, 2, 4) == [t for t in shuffled if t in select_shard(IDS, 2, 4)]


def test_shards_are_the_same_in_other_processes() -> None:
    code = ("import json, sys; from pytest_kernelfalcon.reports.shard import select_shard; "
            "print(json.dumps([select_shard(json.loads(sys.argv[1]), i, 3) for i in (1, 2, 3)]))")
    runs = [subprocess.run([sys.executable, "-c", code, json.dumps(IDS)], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert runs[0] == runs[1]
    assert json.loads(runs[0]) == [select_shard(IDS, i, 3) for i in (1, 2, 3)]


def test_select_shard_rejects_bad_index() -> None:
    with pytest.raises(ValueError):
        select_shard(IDS, 0, 3)


def test_merge_of_shards_equals_one_run() -> None:
    outcomes = many_outcomes(20)
    whole = report_of(outcomes, started="2026-01-01T00:00:00", finished="2026-01-01T01:00:00")
    shards = []
    for i in range(1, 4):
        ids = set(select_shard([o.task_id for o in outcomes], i, 3))
        shards.append(report_of([o for o in outcomes if o.task_id in ids],
                                config={**whole["meta"]["config"], "falcon_shard": [i, 3],
                                        "falcon_report": f"shard{i}.json"},
                                shard={"index": i, "count": 3}, run_id=f"run{i}", mode="check",
                                started=f"2026-01-01T00:0{i}:00", finished=f"2026-01-01T00:5{i}:00"))
    merged = merge_reports(shards)
    for key in ("tasks", "levels", "total", "schema", "aggregation"):
        assert merged[key] == whole[key], key
    assert merged["meta"]["config"] == whole["meta"]["config"]
    assert merged["meta"]["started"] == "2026-01-01T00:01:00"
    assert merged["meta"]["finished"] == "2026-01-01T00:53:00"
    assert [m["shard"]["index"] for m in merged["meta"]["merged_from"]] == [1, 2, 3]
    assert [m["run_id"] for m in merged["meta"]["merged_from"]] == ["run1", "run2", "run3"]
    assert merged["meta"]["merged_from"][1]["config"]["falcon_report"] == "shard2.json"
    assert merged["meta"]["mode"] == "check" and merged["meta"]["shard"] is None


def test_merge_refuses_overlapping_tasks() -> None:
    outcomes = many_outcomes(6)
    with pytest.raises(ReportError, match="is in report 1 and report 2"):
        merge_reports([report_of(outcomes[:4]), report_of(outcomes[3:])])


def test_merge_refuses_mismatched_runs() -> None:
    outcomes = many_outcomes(6)
    other_config = report_of(outcomes[3:], config={"falcon_strategy": "direct", "falcon_dtype": "fp32"})
    with pytest.raises(ReportError, match=r"another config.*falcon_strategy"):
        merge_reports([report_of(outcomes[:3]), other_config])
    with pytest.raises(ReportError, match="'model'"):
        merge_reports([report_of(outcomes[:3]), report_of(outcomes[3:], model="other")])
