"""The main job through pytest: offline replay of the bundled hand-written transcripts, then resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_kernelfalcon.plugin import describe_event

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "kernelbench"


def run_offline(pytester: pytest.Pytester, *extra: str) -> pytest.RunResult:
    """Run one bundled sample through the whole pipeline, replaying its transcripts."""
    return pytester.runpytest_subprocess(
        "--falcon", str(SAMPLES), "-k", "leaky_relu", "-p", "no:cacheprovider",
        "--falcon-device", "cpu", "--falcon-workers", "2", "--falcon-seeds", "2",
        "--falcon-transcripts", str(SAMPLES / "transcripts"),
        "--falcon-run-dir", str(pytester.path / "runs"), *extra)


def test_offline_default_replays_and_resume_redoes_nothing(pytester: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    first = run_offline(pytester, "--falcon-report", str(pytester.path / "r.json"))
    first.assert_outcomes(passed=1, deselected=12)
    first.stdout.fnmatch_lines(["falcon: offline - no ANTHROPIC_API_KEY, replaying hand-written*",
                                "*falcon?*level1/leaky_relu task_end passed*"])
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["meta"]["source"] == "hand-written"
    run_dir = Path(report["meta"]["run_dir"])
    model_new = run_dir / "tasks" / "level1" / "leaky_relu" / "ModelNew.py"
    assert "class ModelNew" in model_new.read_text()
    mtime = model_new.stat().st_mtime_ns
    events = (run_dir / "events.jsonl").read_text().splitlines()

    again = run_offline(pytester, "--falcon-resume", run_dir.name)
    again.assert_outcomes(passed=1, deselected=12)
    assert model_new.stat().st_mtime_ns == mtime
    new_events = (run_dir / "events.jsonl").read_text().splitlines()[len(events):]
    assert not [e for e in new_events if json.loads(e)["type"] in ("llm_call", "verdict")]


def test_describe_event_names_stage_worker_round_and_result() -> None:
    line = describe_event({"type": "verdict", "task": "level1/x", "stage": "generate",
                           "subgraph": "sg0", "worker": 1, "round": 2, "passed": False,
                           "category": "numeric_mismatch"})
    assert line == "level1/x verdict generate sg0 w1 r2 numeric_mismatch"
    assert describe_event({"type": "task_end", "task": "t", "passed": True}) == "t task_end passed"
