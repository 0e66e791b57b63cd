"""``WarmExecutor``: checker jobs on pre-started workers that already imported torch and triton.

A pool of ``child.warm_worker`` processes per (device, isolation) forks one process per job,
so every job still gets a fresh process; the harness owns every deadline, kills and
replaces workers, and gives the same ``JobResult`` as ``ColdExecutor`` (its fallback when a
worker cannot start). Design: docs/ARCHITECTURE.md ("The warm executor").
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pytest_kernelfalcon.core.isolation import (
    DEFAULT_POLICY,
    IsolationPolicy,
    IsolationReport,
    protect_process,
)
from pytest_kernelfalcon.executor import isolation as iso
from pytest_kernelfalcon.executor.base import (
    POLL_S,
    Job,
    JobResult,
    load_report,
    scrubbed_env,
)
from pytest_kernelfalcon.executor.base import read_tail as tail_of
from pytest_kernelfalcon.executor.cold import ColdExecutor
from pytest_kernelfalcon.executor.deadline import waiting

READY_TIMEOUT_S = 600.0
START_TIMEOUT_S = 60.0
KILL_GRACE_S = 30.0
COLD_FIRST_SLOT = 900  # the cold fallback's uids never meet a pool's (pools use slots below)


class WorkerLost(Exception):
    """The worker stopped answering; ``started`` says whether the job had begun."""

    def __init__(self, message: str, started: bool) -> None:
        super().__init__(message)
        self.started = started


class LineReader:
    """Reads lines from a pipe with a deadline and a cancel event (no reader thread)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def readline(self, deadline: float, cancel: threading.Event | None = None) -> str | None:
        """Return the next line, ``""`` at EOF, or None when the deadline passes or cancel is set.

        What already came is read before the clock is looked at: a reader scheduled late on a
        loaded machine still gets the line written in time."""
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, min(
                POLL_S if cancel is not None else 1.0, deadline - time.monotonic())))
            if ready:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    return ""
                self.buffer += chunk
            elif (cancel is not None and cancel.is_set()) or time.monotonic() >= deadline:
                return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace")


@dataclass(frozen=True)
class PoolKey:
    """Which worker pool serves a job: its device, pinned GPU and worker mode."""

    device: str
    gpu: str | None
    mode: str


