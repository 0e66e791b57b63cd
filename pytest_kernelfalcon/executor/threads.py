"""Each job's share of the CPU threads: the cores divided among the checker processes running now.

Several checks on one machine (``kernelfalcon verify`` commands side by side, xdist workers) each
start torch children whose intra-op pools default to every core; four of them on 16 cores run 64
threads and slow each other down. Every harness process registers itself here (an ``flock`` held on
its own file, released by the kernel when it exits) and gives each job ``cores // harnesses``
threads (``KERNELFALCON_THREADS``, and ``OMP_NUM_THREADS`` unless the user set it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from pathlib import Path

from pytest_kernelfalcon.core.protocol import THREADS_ENV

FOLDER = "kernelfalcon-harnesses"


def _folder() -> Path:
    path = Path(tempfile.gettempdir()) / FOLDER
    path.mkdir(mode=0o700, exist_ok=True)
    return path


_REGISTRATION: dict[int, object] = {}  # pid -> the open, locked handle (held for the process's life)
_REGISTERING = threading.Lock()


def _fresh_lock_after_fork() -> None:
    global _REGISTERING  # a fork taken while another thread held it would leave the child's copy held
    _REGISTERING = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_after_fork)


def _register() -> object:
    """Register this process once, whichever of its threads asks first (the others wait for that one).

    Two threads that each opened the file and took ``LOCK_EX`` would hold two open file
    descriptions of one file: the second waits on the first forever (issue 22). One lock in the
    process and a non-blocking ``flock`` on its own file make that impossible; a forked child
    (another pid) registers itself anew."""
    pid = os.getpid()
    with _REGISTERING:
        if pid not in _REGISTRATION:
            handle = open(_folder() / f"{pid}.lock", "a")  # noqa: SIM115 - held for life
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # our own pid's file: nobody else holds it
            except OSError:
                handle.close()
                raise
            _REGISTRATION[pid] = handle
        return _REGISTRATION[pid]


def live_harnesses() -> int:
    """How many harness processes (this one included) hold their registration now; stale files go
    (1 when the registry cannot be used, e.g. a folder of another user)."""
    try:
        _register()
        return _count()
    except OSError:
        return 1


def _count() -> int:
    count = 0
    for path in _folder().glob("*.lock"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            count += 1  # held: a live harness (this one too: another open file of it)
        else:
            with contextlib.suppress(OSError):
                path.unlink()  # its process is gone
        finally:
            os.close(fd)
    return max(1, count)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def thread_share() -> int:
    """Threads one job may use now: the cores divided by the live harness processes (at least 1)."""
    return max(1, cores() // live_harnesses())


def bound_threads(env: dict[str, str]) -> None:
    """Set a job environment's thread share (``OMP_NUM_THREADS`` only where the user left it unset)."""
    share = str(thread_share())
    env[THREADS_ENV] = share
    env.setdefault("OMP_NUM_THREADS", share)
