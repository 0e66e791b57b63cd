"""ColdExecutor with real child processes: isolation, timeouts, crashes, early exits, cancel."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from pytest_kernelfalcon.checker.judge import job_failure
from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.executor.base import Job, JobResult, scrubbed_env
from pytest_kernelfalcon.executor.cold import ColdExecutor

EMPTY_JOB = {"version": 1, "mode": "candidate", "entry": "ModelNew", "device": "cpu", "dtype": "fp32",
             "cases": [], "audit": False, "poison": False}


def run_candidate(tmp_path: Path, body: str, timeout: float = 60.0,
                  cancel: threading.Event | None = None) -> JobResult:
    """Run a candidate-mode job with no trials whose candidate.py is ``body`` (runs at import)."""
    jobdir = tmp_path / "job"
    jobdir.mkdir(parents=True)
    (jobdir / "candidate.py").write_text(textwrap.dedent(body))
    torch.save(EMPTY_JOB, jobdir / "job.pt")
    return ColdExecutor().run(Job(jobdir, timeout, "cpu"), cancel)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_clean_job_reports_with_nonce(tmp_path: Path) -> None:
    result = run_candidate(tmp_path, "class ModelNew:\n    pass\n")
    assert result.returncode == 0 and result.report_error is None
    assert result.report is not None and result.report["error"] is None and result.report["cases"] == []


def test_env_is_scrubbed_and_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOO_API_KEY", "sk-leak")
    monkeypatch.setenv("MY_Token", "t")
    monkeypatch.setenv("KF_HARMLESS", "ok")
    result = run_candidate(tmp_path, """
        import json, os
        json.dump(dict(os.environ), open("env.json", "w"))
        class ModelNew: pass
    """)
    assert result.returncode == 0
    import json

    env = json.loads((tmp_path / "job" / "env.json").read_text())
    assert "FOO_API_KEY" not in env and "MY_Token" not in env
    assert env["KF_HARMLESS"] == "ok" and env["TRITON_INTERPRET"] == "1"
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["HOME"] == str(tmp_path / "job")


def test_scrubbed_env_pins_the_gpu(tmp_path: Path) -> None:
    env = scrubbed_env({"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "x", "DB_PASSWORD": "y",
                        "TRITON_INTERPRET": "1"}, Job(tmp_path, 1.0, "cuda", gpu="3"))
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and "TRITON_INTERPRET" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env and "DB_PASSWORD" not in env and env["PATH"] == "/bin"


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    body = """
        import subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        open("grandchild.pid", "w").write(str(child.pid))
        time.sleep(300)
    """
    for attempt, timeout in enumerate((4.0, 12.0, 30.0)):  # slow hosts: startup may outlast the timeout
        start = time.monotonic()
        result = run_candidate(tmp_path / str(attempt), body, timeout=timeout)
        assert result.timed_out and result.report is None
        assert time.monotonic() - start < timeout + 10
        pid_file = tmp_path / str(attempt) / "job" / "grandchild.pid"
        if pid_file.exists():
            break
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert job_failure(result, "candidate").category == Category.TIMEOUT  # type: ignore[union-attr]


def test_segfault_is_a_crash(tmp_path: Path) -> None:
    result = run_candidate(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    verdict = job_failure(result, "candidate")
    assert verdict is not None and verdict.category == Category.CRASH
    assert "SIGSEGV" in verdict.detail


def test_early_exit_zero_and_printing_pass_is_a_crash(tmp_path: Path) -> None:
    result = run_candidate(tmp_path, "import os\nprint('PASS')\nos._exit(0)\n")
    assert result.returncode == 0 and result.report is None
    verdict = job_failure(result, "candidate")
    assert verdict is not None and verdict.category == Category.CRASH and "early exit" in verdict.detail


def test_forged_result_without_nonce_is_rejected(tmp_path: Path) -> None:
    result = run_candidate(tmp_path, """
        import os, torch
        torch.save({"version": 1, "nonce": "guess", "error": None, "cases": []}, "result.pt")
        os._exit(0)
    """)
    assert result.report is None and "nonce mismatch" in (result.report_error or "")
    assert job_failure(result, "candidate").category == Category.CRASH  # type: ignore[union-attr]


def test_cancel_kills_promptly(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    start = time.monotonic()
    result = run_candidate(tmp_path, "import time\ntime.sleep(300)\n", cancel=cancel)
    assert result.cancelled and not result.timed_out and time.monotonic() - start < 5
    assert job_failure(result, "candidate").category == Category.CANCELLED  # type: ignore[union-attr]


def test_compile_error_is_reported_by_the_child(tmp_path: Path) -> None:
    result = run_candidate(tmp_path, "def broken(:\n    pass\n")
    verdict = job_failure(result, "candidate")
    assert verdict is not None and verdict.category == Category.COMPILE_ERROR
    assert "candidate.py:1" in verdict.detail and "SyntaxError" in verdict.detail


def test_child_limits_core_dumps_and_file_size(tmp_path: Path) -> None:
    result = run_candidate(tmp_path, """
        import resource
        open("limits.txt", "w").write(repr([resource.getrlimit(resource.RLIMIT_CORE),
                                            resource.getrlimit(resource.RLIMIT_FSIZE),
                                            resource.getrlimit(resource.RLIMIT_CPU)]))
        class ModelNew: pass
    """, timeout=30.0)
    assert result.returncode == 0
    core, fsize, cpu = eval((tmp_path / "job" / "limits.txt").read_text())
    assert core == (0, 0) and 0 < fsize[0] < 2**40 and 0 < cpu[0] <= 2 * 30 + 10

