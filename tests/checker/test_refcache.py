"""The persistent reference cache (#17): a later checker reads the reference instead of running it,
any change to what the reference depends on misses, and an entry that is not to be trusted is
recomputed. Evidence is the jobs the executor was given (no timing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from checker_samples import CORRECT_FORWARD, RELU_TASK, write

from pytest_kernelfalcon.checker import refcache
from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
from pytest_kernelfalcon.core.verdict import Verdict
from pytest_kernelfalcon.executor.base import Job, JobResult
from pytest_kernelfalcon.executor.cold import ColdExecutor

Make = Callable[[str], Path]


class ModeLog(ColdExecutor):
    """A real cold executor that also records the mode of every job it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[str] = []

    def run(self, job: Job, cancel: threading.Event | None = None) -> JobResult:
        import torch

        self.modes.append(torch.load(job.workdir / "job.pt", weights_only=True)["mode"])
        return super().run(job, cancel)


def check(task: Path, cand: Path, store: Path, **opts: Any) -> tuple[list[str], dict[str, float], Checker]:
    """Verify once with a fresh checker (as a new process would); return the job modes and timings."""
    options = CheckOptions(**{"device": "cpu", "shapes": "official", "seeds": 2, "timeout_s": 60.0,
                              "reference_cache": str(store), **opts})
    log = ModeLog()
    checker = Checker(options, log)
    try:
        verdict = checker.verify(task, cand)
    finally:
        checker.close()
    assert verdict.passed, verdict.detail
    return log.modes, verdict.timings, checker


@pytest.fixture
def task(tmp_path: Path) -> Path:
    (tmp_path / "task").mkdir()
    return write(tmp_path / "task" / "relu.py", RELU_TASK.format(dist="randn"))


def entries(store: Path) -> list[Path]:
    return sorted(store.glob("*.pt"))


def test_second_checker_reads_the_stored_reference(task: Path, candidate: Make, tmp_path: Path) -> None:
    cand, store = candidate(CORRECT_FORWARD), tmp_path / "store"
    modes, timings, first = check(task, cand, store)
    assert modes == ["reference", "candidate"] and timings["reference_cached"] == 0.0
    assert first.store is not None and first.store.stats.writes == 1
    assert oct(store.stat().st_mode & 0o777) == "0o700" and len(entries(store)) == 1
    assert oct(entries(store)[0].stat().st_mode & 0o777) == "0o600"
    modes, timings, second = check(task, cand, store)
    assert modes == ["candidate"] and timings["reference_cached"] == 1.0
    assert second.store is not None and second.store.stats.hits == 1


def test_a_stored_reference_keeps_the_task_facts(task: Path, candidate: Make, tmp_path: Path) -> None:
    from pytest_kernelfalcon.checker.options import Reference
    from pytest_kernelfalcon.core.facts import summarize

    cand, store, source = candidate(CORRECT_FORWARD), tmp_path / "store", task.read_text()
    computed = check(task, cand, store)[2].reference(source)
    modes, _, second = check(task, cand, store)
    cached = second.reference(source)
    assert modes == ["candidate"] and isinstance(computed, Reference) and isinstance(cached, Reference)
    assert cached.cached and not computed.cached
    assert [c.facts for c in cached.cases] == [c.facts for c in computed.cases] and cached.cases[0].facts["repeat"]
    facts = summarize(cached.cases, cached.probes)
    assert facts == summarize(computed.cases, computed.probes)
    assert facts.input_kinds == ["float"] and facts.output_count == 1 and facts.reference_s is not None


@pytest.mark.parametrize("change", ["task source", "seeds", "seed", "shapes"])
def test_what_the_reference_depends_on_misses(task: Path, candidate: Make, tmp_path: Path, change: str) -> None:
    cand, store = candidate(CORRECT_FORWARD), tmp_path / "store"
    check(task, cand, store)
    opts: dict[str, dict[str, Any]] = {"seeds": {"seeds": 3}, "seed": {"seed": 7}, "shapes": {"shapes": "scaled"}}
    if change == "task source":
        task.write_text(task.read_text() + "\n# edited\n")
    modes, timings, _ = check(task, cand, store, **opts.get(change, {}))
    assert modes == ["reference", "candidate"] and timings["reference_cached"] == 0.0
    assert len(entries(store)) == 2


def _damage(entry: Path, how: str) -> None:
    if how == "corrupt":
        entry.write_bytes(entry.read_bytes()[:100])
    elif how == "group-writable":
        entry.chmod(0o664)
    elif how == "foreign-owned":
        os.chown(entry, 54321, 54321)
    elif how == "link":
        real = entry.with_name("elsewhere.bin")
        entry.rename(real)
        entry.symlink_to(real)


