"""GPU memory leases across processes: the checks sharing one card never ask for more than it has.

A card (its UUID from ``nvidia-smi``, or a simulated card named by ``KERNELFALCON_SIMULATED_CARD``
for tests on a machine without one) has a folder under the temp dir, private to this euid. A
lease is a file holding its bytes, ``flock``-ed by its holder for as long as it holds it (a holder
that dies releases it with its last file descriptor). An exclusive lease (``nbytes=None``: run
alone) excludes every other. Requests are served first come, first served, by ticket, so a
request to run alone never starves behind a stream of small ones. The bookkeeping happens under
one mutex ``flock`` per card, held for a few file operations only; every wait polls the caller's
cancel event (a ``Deadline`` bounds it).

A card that reports no memory size has ``capacity`` None: every lease on it runs alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_kernelfalcon.executor.deadline import wait_until, waiting

SIMULATED_ENV = "KERNELFALCON_SIMULATED_CARD"  # "BYTES" or "NAME:BYTES": a card of that size on any device
FOLDER = "kernelfalcon-gpu-memory"
USABLE = 0.95  # of the card's memory the leases may sum to (the driver and other users keep some)
POLL_S = 0.1


@dataclass(frozen=True)
class Card:
    """One device's memory as the leases see it: a key (its folder) and what the leases may sum to."""

    key: str
    capacity: int | None  # bytes; None: the card reports nothing, so every lease runs alone
    name: str = ""


@dataclass(frozen=True)
class Lease:
    """A granted lease: its bytes (None: alone), the leases live beside it when granted, the seconds waited."""

    nbytes: int | None
    beside: int
    waited_s: float


def card_for(device: str, gpu: str | None) -> Card | None:
    """The card a job on ``device`` (pinned to ``gpu``) uses; None where no lease applies (the CPU)."""
    simulated = os.environ.get(SIMULATED_ENV)
    if simulated:
        name, _, size = simulated.rpartition(":")
        return Card(_safe(f"simulated-{name or 'card'}"), _int_or_none(size), "simulated")
    if device != "cuda":
        return None
    ident = gpu if gpu is not None else _first_visible()
    return _queried_card(ident)


def _first_visible() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return visible or "0"


@functools.lru_cache(maxsize=16)
def _queried_card(ident: str) -> Card:
    """``nvidia-smi``'s UUID and total memory of ``ident`` (an index or UUID); capacity None if it says nothing."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=uuid,memory.total,name", "--format=csv,noheader,nounits",
                              "-i", ident], capture_output=True, text=True, timeout=20, check=True).stdout
        uuid, total, name = (part.strip() for part in out.strip().splitlines()[0].split(",", 2))
        return Card(_safe(uuid), int(float(total) * (1 << 20) * USABLE), name)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return Card(_safe(f"gpu-{ident}"), None)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _int_or_none(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


class _Folder:
    """One card's lease folder: the mutex, the ticket counter, lease and wait files."""

    def __init__(self, card: Card, root: Path | None = None) -> None:
        self.card = card
        self.path = (root or Path(tempfile.gettempdir()) / FOLDER) / card.key
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def mutex(self) -> Iterator[None]:
        fd = os.open(self.path / "mutex", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held by others for a few file operations only
            yield
        finally:
            os.close(fd)

    def ticket(self) -> int:
        counter = self.path / "ticket"
        try:
            last = int(counter.read_text() or 0)
        except (OSError, ValueError):
            last = 0
        counter.write_text(str(last + 1))
        return last + 1

    def live(self, prefix: str) -> list[tuple[Path, dict[str, int | None]]]:
        """The files of ``prefix`` whose holder still holds them (stale ones removed)."""
        found = []
        for path in sorted(self.path.glob(f"{prefix}-*")):
            body = _held_body(path)
            if body is not None:
                found.append((path, body))
        return found


def _held_body(path: Path) -> dict[str, int | None] | None:
    """The file's record when a holder holds its lock; a file nobody holds is removed (None)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # held: read what the holder wrote
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads(os.pread(fd, 4096, 0) or b"{}"))
        return {}
    else:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    finally:
        os.close(fd)


def _hold(path: Path, body: dict[str, int | None]) -> int:
    """Create ``path`` holding ``body`` and keep its exclusive lock; return the open descriptor."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps(body).encode())
    return fd


def _release(fd: int, path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
    os.close(fd)


def _name() -> str:
    """A lease's file name: unique across processes and threads (no counter to share)."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


def _fits(card: Card, nbytes: int | None, leases: list[tuple[Path, dict[str, int | None]]]) -> bool:
    if not leases:
        return True
    if nbytes is None or card.capacity is None or any(b.get("bytes") is None for _, b in leases):
        return False
    return sum(int(b.get("bytes") or 0) for _, b in leases) + nbytes <= card.capacity


@contextlib.contextmanager
def lease(card: Card, nbytes: int | None, cancel: threading.Event | None = None,
          stage: str = "GPU memory (other checks hold the card)", root: Path | None = None) -> Iterator[Lease]:
    """Hold ``nbytes`` of ``card`` (None, or more than it has: the whole card) for the block.

    Waits first come, first served; ``cancel`` (a ``Deadline``) ends the wait with
    ``DeadlinePassed`` / ``WaitCancelled``."""
    folder = _Folder(card, root)
    if nbytes is not None and (card.capacity is None or nbytes > card.capacity):
        nbytes = None
    start, name = time.monotonic(), _name()
    with waiting(cancel, stage), folder.mutex():
        ticket = folder.ticket()
        waiter = _hold(folder.path / f"wait-{ticket:012d}-{name}", {"ticket": ticket})
    granted: list[tuple[int, int]] = []

    def try_grant() -> bool:
        with folder.mutex():
            older = [p for p, b in folder.live("wait") if int(b.get("ticket") or 0) < ticket]
            leases = folder.live("lease")
            if older or not _fits(card, nbytes, leases):
                return False
            granted.append((_hold(folder.path / f"lease-{name}", {"bytes": nbytes, "ticket": ticket}), len(leases)))
            return True

    try:
        wait_until(try_grant, cancel, stage, POLL_S)
    finally:
        _release(waiter, folder.path / f"wait-{ticket:012d}-{name}")
    fd, beside = granted[0]
    try:
        yield Lease(nbytes, beside, time.monotonic() - start)
    finally:
        _release(fd, folder.path / f"lease-{name}")