class Worker:
    """One started worker process and the pipes to it."""

    def __init__(self, key: PoolKey, slot: int, uid: int | None, policy: IsolationPolicy, home: Path) -> None:
        self.key, self.slot, self.uid, self.policy = key, slot, uid, policy
        self.home = Path(tempfile.mkdtemp(prefix=f"kf-worker-{slot}-", dir=home))
        env = scrubbed_env(dict(os.environ), Job(self.home, 0.0, key.device, key.gpu))
        if key.device == "cuda" and key.mode == "fork":
            env["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # is_available() must not init CUDA before fork
        self.log = open(self.home / "worker.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_kernelfalcon.child.warm_worker", "--mode", key.mode, "--device", key.device],
            cwd=self.home, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self.reader = LineReader(self.proc.stdout.fileno())

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until the worker says ``ready``; raise ``WorkerLost`` otherwise."""
        line = self.reader.readline(time.monotonic() + timeout_s)
        if not (line or "").startswith("ready"):
            self.close()
            raise WorkerLost(f"worker did not start: {tail_of(self.home / 'worker.log')[-800:]}", False)

    def _send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def start(self, job: Job, nonce: str, log_dir: Path, cancel: threading.Event | None = None) -> int:
        """Send the request; return the pid running it (raise ``WorkerLost`` if the worker is gone or ``cancel``
        is set before it answers)."""
        req = {"workdir": str(job.workdir), "timeout_s": job.timeout_s, "nonce": nonce, "log_dir": str(log_dir),
               "env": scrubbed_env(dict(os.environ), job), "uid": self.uid, "policy": asdict(self.policy)}
        try:
            self._send(json.dumps(req).encode() + b"\n")
        except OSError as exc:
            raise WorkerLost(f"worker pipe closed: {exc}", False) from exc
        line = self.reader.readline(time.monotonic() + START_TIMEOUT_S, cancel)
        if not (line or "").startswith("started "):
            raise WorkerLost(f"worker did not start the job (said {line!r})", False)
        return int((line or "").split()[1])

    def finish(self, deadline: float, cancel: threading.Event | None) -> tuple[str, int | None]:
        """Wait for the job's end: ("exited", rc), ("timeout"|"cancelled", None); kill on the latter.

        "timeout" and "cancelled" mean that this kill ended the job: one that ended by itself
        before the kill landed (its code is not SIGKILL's) is "exited" with its own code."""
        if self.key.mode == "once":
            return self._finish_once(deadline, cancel)
        line = self.reader.readline(deadline, cancel)
        if line is None:
            how = "cancelled" if cancel is not None and cancel.is_set() else "timeout"
            self.kill_job()
            line = self.reader.readline(time.monotonic() + KILL_GRACE_S)
            if not (line or "").startswith("exited"):
                raise WorkerLost("worker did not answer after the kill", True)
            code = int((line or "").split()[1])
            return (how, None) if code == -signal.SIGKILL else ("exited", code)
        if not line.startswith("exited "):
            raise WorkerLost(f"worker died during the job (said {line!r})", True)
        return "exited", int(line.split()[1])

    def _finish_once(self, deadline: float, cancel: threading.Event | None) -> tuple[str, int | None]:
        while self.proc.poll() is None:
            if cancel is not None and cancel.is_set():
                self.close()
                return "cancelled", None
            if time.monotonic() >= deadline:
                self.close()
                return "timeout", None
            time.sleep(POLL_S)
        self.close()
        return "exited", self.proc.returncode

    def kill_job(self) -> None:
        """Ask the worker to kill its current job (the worker still holds the unreaped pid)."""
        with contextlib.suppress(OSError):
            self._send(b"k")
        if self.key.mode == "once":
            self.close()

    def sweep(self) -> None:
        """Kill whatever still runs under this slot's uid (root only)."""
        if self.uid is not None:
            iso.kill_uid(self.uid)

    def alive(self) -> bool:
        """Whether the worker process still runs."""
        return self.proc.poll() is None

    def close(self) -> None:
        """Kill the worker's process group, reap it and its descendants' uid, remove its home."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, 9)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]
        self.log.close()
        self.sweep()
        shutil.rmtree(self.home, ignore_errors=True)


def _job_result(job: Job, how: str, rc: int | None, nonce: str, log_dir: Path, wall: float) -> JobResult:
    tail = tail_of(log_dir / "stderr")
    if how != "exited":
        return JobResult(None, how == "timeout", how == "cancelled", tail, wall, None, None)
    report, error = load_report(job.workdir / "result.pt", nonce)
    return JobResult(rc, False, False, tail, wall, report, error)


def _lost_result(job: Job, exc: WorkerLost, nonce: str, log_dir: Path, wall: float) -> JobResult:
    report, error = load_report(job.workdir / "result.pt", nonce)
    why = f"warm worker lost during the job: {exc}"
    return JobResult(None, False, False, tail_of(log_dir / "stderr"), wall, report, f"{why}; {error or ''}")


class Pool:
    """Workers of one ``PoolKey``: at most ``size`` jobs at once, replacements started in the background."""

    def __init__(self, key: PoolKey, size: int, spares: int, policy: IsolationPolicy, home: Path,
                 fallback: ColdExecutor, first_slot: int = 0) -> None:
        self.key, self.policy, self.home, self.fallback = key, policy, home, fallback
        self.ready: queue.Queue[tuple[int, Worker | str]] = queue.Queue()
        self.gate = threading.Semaphore(size)
        self.lock = threading.Lock()
        self.live: set[Worker] = set()
        self.closed = False
        self.replaced = 0
        self.size = size
        for slot in range(first_slot, first_slot + size + spares):
            self.spawn(slot)

    def spawn(self, slot: int) -> None:
        """Start a worker for ``slot`` in the background; it joins the ready queue when ready."""
        threading.Thread(target=self._spawn, args=(slot,), name=f"kf-spawn-{slot}", daemon=True).start()

    def _spawn(self, slot: int) -> None:
        try:
            worker = Worker(self.key, slot, iso.candidate_uid(self.policy, slot), self.policy, self.home)
            with self.lock:
                closed = self.closed
                if not closed:
                    self.live.add(worker)
            if closed:  # started while the pool closed: close() did not see it, so it is ended (and reaped) here
                worker.close()
                raise WorkerLost("pool closed", False)
            worker.wait_ready()
        except (WorkerLost, OSError) as exc:
            self.ready.put((slot, str(exc)))
            return
        self.ready.put((slot, worker))

    def _take(self, cancel: threading.Event | None) -> tuple[int, Worker | str] | None:
        while not (cancel is not None and cancel.is_set()):
            with contextlib.suppress(queue.Empty):
                return self.ready.get(timeout=POLL_S * 4)
        return None

    def retire(self, worker: Worker) -> None:
        """Close ``worker`` and start its replacement (unless the pool is closed)."""
        worker.close()
        with self.lock:
            self.live.discard(worker)
            closed = self.closed
            self.replaced += 1
        if not closed:
            self.spawn(worker.slot)

    def _give_back(self, worker: Worker, reusable: bool) -> None:
        with self.lock:
            keep = reusable and not self.closed and self.key.mode == "fork" and worker.alive()
        if keep:
            self.ready.put((worker.slot, worker))
        else:
            self.retire(worker)

    def _enter(self, cancel: threading.Event | None) -> bool:
        """Take one of the pool's ``size`` places (False when ``cancel`` is set first)."""
        with waiting(cancel, "a free warm worker slot (the pool's other jobs are running)"):
            while not self.gate.acquire(timeout=POLL_S * 4):
                if cancel is not None and cancel.is_set():
                    return False
        return True

    def run(self, job: Job, cancel: threading.Event | None) -> JobResult:
        """Run ``job`` on a ready worker (retrying once if a worker is lost before the job starts)."""
        if not self._enter(cancel):
            return JobResult(None, False, True, "", 0.0, None, None)
        try:
            return self._run_entered(job, cancel)
        finally:
            self.gate.release()

    def _run_entered(self, job: Job, cancel: threading.Event | None) -> JobResult:
        for _ in range(2):
            with waiting(cancel, "a warm worker to start (importing torch and triton)"):
                got = self._take(cancel)
            if got is None:
                return JobResult(None, False, True, "", 0.0, None, None)
            slot, worker = got
            if isinstance(worker, str):  # the worker did not start: this job runs cold
                self.spawn(slot)
                return self.fallback.run(job, cancel)
            try:
                result, reusable = self._run_on(worker, job, cancel)
            except WorkerLost:
                self.retire(worker)
                continue
            self._give_back(worker, reusable)
            return result
        return self.fallback.run(job, cancel)

    def _run_on(self, worker: Worker, job: Job, cancel: threading.Event | None) -> tuple[JobResult, bool]:
        nonce = secrets.token_hex(16)
        log_dir = Path(tempfile.mkdtemp(prefix="kf-log-", dir=self.home))
        start = time.monotonic()
        try:
            worker.start(job, nonce, log_dir, cancel)
            try:
                how, rc = worker.finish(start + job.timeout_s, cancel)
            except WorkerLost as exc:
                worker.sweep()
                return _lost_result(job, exc, nonce, log_dir, time.monotonic() - start), False
            worker.sweep()
            return _job_result(job, how, rc, nonce, log_dir, time.monotonic() - start), True
        finally:
            shutil.rmtree(log_dir, ignore_errors=True)

    def close(self) -> None:
        """Kill every worker of this pool (idle or busy)."""
        with self.lock:
            self.closed = True
            workers = list(self.live)
            self.live.clear()
        for worker in workers:
            worker.close()


class WarmExecutor:
    """Runs checker jobs on warm worker pools, one pool per (device, GPU); see the module docstring."""

    def __init__(self, pool_size: int = 1, device: str = "cpu", gpu: str | None = None,
                 isolation: IsolationPolicy | None = DEFAULT_POLICY, mode: str = "auto",
                 spares: int | None = None) -> None:
        if pool_size < 1 or mode not in ("auto", "fork", "once"):
            raise ValueError("pool_size must be >= 1 and mode one of auto, fork, once")
        self.policy = isolation or IsolationPolicy(drop_privileges=False, network=False, protect_harness=False)
        self.pool_size, self.mode, self.spares = pool_size, mode, spares
        if self.policy.protect_harness:
            protect_process()
        self.isolation_report: IsolationReport = iso.probe(self.policy)
        self.home = Path(tempfile.mkdtemp(prefix="kf-warm-"))
        self.fallback = ColdExecutor(isolation=self.policy, first_slot=COLD_FIRST_SLOT)
        self._next_slot = 0
        self._pools: dict[PoolKey, Pool] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._pool(self._key(_resolve(device), gpu))

    def _key(self, device: str, gpu: str | None) -> PoolKey:
        mode = self.mode if self.mode != "auto" else "fork"
        return PoolKey(device, gpu, mode)

    def _pool(self, key: PoolKey) -> Pool:
        with self._lock:
            if self._closed:  # its home is gone: a new pool could not start, and jobs would silently run cold
                raise RuntimeError("this WarmExecutor is closed; make a new one")
            if key not in self._pools:
                spares = self.spares if self.spares is not None else (self.pool_size if key.mode == "once" else 0)
                self._pools[key] = Pool(key, self.pool_size, spares, self.policy, self.home, self.fallback,
                                        self._next_slot)
                self._next_slot += self.pool_size + spares
            return self._pools[key]

    def run(self, job: Job, cancel: threading.Event | None = None) -> JobResult:
        """Run ``job`` on a warm worker of its (device, GPU) pool; same results as ``ColdExecutor``."""
        return self._pool(self._key(job.device, job.gpu)).run(job, cancel)

    def pools(self) -> dict[PoolKey, Pool]:
        """Return the pools started so far (for health checks and benchmarks)."""
        with self._lock:
            return dict(self._pools)

    def close(self) -> None:
        """Kill every worker and remove the executor's temporary files."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> WarmExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve(device: str) -> str:
    from pytest_kernelfalcon.core.gpus import resolve_device

    return resolve_device(device)
