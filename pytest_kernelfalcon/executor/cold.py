"""``ColdExecutor``: a fresh ``python -m pytest_kernelfalcon.child JOBDIR`` per job; nothing survives."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.executor.base import (
    POLL_S,
    Job,
    JobResult,
    kill_group,
    load_report,
    read_tail,
    scrubbed_env,
)

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.isolation import IsolationPolicy



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
            from pytest_kernelfalcon.core.isolation import protect_process

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
                if proc.returncode != -signal.SIGKILL:  # it ended by itself before the kill landed
                    how = "exited"
                self._release(iso_args, uid)
            wall = time.monotonic() - start
            tail = read_tail(err_path)
        if how != "exited":
            return JobResult(None, how == "timeout", how == "cancelled", tail, wall, None, None)
        report, error = load_report(job.workdir / "result.pt", nonce)
        return JobResult(proc.returncode, False, False, tail, wall, report, error)

    def close(self) -> None:
        """Nothing to release: every process ends with its job."""
