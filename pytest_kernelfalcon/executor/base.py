"""The executor seam: ``Job``, ``JobResult``, the ``Executor`` protocol, and what every executor shares.

A job's child gets its own working directory, an environment without secrets, the GPU
pinned, a new session (a timeout or a cancel kills the whole process group), and a nonce
on stdin that must come back inside ``result.pt`` (loaded with ``weights_only=True``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_kernelfalcon.core.protocol import PACKAGE_ROOT

if TYPE_CHECKING:
    pass

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
TAIL_CHARS = 4000
POLL_S = 0.05


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
    notes: tuple[str, ...] = ()  # what the harness did about the job (e.g. run again alone after out of memory)


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
    from pytest_kernelfalcon.executor.threads import bound_threads

    bound_threads(env)  # several checks on one machine share its cores instead of oversubscribing them
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


def descendants(root: int | None = None) -> list[int]:
    """Every live descendant of process ``root`` (this one by default), read from ``/proc`` (Linux; [] elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [os.getpid() if root is None else root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_descendants() -> int:
    """SIGKILL every descendant of this process (process groups of their own included); return how many."""
    killed = 0
    for _ in range(5):  # a process forking while we kill: look again
        found = descendants()
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        for pid in found:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
    return killed


def read_tail(path: Path) -> str:
    """Return the last few thousand characters of a log file ("" if unreadable)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - TAIL_CHARS))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


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


