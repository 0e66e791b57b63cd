"""Thread shares (#17): each job gets the cores divided among the live harness processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pytest_kernelfalcon.executor.base import Job, scrubbed_env
from pytest_kernelfalcon.executor.threads import THREADS_ENV, cores, live_harnesses, thread_share

HOLD = ("import time; from pytest_kernelfalcon.executor.threads import live_harnesses; "
        "live_harnesses(); print('ready', flush=True); time.sleep(60)")


def test_a_second_harness_halves_the_share(tmp_path: Path) -> None:
    alone = live_harnesses()
    other = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "ready"
        assert live_harnesses() == alone + 1
        assert thread_share() == max(1, cores() // (alone + 1))
        env = scrubbed_env({"PATH": "/usr/bin"}, Job(tmp_path, 1.0, "cpu"))
        assert env[THREADS_ENV] == env["OMP_NUM_THREADS"] == str(thread_share())
    finally:
        other.kill()
        other.wait()
    deadline = time.monotonic() + 10
    while live_harnesses() != alone and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_harnesses() == alone  # its lock went with it


def test_a_user_setting_of_omp_threads_is_kept(tmp_path: Path) -> None:
    env = scrubbed_env({"OMP_NUM_THREADS": "3"}, Job(tmp_path, 1.0, "cpu"))
    assert env["OMP_NUM_THREADS"] == "3" and env[THREADS_ENV] == str(thread_share())