@pytest.mark.parametrize("how", ["corrupt", "group-writable", "foreign-owned", "link"])
def test_untrusted_entry_is_recomputed(task: Path, candidate: Make, tmp_path: Path, how: str) -> None:
    if how == "foreign-owned" and os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    cand, store = candidate(CORRECT_FORWARD), tmp_path / "store"
    check(task, cand, store)
    (entry,) = entries(store)
    _damage(entry, how)
    modes, timings, checker = check(task, cand, store)
    assert modes == ["reference", "candidate"] and timings["reference_cached"] == 0.0
    assert checker.store is not None and checker.store.stats.rejected and checker.store.stats.hits == 0
    assert checker.store.stats.writes == 1  # replaced by a good entry
    modes, _, _ = check(task, cand, store)
    assert modes == ["candidate"]


def test_entry_of_another_key_is_not_trusted(task: Path, candidate: Make, tmp_path: Path) -> None:
    """An entry renamed to the name of another key (e.g. copied by someone) is ignored."""
    cand, store = candidate(CORRECT_FORWARD), tmp_path / "store"
    check(task, cand, store, seed=1)
    (one,) = entries(store)
    check(task, cand, store, seed=2)
    other = next(p for p in entries(store) if p != one)
    one.replace(other)  # seed 2's name now holds seed 1's reference
    modes, _, checker = check(task, cand, store, seed=2)
    assert modes == ["reference", "candidate"]
    assert checker.store is not None and any("not the entry of this key" in r for r in checker.store.stats.rejected)


def test_a_directory_others_may_write_is_not_used(task: Path, candidate: Make, tmp_path: Path) -> None:
    cand, store = candidate(CORRECT_FORWARD), tmp_path / "store"
    store.mkdir(mode=0o777)
    store.chmod(0o777)
    check(task, cand, store)
    modes, _, checker = check(task, cand, store)
    assert modes == ["reference", "candidate"] and entries(store) == []
    assert checker.store is not None and not checker.store.usable()


def test_concurrent_writers_leave_one_complete_entry(tmp_path: Path) -> None:
    import torch

    store = refcache.ReferenceStore(tmp_path / "store")
    key = {"format": 1, "task_sha256": "x"}
    payloads = [{"cases": [], "value": torch.full((1 << 16,), float(i))} for i in range(6)]
    threads = [threading.Thread(target=store.save, args=(key, p, False)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.name for p in (tmp_path / "store").iterdir() if not p.name.endswith(".lock")] == [store.path(key).name]
    loaded = store.load(key)
    assert loaded is not None and torch.equal(loaded["value"], torch.full((1 << 16,), loaded["value"][0].item()))


def test_auto_and_off() -> None:
    assert refcache.open_store("off", True) is None and refcache.open_store(None, True) is None
    assert refcache.open_store("auto", False) is None  # candidates of this uid could read or write it
    assert refcache.open_store("auto", True) is not None
    assert refcache.candidates_own_uid(ColdExecutor()) is False


def test_fuzz_is_not_stored(task: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    options = CheckOptions(device="cpu", shapes="fuzz", seeds=1, seed=5, timeout_s=60.0, reference_cache=str(store))
    checker = Checker(options, ColdExecutor())
    try:
        checker.reference(task.read_text())
    finally:
        checker.close()
    assert entries(store) == []


def test_cli_second_verify_does_not_rerun_the_reference(task: Path, candidate: Make, tmp_path: Path) -> None:
    """Two one-shot ``kernelfalcon verify`` processes sharing ``--reference-cache DIR``."""
    cand, store = candidate(CORRECT_FORWARD), tmp_path / "store"
    cmd = [sys.executable, "-m", "pytest_kernelfalcon.cli", "verify", str(task), str(cand), "--json",
           "--device", "cpu", "--seeds", "2", "--reference-cache", str(store)]
    cached = []
    for _ in range(2):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        cached.append(json.loads(done.stdout.strip().splitlines()[-1])["timings"]["reference_cached"])
    assert cached == [0.0, 1.0]
    off = subprocess.run([*cmd[:-1], "off"], capture_output=True, text=True, timeout=300)
    assert json.loads(off.stdout.strip().splitlines()[-1])["timings"]["reference_cached"] == 0.0


def test_default_profile_round_trips_its_joined_plans(task: Path, candidate: Make, tmp_path: Path) -> None:
    """The default profile joins several reference jobs: the stored entry rebuilds the same plans and case
    indices, and another base seed (other draws) is another entry."""
    cand, store = candidate(CORRECT_FORWARD), tmp_path / "store"
    modes, _, first = check(task, cand, store, shapes="default")
    assert modes.count("reference") >= 2 and modes[-1] == "candidate"
    made = first.reference(task.read_text())
    modes, timings, second = check(task, cand, store, shapes="default")
    assert modes == ["candidate"] and timings["reference_cached"] == 1.0
    read = second.reference(task.read_text())
    assert not isinstance(made, Verdict) and not isinstance(read, Verdict) and read.cached
    assert [c.index for c in read.cases] == [c.index for c in made.cases] and len(read.cases) >= 2
    assert [read.plan_of(c) for c in read.cases] == [made.plan_of(c) for c in made.cases]
    modes, _, _ = check(task, cand, store, shapes="default", seed=7)
    assert modes.count("reference") >= 2 and len(entries(store)) == 2
