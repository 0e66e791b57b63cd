"""Isolation records and process primitives both sides use: the policy, the report, prctl helpers."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


PR_SET_DUMPABLE = 4


PR_SET_CHILD_SUBREAPER = 36


PR_SET_NO_NEW_PRIVS = 38


class IsolationError(RuntimeError):
    """A required isolation step failed; the job must not run."""


@dataclass(frozen=True)
class IsolationPolicy:
    """What to apply to a process that runs untrusted code."""

    drop_privileges: bool = True  # as root: run as an unprivileged uid (uid_base + slot)
    uid_base: int = 64000
    network: bool = True  # a new network namespace (no connectivity)
    nproc: int = 512  # RLIMIT_NPROC for the job's uid (threads count too)
    protect_harness: bool = True  # make harness processes non-dumpable

    def to_json(self) -> str:
        """Return the policy as a JSON string (for a child's command line or a request)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> IsolationPolicy:
        """Parse a policy written by ``to_json``."""
        return cls(**json.loads(text))


DEFAULT_POLICY = IsolationPolicy()


@dataclass(frozen=True)
class IsolationReport:
    """What isolation a process got: the steps applied, and each missing step with its reason."""

    applied: tuple[str, ...]
    missing: tuple[tuple[str, str], ...]
    uid: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict for the run record."""
        return {"applied": list(self.applied), "missing": [list(m) for m in self.missing], "uid": self.uid}

    def describe(self) -> str:
        """Return one line: applied steps, then missing ones with reasons."""
        gone = "; ".join(f"{what}: {why}" for what, why in self.missing)
        return f"isolation: {', '.join(self.applied) or 'none'}" + (f" (not applied: {gone})" if gone else "")


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def protect_process() -> bool:
    """Make this process non-dumpable (no same-uid ptrace or /proc/<pid>/environ); True if done."""
    try:
        _prctl(PR_SET_DUMPABLE, 0)
    except OSError:
        return False
    return True


def allow_dumps() -> None:
    """Make this process dumpable again (a forked candidate's process: the comparer maps its memory)."""
    with contextlib.suppress(OSError):
        _prctl(PR_SET_DUMPABLE, 1)


def keep_only_fds(keep: tuple[int, ...]) -> None:
    """Point 0, 1, 2 at /dev/null and close every other fd but ``keep`` (a fork drops what its parent held)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own fd, closed already
                os.close(fd)


def set_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (so none escape it); True if done."""
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        return False
    return True


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (best effort)."""
    with contextlib.suppress(OSError):
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def is_root() -> bool:
    """Whether this process runs with effective uid 0."""
    return os.geteuid() == 0


def status_uid(proc_dir: Path) -> int | None:
    """Return the real uid of a live (non-zombie) process, or None."""
    try:
        status = (proc_dir / "status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    if fields.get("State", "").startswith(("Z", "X")):
        return None
    uids = fields.get("Uid", "").split()
    return int(uids[0]) if uids else None


def children_of(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid`` (zombies included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found
