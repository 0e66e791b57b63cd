"""The resident path on warm workers: the candidate's process is forked ahead of its job.

A ``fork`` worker's job process forked ahead, and a ``once`` worker, fork a waiting
candidate's process before their request (``resident_candidate.prefork``). These tests
run that path on the CPU, in both modes: the
verdicts of a fault stream, what the forked process holds (not the result nonce) and
runs as (the job's uid, dumpable for the comparer), and that no forked process outlives
its worker, used or not.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from samples import FAULTS, RELU_TASK, candidate_source, group_members, write, zombies_of

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
from pytest_kernelfalcon.core.isolation import children_of
from pytest_kernelfalcon.executor.warm import WarmExecutor

RESIDENT = CheckOptions(device="cpu", shapes="official", seeds=1, timeout_s=8.0, data_path="resident")
STREAM = ["correct", "segfault", "exception", "os_exit", "torch_compute", "hang", "fork_spam", "correct"]

PROBE = """
import ctypes
import gc
import os
import sys

import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        nonce_dicts = sum(1 for o in gc.get_objects() if isinstance(o, dict) and "nonce" in o)
        dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
        raise RuntimeError(f"probe argv={' '.join(sys.argv)!r} uid={os.getuid()} "
                           f"nonce_dicts={nonce_dicts} dumpable={dumpable}")
"""


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ReLU task."""
    return write(tmp_path_factory.mktemp("task") / "relu.py", RELU_TASK)


@pytest.fixture(scope="module", params=["fork", "once"])
def resident_checker(request: pytest.FixtureRequest) -> Iterator[Checker]:
    """A resident-path checker on a one-worker pool: ``fork`` (job processes forked ahead by one worker)
    and ``once`` (a fresh worker per job)."""
    with WarmExecutor(pool_size=1, device="cpu", mode=request.param) as executor:
        yield Checker(RESIDENT, executor)


def got(checker: Checker, task: Path, tmp: Path, fault: str) -> str:
    """Verify the ``fault`` candidate and return ``pass`` or the category name."""
    verdict = checker.verify(task, write(tmp / f"{fault}.py", candidate_source(fault)))
    return "pass" if verdict.passed else verdict.category.value  # type: ignore[union-attr]


def worker_pids(checker: Checker) -> set[int]:
    """The pids (= process groups) of the checker's live workers."""
    executor = checker.executor
    assert isinstance(executor, WarmExecutor)
    return {w.proc.pid for pool in executor.pools().values() for w in pool.live}


def test_fault_stream_on_preforked_candidates(resident_checker: Checker, task: Path, tmp_path: Path) -> None:
    verdicts = [got(resident_checker, task, tmp_path, fault) for fault in STREAM]
    assert verdicts == [FAULTS[f][1] for f in STREAM]


def test_forked_candidate_runs_isolated_without_the_nonce(resident_checker: Checker, task: Path,
                                                         tmp_path: Path) -> None:
    checker = Checker(replace(RESIDENT, audit=False), resident_checker.executor)
    verdict = checker.verify(task, write(tmp_path / "probe.py", PROBE))
    found = re.search(r"probe argv='([^']*)' uid=(\d+) nonce_dicts=(\d+) dumpable=(\d)", verdict.detail)
    assert found, verdict.detail
    argv, uid, nonce_dicts, dumpable = found.groups()
    assert "warm_worker" in argv  # forked from the worker, not started with python -m
    assert int(nonce_dicts) == 0  # forked before its job's request was read
    assert dumpable == "1"  # the comparer may map its memory (CUDA IPC)
    if os.geteuid() == 0:
        assert int(uid) != 0  # it entered the job's isolation: an unprivileged uid


def test_no_forked_process_outlives_its_job(resident_checker: Checker, task: Path, tmp_path: Path) -> None:
    files = Checker(replace(RESIDENT, data_path="files"), resident_checker.executor)
    seen: set[int] = set()
    for checker in (files, resident_checker):  # a job that leaves its fork unused, then one that uses it
        seen |= worker_pids(checker)
        assert got(checker, task, tmp_path, "correct") == "pass"
    live = worker_pids(resident_checker)
    deadline = time.monotonic() + 10
    while group_members(seen - live) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_members(seen - live) == []  # once: a used worker's group (its fork included) is gone
    for worker in live:  # between jobs a worker holds at most one process forked ahead, which holds at most one
        ahead = children_of(worker)
        assert len(ahead) <= 1 and all(len(children_of(pid)) <= 1 for pid in ahead), (worker, ahead)
    assert zombies_of(seen | live | {os.getpid()}) == []


def kill_forked_ahead(checker: Checker, victim: str) -> int:
    """Kill what the checker's one ``fork`` worker holds ahead: its next job process, or that one's
    candidate's process; wait until it is dead and return the worker's pid."""
    (worker,) = worker_pids(checker)
    deadline = time.monotonic() + 60
    while not (ahead := children_of(worker)) or not children_of(ahead[0]):
        assert time.monotonic() < deadline, "the worker holds no job process forked ahead"
        time.sleep(0.05)
    pid = ahead[0] if victim == "job process" else children_of(ahead[0])[0]
    os.kill(pid, signal.SIGKILL)
    while pid in group_members({os.getpgid(worker), ahead[0]}):  # died (a zombie at most) before the job
        time.sleep(0.01)
    return worker


@pytest.mark.parametrize("victim", ["job process", "candidate's process"])
def test_a_fork_that_died_while_waiting_is_replaced(task: Path, tmp_path: Path, victim: str) -> None:
    """Kill what a ``fork`` worker holds ahead (its next job process, or that one's candidate's process):
    the next resident job still gets its verdict, on the same worker."""
    executor = WarmExecutor(pool_size=1, device="cpu", mode="fork")
    checker = Checker(RESIDENT, executor)
    try:
        assert got(checker, task, tmp_path, "correct") == "pass"
        worker = kill_forked_ahead(checker, victim)
        assert got(checker, task, tmp_path, "correct") == "pass"
        assert got(checker, task, tmp_path, "exception") == "runtime_error"
        pool = next(iter(executor.pools().values()))
        assert pool.replaced == 0 and worker_pids(checker) == {worker}
    finally:
        executor.close()


def test_the_time_limit_starts_when_the_candidates_process_is_ready(task: Path, tmp_path: Path) -> None:
    """With its forked-ahead candidate's process gone, the comparer starts one with ``python -m`` (seconds
    of imports, more on a loaded machine). That start is the harness's time, not the candidate's: a
    candidate still passes under a time limit shorter than the start, and a segfault is still a crash."""
    limit = 1.5
    executor = WarmExecutor(pool_size=1, device="cpu", mode="fork")
    checker = Checker(replace(RESIDENT, timeout_s=limit), executor)
    try:
        assert got(checker, task, tmp_path, "exception") == "runtime_error"  # the reference is built and cached
        kill_forked_ahead(checker, "candidate's process")
        verdict = checker.verify(task, write(tmp_path / "correct.py", candidate_source("correct")))
        assert verdict.passed, verdict.detail
        assert verdict.timings["candidate_shell_ready_s"] > limit  # it did start slower than the limit
        kill_forked_ahead(checker, "candidate's process")
        assert got(checker, task, tmp_path, "segfault") == "crash"
    finally:
        executor.close()
