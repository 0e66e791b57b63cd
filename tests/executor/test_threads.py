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


RACE = """
import sys, threading
from pytest_kernelfalcon.executor import threads
n = int(sys.argv[1])
barrier = threading.Barrier(n)
counts = []
def register():
    barrier.wait()
    counts.append(threads.live_harnesses())
workers = [threading.Thread(target=register) for _ in range(n)]
for w in workers:
    w.start()
for w in workers:
    w.join()
print(len(counts), min(counts), flush=True)
"""


def test_registration_from_many_threads_and_processes_at_once_ends() -> None:
    """Issue 22: threads of one process registering at the same moment once waited on each other's lock forever."""
    procs = [subprocess.Popen([sys.executable, "-c", RACE, "16"], stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    try:
        outs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * len(procs)
    for out in outs:
        registered, least = map(int, out.split())
        assert registered == 16 and least >= 1  # every thread came back, each process counted itself


def test_one_registration_per_process_whichever_thread_asks() -> None:
    import threading

    from pytest_kernelfalcon.executor import threads

    handles: list[object] = []
    barrier = threading.Barrier(8)

    def register() -> None:
        barrier.wait()
        handles.append(threads._register())

    workers = [threading.Thread(target=register, daemon=True) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert len(handles) == 8 and len({id(h) for h in handles}) == 1
