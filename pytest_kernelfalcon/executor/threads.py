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
import functools
import os
import tempfile
from pathlib import Path

from pytest_kernelfalcon.core.protocol import THREADS_ENV

FOLDER = "kernelfalcon-harnesses"


def _folder() -> Path:
    path = Path(tempfile.gettempdir()) / FOLDER
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@functools.cache  # once per process; the handle stays open (and locked) for the process's life
def _register() -> object:
    handle = open(_folder() / f"{os.getpid()}.lock", "a")  # noqa: SIM115 - held for life
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


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
