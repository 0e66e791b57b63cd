"""Run one checker job (reference or candidate) in an isolated child process.

``ColdExecutor`` starts a fresh ``python -m pytest_kernelfalcon.child JOBDIR`` per
job: its own working directory, an environment without secrets, the GPU pinned, a
new session so a timeout or a cancel kills the whole process group, a nonce on
stdin that must come back inside ``result.pt`` (loaded with ``weights_only=True``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytest_kernelfalcon.executor.isolation import IsolationPolicy

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
TAIL_CHARS = 4000
POLL_S = 0.05
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    """One job directory (holding ``job.pt`` and its sources) and how to run it."""

    workdir: Path
    timeout_s: float
    device: str
    gpu: str | None = None


@dataclass(frozen=True)
class JobResult:
    """How a job's process ended and what it reported (``report`` is ``result.pt``, validated)."""

    returncode: int | None
    timed_out: bool
    cancelled: bool
    stderr_tail: str
    wall_s: float
    report: dict[str, Any] | None
    report_error: str | None


class Executor(Protocol):
    """Runs checker jobs; implementations differ in how processes are started and reused."""

    def run(self, job: Job, cancel: threading.Event | None = None) -> JobResult:
        """Run ``job`` to completion (or timeout / cancel) and return how it ended."""
        ...

    def close(self) -> None:
        """Release any processes or resources the executor holds."""
        ...


def shared_compile_cache() -> str:
    """Return the shared Triton cache folder; sticky and world-writable so each job uid can make its own below."""
    path = os.path.join(tempfile.gettempdir(), "kernelfalcon-triton-cache")
    os.makedirs(path, exist_ok=True)
    with contextlib.suppress(OSError):  # not ours: whoever made it decided
        os.chmod(path, 0o1777)
    return path


def scrubbed_env(base: dict[str, str], job: Job) -> dict[str, str]:
    """Return the child's environment: secrets dropped, HOME in the job dir, GPU pinned."""
    env = {k: v for k, v in base.items() if not any(m in k.upper() for m in SECRET_MARKERS)}
    env["HOME"] = str(job.workdir)
    # one compile cache for all candidates (HOME moved, so Triton's default would recompile every job)
    env["TRITON_CACHE_DIR"] = base.get("TRITON_CACHE_DIR") or shared_compile_cache()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), base.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if job.device == "cpu":
        env["TRITON_INTERPRET"] = "1"
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        env.pop("TRITON_INTERPRET", None)
        if job.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = job.gpu
    return env


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group led by ``proc`` (grandchildren included) and reap ``proc``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - TAIL_CHARS))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def read_tail(path: Path) -> str:
    """Return the last few thousand characters of a log file ("" if unreadable; used by warm.py)."""
    return _tail(path)


def load_report(path: Path, nonce: str) -> tuple[dict[str, Any] | None, str | None]:
    """Load ``result.pt`` weights-only and check its nonce; return (report, error)."""
    import torch

    if not path.is_file():
        return None, "no result.pt was written"
    try:
        report = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable or non-weights-only content
        return None, f"result.pt is not a valid weights-only file: {type(exc).__name__}: {exc}"
    if not isinstance(report, dict):
        return None, "result.pt does not hold a dict"
    if report.get("nonce") != nonce:
        return None, "result.pt nonce mismatch (not written by the checker's child code)"
    return report, None


def _wait(proc: subprocess.Popen[bytes], timeout_s: float, cancel: threading.Event | None) -> str:
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            return "cancelled"
        if time.monotonic() >= deadline:
            return "timeout"
        time.sleep(POLL_S)
    return "exited"


def _send_nonce(proc: subprocess.Popen[bytes], nonce: str) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(nonce.encode() + b"\n")
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass


class ColdExecutor:
    """Starts a fresh Python process per job; nothing survives between jobs.

    With ``isolation`` (an ``isolation.IsolationPolicy``; added for the warm executor's
    issue) the child applies it before loading anything: as root each concurrent job gets
    its own uid (slots from ``first_slot``), and everything left under that uid is killed
    after the job.
    """

    def __init__(self, python: str | None = None, isolation: IsolationPolicy | None = None,
                 first_slot: int = 0) -> None:
        self.python = python or sys.executable
        self.isolation = isolation
        self._slots: list[int] = []
        self._next_slot = first_slot
        self._lock = threading.Lock()
        if isolation is not None and isolation.protect_harness:
            from pytest_kernelfalcon.executor.isolation import protect_process

            protect_process()

    def _lease(self) -> tuple[int | None, list[str]]:
        """Return this job's uid (None: no switch) and the child's isolation arguments."""
        if self.isolation is None:
            return None, []
        from pytest_kernelfalcon.executor.isolation import candidate_uid

        with self._lock:
            slot = self._slots.pop() if self._slots else self._next_slot
            self._next_slot = max(self._next_slot, slot + 1)
        uid = candidate_uid(self.isolation, slot)
        args = ["--isolation", self.isolation.to_json(), "--uid", str(uid), "--slot", str(slot)]
        return uid, args

    def _release(self, args: list[str], uid: int | None) -> None:
        if not args:
            return
        if uid is not None:
            from pytest_kernelfalcon.executor.isolation import kill_uid

            kill_uid(uid)
        with self._lock:
            self._slots.append(int(args[-1]))

    def run(self, job: Job, cancel: threading.Event | None = None) -> JobResult:
        """Run ``job`` in a new process group; kill the group on timeout or cancel."""
        nonce = secrets.token_hex(16)
        uid, iso_args = self._lease()
        with tempfile.TemporaryDirectory(prefix="kf-log-") as logs:
            out_path, err_path = Path(logs) / "stdout", Path(logs) / "stderr"
            start = time.monotonic()
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    [self.python, "-m", "pytest_kernelfalcon.child", str(job.workdir), "--timeout", str(job.timeout_s),
                     *iso_args],
                    cwd=job.workdir, env=scrubbed_env(dict(os.environ), job),
                    stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True,
                )
                _send_nonce(proc, nonce)
                how = _wait(proc, job.timeout_s, cancel)
                kill_group(proc)
                self._release(iso_args, uid)
            wall = time.monotonic() - start
            tail = _tail(err_path)
        if how != "exited":
            return JobResult(None, how == "timeout", how == "cancelled", tail, wall, None, None)
        report, error = load_report(job.workdir / "result.pt", nonce)
        return JobResult(proc.returncode, False, False, tail, wall, report, error)

    def close(self) -> None:
        """Nothing to release: every process ends with its job."""
