"""Plugin runs with pytester (in subprocesses): collection, judging, summary, gating, shards, xdist, usage errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)


batch_size = 16
dim = 40


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
'''

GOOD = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(y_ptr + offs, tl.maximum(x, 0.0), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        relu_kernel[(triton.cdiv(x.numel(), 256),)](x, y, x.numel(), BLOCK=256)
        return y
'''

CHEAT = '''import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)
'''

NOT_A_TASK = "import torch\n\ndef helper():\n    return 1\n"

ARGS = ("-p", "no:cacheprovider", "--falcon-device", "cpu", "--falcon-seeds", "2")


@pytest.fixture
def layout(pytester: pytest.Pytester) -> pytest.Pytester:
    """Two level-1 tasks, a non-task file, and candidates: one good, one cheating."""
    pytester.makepyfile(**{
        "kb/level1/1_relu": TASK, "kb/level1/2_relu_again": TASK, "kb/level1/helpers": NOT_A_TASK,
        "cands/level1/1_relu": GOOD, "cands/2_relu_again": CHEAT,
    })
    return pytester


def test_collects_task_files_with_level_ids(layout: pytest.Pytester) -> None:
    result = layout.runpytest_subprocess("--falcon", "kb", "--co", "-q", *ARGS)
    result.stdout.fnmatch_lines(["kb/level1/1_relu.py::level1/1_relu",
                                 "kb/level1/2_relu_again.py::level1/2_relu_again", "*2 tests collected*"])
    assert "helpers" not in result.stdout.str()


def test_without_falcon_nothing_is_collected(layout: pytest.Pytester) -> None:
    result = layout.runpytest_subprocess("kb", "--co", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_judges_candidates_and_summarises_categories(layout: pytest.Pytester) -> None:
    report = layout.path / "out" / "report.json"
    result = layout.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands",
                              "--falcon-report", str(report), *ARGS)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "falcon: judging candidates from *cands*",
        "*level1/2_relu_again: failed at check: torch_compute*",
        "*kernelfalcon*", "*level1*2*1*1*50.0%*",
    ])
    assert "answers:" not in result.stdout.str()  # candidates are judged: no answers came from anywhere
    data = json.loads(report.read_text())
    cats = {t["task_id"]: t["category"] for t in data["tasks"]}
    assert cats == {"level1/1_relu": None, "level1/2_relu_again": "torch_compute"}
    assert report.with_suffix(".md").is_file()


def test_missing_candidate_fails_with_its_category(layout: pytest.Pytester) -> None:
    (layout.path / "cands" / "2_relu_again.py").unlink()
    result = layout.runpytest_subprocess("--falcon", "kb", "-k", "relu_again", "--falcon-candidates", "cands", *ARGS)
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*failed at check: missing_candidate*"])


def test_fail_under_and_baseline_gate_the_session(layout: pytest.Pytester) -> None:
    base = layout.path / "base.json"
    layout.runpytest_subprocess("--falcon", "kb/level1/1_relu.py", "--falcon-candidates", "cands",
                     "--falcon-report", str(base), *ARGS).assert_outcomes(passed=1)
    (layout.path / "cands" / "level1" / "1_relu.py").write_text(CHEAT)
    result = layout.runpytest_subprocess("--falcon", "kb/level1/1_relu.py", "--falcon-candidates", "cands",
                              "--falcon-baseline", str(base), *ARGS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*falcon gate: FAILED*", "*regression: level1/1_relu*"])


def test_a_run_whose_only_failures_are_known_passes_the_gate(layout: pytest.Pytester) -> None:
    base = layout.path / "base.json"
    layout.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands", "--falcon-report", str(base),
                                *ARGS).assert_outcomes(passed=1, failed=1)
    result = layout.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands", "-rx",
                                         "--falcon-baseline", str(base), *ARGS)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*falcon gate: passed*", "*known failures (failed in the baseline too): 1*",
                                 "*XFAIL*2_relu_again*known failure (baseline: torch_compute; now: torch_compute)*"])
    assert "regression" not in result.stdout.str()


def test_a_new_failing_task_fails_the_gate(layout: pytest.Pytester) -> None:
    base = layout.path / "base.json"
    layout.runpytest_subprocess("--falcon", "kb/level1/1_relu.py", "--falcon-candidates", "cands",
                                "--falcon-report", str(base), *ARGS).assert_outcomes(passed=1)
    result = layout.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands",
                                         "--falcon-baseline", str(base), *ARGS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*falcon gate: FAILED*", "*newly failing (not in the baseline): level1/2_relu_again*"])


@pytest.mark.parametrize("damage", [
    lambda data: data["tasks"][0].pop("passed"),
    lambda data: data.update(tasks="oops"),
    lambda data: data.update(meta=None),
])
def test_a_malformed_baseline_is_a_usage_error_in_one_line(layout: pytest.Pytester, damage: Any) -> None:
    base = layout.path / "base.json"
    layout.runpytest_subprocess("--falcon", "kb/level1/1_relu.py", "--falcon-candidates", "cands",
                                "--falcon-report", str(base), *ARGS).assert_outcomes(passed=1)
    data = json.loads(base.read_text())
    damage(data)
    base.write_text(json.dumps(data))
    result = layout.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands",
                                         "--falcon-baseline", str(base), *ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: --falcon-baseline:") and "malformed" in errors[0], \
        result.stderr.lines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_gate_failure_alone_sets_a_failing_exit(layout: pytest.Pytester) -> None:
    base = layout.path / "base.json"
    layout.runpytest_subprocess("--falcon", "kb/level1/2_relu_again.py", "--falcon-candidates", "cands",
                     "--falcon-report", str(base), *ARGS)
    result = layout.runpytest_subprocess("--falcon", "kb/level1/1_relu.py", "--falcon-candidates", "cands",
                              "--falcon-fail-under", "1.0", *ARGS)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK  # 100% >= 1.0: the gate passes
    result = layout.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands",
                              "--falcon-fail-under", "0.9", *ARGS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*pass rate 50.0% is under the required 90.0%*"])


def test_shards_split_the_tasks(layout: pytest.Pytester) -> None:
    seen: list[str] = []
    for index in (1, 2):
        result = layout.runpytest_subprocess("--falcon", "kb", "--co", "-q", "--falcon-shard", f"{index}/2", *ARGS)
        seen += [line.split("::")[1] for line in result.stdout.lines if "::" in line]
    assert sorted(seen) == ["level1/1_relu", "level1/2_relu_again"]


@pytest.mark.parametrize("option, value, message", [
    ("--falcon-shard", "3/2", "*--falcon-shard*"),
    ("--falcon-shapes", "huge", "*--falcon-shapes must be one of*"),
    ("--falcon-seeds", "0", "*--falcon-seeds must be at least 1*"),
    ("--falcon-data-path", "disk", "*--falcon-data-path must be one of*"),
    ("--falcon-data-path", "resident", "*resident checks official shapes only*"),
    ("--falcon-candidates", "nowhere", "*is not a directory*"),
    ("--falcon-provider", "anthropic", "*ANTHROPIC_API_KEY*"),
    ("--falcon-timeout", "-1", "*--falcon-timeout must be a positive number of seconds, got -1*"),
    ("-o", "falcon_bench=maybe", "*ini key falcon_bench: expected true or false*"),
])
def test_bad_options_are_usage_errors(layout: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                      option: str, value: str, message: str) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = layout.runpytest_subprocess("--falcon", "kb", *ARGS, option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ini_keys_mirror_options(layout: pytest.Pytester) -> None:
    layout.makeini("[pytest]\nfalcon_shapes = huge\n")
    result = layout.runpytest_subprocess("--falcon", "kb", *ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--falcon-shapes must be one of*"])


def test_xdist_workers_share_the_summary(layout: pytest.Pytester) -> None:
    result = layout.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands", "-n", "2", *ARGS)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*kernelfalcon*", "*total*2*1*1*50.0%*"])


def test_level4_style_task_missing_a_package_is_skipped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"kb/level4/1_hf": "import not_a_real_package_xyz\n" + TASK})
    (pytester.path / "cands").mkdir()
    result = pytester.runpytest_subprocess("--falcon", "kb", "-rs", "--falcon-candidates", "cands", *ARGS)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs not_a_real_package_xyz*"])


def test_offline_without_transcripts_is_a_usage_error(layout: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = layout.runpytest_subprocess("--falcon", "kb", *ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*replay: no transcript directory*"])


def test_check_mode_reports_no_llm_source(layout: pytest.Pytester, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    layout.runpytest_subprocess("--falcon", "kb/level1/1_relu.py", "--falcon-candidates", "cands",
                     "--falcon-report", str(report), *ARGS)
    meta = json.loads(report.read_text())["meta"]
    assert meta["source"] == "check" and meta["provider"] is None


def test_collects_all_kernelbench_problems(pytester: pytest.Pytester, kernelbench_dir: Path) -> None:
    result = pytester.runpytest_subprocess("--falcon", str(kernelbench_dir), "--co", "-q", *ARGS)
    result.stdout.fnmatch_lines(["*270 tests collected*"])
    assert "::level4/7_gpt2_bs32_seq256" in result.stdout.str()


def test_a_crashed_xdist_worker_fails_its_task_and_the_run_goes_on(layout: pytest.Pytester) -> None:
    layout.makeconftest("""
import os

def pytest_runtest_call(item):
    if "relu_again" in item.nodeid:
        os._exit(1)
""")
    report = layout.path / "r.json"
    result = layout.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands", "-n", "2",
                                         "--falcon-report", str(report), *ARGS)
    result.assert_outcomes(passed=1, failed=1)
    cats = {t["task_id"]: t["category"] for t in json.loads(report.read_text())["tasks"]}
    assert cats == {"level1/1_relu": None, "level1/2_relu_again": "worker_crash"}


def test_n_auto_asks_for_one_worker_per_gpu_only_on_cuda(pytester: pytest.Pytester) -> None:
    from pytest_kernelfalcon.plugin import pytest_xdist_auto_num_workers

    (pytester.path / "cands").mkdir()
    on_cpu = pytester.parseconfig("--falcon", "--falcon-device", "cpu", "--falcon-candidates", "cands")
    assert pytest_xdist_auto_num_workers(on_cpu) is None  # xdist's own count (CPUs) applies
    on_cuda = pytester.parseconfig("--falcon", "--falcon-device", "cuda", "--falcon-candidates", "cands")
    assert pytest_xdist_auto_num_workers(on_cuda) == 1  # no GPU visible here: one worker, never zero
