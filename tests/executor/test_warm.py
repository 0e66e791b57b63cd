"""WarmExecutor with real worker processes: same results as the cold path, reuse, no leaks or zombies."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from samples import alive, import_job, read_json, uid_processes, zombies_of

from pytest_kernelfalcon.checker.judge import job_failure
from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.executor.base import Job, JobResult


def run(warm: Any, jobdir: Path, body: str, timeout: float = 30.0,
        cancel: threading.Event | None = None) -> JobResult:
    """Run a no-trial candidate job whose import runs ``body``."""
    result: JobResult = warm.run(Job(import_job(jobdir, body), timeout, "cpu"), cancel)
    return result


def category(result: JobResult) -> Category | None:
    """The judged category of a job's end (None: clean)."""
    verdict = job_failure(result, "candidate")
    return verdict.category if verdict else None


@pytest.mark.parametrize(("body", "expected", "detail"), [
    ("class ModelNew: pass\n", None, ""),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", Category.CRASH, "SIGSEGV"),
    ("import os\nprint('PASS')\nos._exit(0)\n", Category.CRASH, "early exit"),
    ("import os\nos._exit(7)\n", Category.CRASH, "code 7"),
    ("raise ValueError('at import')\n", Category.COMPILE_ERROR, "candidate.py:1: ValueError"),
    ("import torch\ntorch.save({'version': 1, 'nonce': 'x', 'error': None, 'cases': []}, 'result.pt')\n"
     "import os\nos._exit(0)\n", Category.CRASH, "nonce mismatch"),
])
def test_job_ends_judged_like_the_cold_path(warm: Any, tmp_path: Path, body: str,
                                            expected: Category | None, detail: str) -> None:
    result = run(warm, tmp_path / "job", body)
    assert category(result) == expected, result
    if expected is not None:
        assert detail in job_failure(result, "candidate").detail  # type: ignore[union-attr]


def test_timeout_and_cancel(warm: Any, tmp_path: Path) -> None:
    start = time.monotonic()
    result = run(warm, tmp_path / "a", "import time\ntime.sleep(600)\n", timeout=1.5)
    assert result.timed_out and category(result) == Category.TIMEOUT
    assert time.monotonic() - start < 10
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    result = run(warm, tmp_path / "b", "import time\ntime.sleep(600)\n", cancel=cancel)
    assert result.cancelled and category(result) == Category.CANCELLED
    assert category(run(warm, tmp_path / "c", "class ModelNew: pass\n")) is None


WHO = """
import json, os, sys, torch
json.dump({"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "cwd": os.getcwd(),
           "home": os.environ.get("HOME"), "leak_attr": hasattr(torch, "kf_leak"),
           "leak_module": "kf_leak_module" in sys.modules, "leak_env": os.environ.get("KF_LEAK"),
           "secret": [k for k in os.environ if "KEY" in k]}, open("who.json", "w"))
torch.kf_leak = 1
sys.modules["kf_leak_module"] = sys
os.environ["KF_LEAK"] = "1"
keep = torch.ones(1 << 20)
class ModelNew: pass
"""


def test_each_job_is_a_fresh_process_of_a_reused_worker(warm: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", "sk-fake")
    seen = []
    for k in range(4):
        assert category(run(warm, tmp_path / str(k), WHO)) is None
        seen.append(read_json(tmp_path / str(k) / "who.json"))
    assert len({s["pid"] for s in seen}) == 4
    assert len({s["ppid"] for s in seen}) <= 2  # two long-lived workers served four jobs
    for k, s in enumerate(seen):
        assert not (s["leak_attr"] or s["leak_module"] or s["leak_env"]), s
        assert s["secret"] == [] and s["cwd"] == s["home"] == str(tmp_path / str(k))
        if os.geteuid() == 0:
            assert s["uid"] != 0


def test_concurrent_callers_share_the_pool(warm: Any, tmp_path: Path) -> None:
    results: list[JobResult] = []
    body = "import time\ntime.sleep(0.5)\nclass ModelNew: pass\n"

    def call(k: int) -> None:
        results.append(run(warm, tmp_path / str(k), body))

    threads = [threading.Thread(target=call, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and all(category(r) is None for r in results)



ESCAPE_SIMPLE = """
import os, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        time.sleep(600)
    os._exit(0)
open("escaped.pid", "w").write(os.read(r, 32).decode())
class ModelNew: pass
"""


def test_escaped_descendants_are_killed_and_nothing_is_left(warm: Any, tmp_path: Path) -> None:
    assert category(run(warm, tmp_path / "job", ESCAPE_SIMPLE)) is None
    pid = int((tmp_path / "job" / "escaped.pid").read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    workers = {w.proc.pid for p in warm.pools().values() for w in p.live}
    assert zombies_of(workers | {os.getpid()}) == []
    for pool in warm.pools().values():
        for worker in pool.live:
            if worker.uid is not None:
                assert uid_processes(worker.uid) == []


def test_a_killed_worker_is_replaced(warm: Any, tmp_path: Path) -> None:
    pool = next(iter(warm.pools().values()))
    victims = [w for w in list(pool.live) if w.alive()]
    for worker in victims:
        os.kill(worker.proc.pid, 9)
    for k in range(3):
        assert category(run(warm, tmp_path / str(k), "class ModelNew: pass\n")) is None
    assert len([w for w in pool.live if w.alive()]) == 2


def _cwd_under(top: str) -> list[int]:
    """Live processes whose working directory is under ``top`` (deleted or not)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(top):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_closing_while_workers_start_leaves_no_process() -> None:
    from pytest_kernelfalcon.executor.warm import WarmExecutor

    for _ in range(3):
        executor = WarmExecutor(pool_size=2, device="cpu", mode="once")  # 4 workers start in the background
        home = str(executor.home)
        executor.close()
        deadline = time.monotonic() + 60
        while any(t.name.startswith("kf-spawn-") for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cwd_under(home) == []  # a worker started while the pool closed was ended, not left running
        assert zombies_of({os.getpid()}) == []


def test_a_job_that_ended_before_a_late_look_is_judged_by_its_end(tmp_path: Path) -> None:
    """The harness looks only after the deadline (a loaded machine scheduled it late), but the job had
    already died by SIGSEGV: that is how it ended (a crash), not a timeout."""
    import secrets
    import select
    import signal

    from pytest_kernelfalcon.core.isolation import IsolationPolicy
    from pytest_kernelfalcon.executor.warm import PoolKey, Worker

    policy = IsolationPolicy(drop_privileges=False, network=False, protect_harness=False)
    worker = Worker(PoolKey("cpu", None, "fork"), 0, None, policy, tmp_path)
    try:
        worker.wait_ready()
        jobdir = import_job(tmp_path / "job", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
        log_dir = tmp_path / "log"
        log_dir.mkdir()
        worker.start(Job(jobdir, 30.0, "cpu"), secrets.token_hex(16), log_dir)
        assert select.select([worker.reader.fd], [], [], 60)[0], "the worker never said how the job ended"
        assert worker.finish(time.monotonic() - 1.0, None) == ("exited", -signal.SIGSEGV)
    finally:
        worker.close()
