"""The trusted checker on a WarmExecutor: the same verdicts as the cold path, and a fault stream."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from samples import FAULTS, RELU_TASK, candidate_source, uid_processes, write, zombies_of

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
from pytest_kernelfalcon.executor.cold import ColdExecutor
from pytest_kernelfalcon.executor.warm import WarmExecutor

OPTIONS = CheckOptions(device="cpu", shapes="official", seeds=1, timeout_s=4.0)
COLD_OPTIONS = CheckOptions(device="cpu", shapes="official", seeds=1, timeout_s=20.0)  # cold start ~3 s idle, 8+ s under CI load
STREAM = ["correct", "segfault", "correct", "os_exit", "exception", "correct", "hang", "fork_spam",
          "torch_compute", "correct", "segfault", "exception", "correct", "os_exit", "fork_spam",
          "correct", "exception", "segfault", "correct", "correct"]


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ReLU task."""
    return write(tmp_path_factory.mktemp("task") / "relu.py", RELU_TASK)


@pytest.fixture(scope="module")
def warm_checker() -> Iterator[Checker]:
    """A checker whose jobs run on a two-worker warm pool."""
    with WarmExecutor(pool_size=2, device="cpu") as executor:
        yield Checker(OPTIONS, executor)


def got(checker: Checker, task: Path, tmp: Path, fault: str) -> str:
    """Verify the ``fault`` candidate and return ``pass`` or the category name."""
    verdict = checker.verify(task, write(tmp / f"{fault}.py", candidate_source(fault)))
    return "pass" if verdict.passed else verdict.category.value  # type: ignore[union-attr]


def test_warm_verdicts_equal_cold_verdicts(warm_checker: Checker, task: Path, tmp_path: Path) -> None:
    cold = Checker(COLD_OPTIONS, ColdExecutor())
    for fault in ("correct", "torch_compute", "segfault", "hang"):
        expected = FAULTS[fault][1]
        assert got(warm_checker, task, tmp_path, fault) == expected, fault
        assert got(cold, task, tmp_path, fault) == expected, fault


def test_fault_stream_keeps_the_pool_healthy(warm_checker: Checker, task: Path, tmp_path: Path) -> None:
    verdicts = [got(warm_checker, task, tmp_path, fault) for fault in STREAM]
    assert verdicts == [FAULTS[f][1] for f in STREAM]
    executor = warm_checker.executor
    assert isinstance(executor, WarmExecutor)
    pool = next(iter(executor.pools().values()))
    deadline = time.monotonic() + 60
    while sum(w.alive() for w in pool.live) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [w for w in pool.live if w.alive()]
    assert len(workers) == 2
    assert pool.replaced == 0  # faults end job processes, never a worker (nor the job process it forked ahead)
    assert zombies_of({w.proc.pid for w in workers} | {os.getpid()}) == []
    assert all(uid_processes(w.uid) == [] for w in workers if w.uid is not None)
    assert got(warm_checker, task, tmp_path, "correct") == "pass"


def test_a_shared_pool_outlives_the_checkers_that_use_it(task: Path, tmp_path: Path) -> None:
    """Closing a checker leaves an executor it was given running (another checker still gets the same
    warm worker); a closed executor refuses jobs instead of running them cold."""
    with WarmExecutor(pool_size=1, device="cpu") as executor:
        first = Checker(OPTIONS, executor)
        assert got(first, task, tmp_path, "correct") == "pass"
        (pool,) = executor.pools().values()
        workers = {w.proc.pid for w in pool.live}
        first.close()
        second = Checker(OPTIONS, executor)
        assert got(second, task, tmp_path, "exception") == "runtime_error"
        assert got(second, task, tmp_path, "correct") == "pass"
        assert executor.pools() == {pool.key: pool} and {w.proc.pid for w in pool.live} == workers
        assert pool.replaced == 0
    with pytest.raises(RuntimeError, match="closed"):
        Checker(OPTIONS, executor).verify(task, write(tmp_path / "late.py", candidate_source("correct")))
