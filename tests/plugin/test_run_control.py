"""Agent runs through pytest, steered from outside: harness errors, resume, interrupt, what a user sees.

Real runs in subprocesses: the bundled samples replayed from their hand-written transcripts,
or the scripted provider (handed to the session by the test directory's conftest).
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "kernelbench"
COMMON = ("-p", "no:cacheprovider", "--falcon-device", "cpu", "--falcon-seeds", "1", "--falcon-workers", "1")

# a task that cannot run on this machine: it needs a package nobody installed (imported by name, so
# collection cannot see it and skip the task)
UNRUNNABLE_TASK = '''import importlib

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.extra = importlib.import_module("kf_not_installed_anywhere")

    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(8, 16)]


def get_init_inputs():
    return []
'''

FUSED_ANSWER = '''```python
import torch
import torch.nn as nn


class Relu(nn.Module):
    def forward(self, x):
        return torch.relu(x)


class FusedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = Relu()

    def forward(self, x):
        return self.body(x)
```
'''

SCRIPTED_CONFTEST = f'''
import json
from pathlib import Path

import pytest

from pytest_kernelfalcon.llm.scripted import ScriptedProvider
from pytest_kernelfalcon.plugin import SESSION_KEY

PROVIDER = ScriptedProvider(lambda request: {FUSED_ANSWER!r})


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    config.stash[SESSION_KEY].make_provider = lambda _config: PROVIDER


def pytest_unconfigure(config):
    Path("prompts.json").write_text(json.dumps([request.prompt for request in PROVIDER.requests]))
'''


def samples(pytester: pytest.Pytester, *extra: str) -> tuple[str, ...]:
    """Arguments that run bundled samples offline (hand-written transcripts), runs under ``runs/``."""
    return ("--falcon", str(SAMPLES), "--falcon-transcripts", str(SAMPLES / "transcripts"),
            "--falcon-run-dir", str(pytester.path / "runs"), *COMMON, *extra)


def test_a_harness_error_is_never_fed_to_the_provider(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"kb/level1/1_needs_a_package": UNRUNNABLE_TASK})
    pytester.makeconftest(SCRIPTED_CONFTEST)
    report = pytester.path / "r.json"
    result = pytester.runpytest_subprocess("--falcon", "kb", "--falcon-provider", "scripted", *COMMON,
                                           "--falcon-fuse", "always", "--falcon-run-dir", str(pytester.path / "runs"),
                                           "--falcon-report", str(report))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*harness error at fuse (not the candidate's)*kf_not_installed_anywhere*"])
    prompts = json.loads((pytester.path / "prompts.json").read_text())
    assert len(prompts) == 1 and "FusedModel" in prompts[0]  # the fuse prompt, and no feedback prompt after it
    (task,) = json.loads(report.read_text())["tasks"]
    assert (task["stage"], task["category"]) == ("fuse", "harness_error")


def test_resuming_an_unknown_run_is_a_usage_error(pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = pytester.runpytest_subprocess(*samples(pytester, "--falcon-resume", "nosuchrun"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [f"ERROR: --falcon-resume nosuchrun: no such run in {pytester.path / 'runs'}"]
    assert not (pytester.path / "runs" / "nosuchrun").exists()


def test_quiet_runs_still_say_where_answers_come_from(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = pytester.runpytest_subprocess(*samples(pytester, "-q", "--co"))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["falcon: offline - no ANTHROPIC_API_KEY, replaying hand-written transcripts*"])


def events_of(run_dir: Path) -> list[dict[str, object]]:
    """The run's events, in order."""
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_an_interrupted_run_keeps_finished_tasks_and_resumes_past_them(pytester: pytest.Pytester,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    args = samples(pytester, "-k", "leaky_relu or row_softmax")
    proc = pytester.popen([sys.executable, "-m", "pytest", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 600
    for raw in proc.stdout:  # the first task's end, then Ctrl-C while the second runs
        seen.append(raw.decode(errors="replace"))
        if "task_end" in seen[-1] or time.monotonic() > deadline:
            break
    assert "level1/leaky_relu task_end passed" in seen[-1], "".join(seen)
    interrupted_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    stopped_s = time.monotonic() - interrupted_at
    output = "".join(seen) + rest.decode(errors="replace")
    assert stopped_s < 30, output
    assert "falcon: interrupted; finished tasks are kept in" in output
    resume = [line for line in output.splitlines() if line.startswith("resume with: ")]
    assert len(resume) == 1, output
    command = shlex.split(resume[0].removeprefix("resume with: "))
    assert command[0] == "pytest" and command[-2] == "--falcon-resume", command
    run_dir = pytester.path / "runs" / command[-1]
    assert (run_dir / "tasks" / "level1" / "leaky_relu" / "outcome.json").is_file()
    before = len(events_of(run_dir))

    resumed = pytester.runpytest_subprocess(*command[1:])
    resumed.assert_outcomes(passed=2, deselected=11)
    new = events_of(run_dir)[before:]
    calls = {str(e.get("task")) for e in new if e["type"] == "llm_call"}
    assert calls == {"level1/row_softmax"}  # the finished task was not redone
