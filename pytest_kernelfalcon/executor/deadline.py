"""One deadline over every wait of a check: ``Deadline``, a cancel event that also reads as set once its time
has passed, and the bounded waits built on it.

Every wait of the harness (a warm worker's start, the reference cache's key lock, a GPU memory
lease, a job) already polls a cancel event; a ``Deadline`` passed as that event bounds them all.
Each wait names itself (``waiting(cancel, "the reference job")``); the first wait that sees the
time run out is remembered, so the verdict names the stage that was waiting. A plain
``threading.Event`` (or ``None``) keeps the old behaviour: cancelled only when set.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from collections.abc import Callable, Iterator

POLL_S = 0.05


class DeadlinePassed(Exception):
    """The deadline passed while ``stage`` was waiting (a harness error: never the candidate's)."""

    def __init__(self, stage: str, seconds: float | None, what: str = "check") -> None:
        limit = f" ({seconds:g} s, every wait included)" if seconds is not None else ""
        super().__init__(f"the deadline of {what}{limit} passed while waiting for {stage}")
        self.stage, self.seconds = stage, seconds


class WaitCancelled(Exception):
    """The cancel event was set (another worker won, Ctrl-C) while a wait was in progress."""


class Deadline(threading.Event):
    """A cancel event that is also set once ``seconds`` have passed (or its ``parent`` is set)."""

    def __init__(self, seconds: float | None, parent: threading.Event | None = None, what: str = "check") -> None:
        super().__init__()
        self.seconds, self.parent, self.what = seconds, parent, what
        self.at = None if seconds is None else time.monotonic() + seconds
        self._stages: dict[int, list[str]] = {}
        self._guard = threading.Lock()
        self.passed_in: str | None = None  # the stage that was waiting when the time was first seen to run out

    def expired(self) -> bool:
        """Whether this deadline's time (or a parent deadline's) has run out; remembers the waiting stage."""
        own = self.at is not None and time.monotonic() >= self.at
        if own and self.passed_in is None:
            self.passed_in = self.stage()
        return own or (isinstance(self.parent, Deadline) and self.parent.expired())

    def is_set(self) -> bool:
        """Set explicitly, expired, or the parent set."""
        return super().is_set() or self.expired() or (self.parent is not None and self.parent.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set (or expired) or ``timeout`` seconds; return whether it is set."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = POLL_S if end is None else min(POLL_S, end - time.monotonic())
            if left <= 0:
                return False
            super().wait(left)
        return True

    def remaining(self) -> float | None:
        """Seconds left (None: no time limit)."""
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    @contextlib.contextmanager
    def waiting(self, stage: str) -> Iterator[None]:
        """Name what the calling thread waits for until the block ends."""
        ident = threading.get_ident()
        with self._guard:
            self._stages.setdefault(ident, []).append(stage)
        try:
            yield
        finally:
            with self._guard:
                self._stages[ident].pop()

    def stage(self, ident: int | None = None) -> str:
        """The innermost stage a thread (the caller by default) is waiting in."""
        with self._guard:
            found = self._stages.get(threading.get_ident() if ident is None else ident) or []
            return found[-1] if found else "the check to finish"

    def passed(self) -> DeadlinePassed:
        """The exception naming where the deadline passed."""
        own = self if self.passed_in is not None or not isinstance(self.parent, Deadline) else self.parent
        return DeadlinePassed(own.passed_in or own.stage(), own.seconds, own.what)


def waiting(cancel: threading.Event | None, stage: str) -> contextlib.AbstractContextManager[None]:
    """``cancel.waiting(stage)`` for a ``Deadline``; nothing otherwise."""
    return cancel.waiting(stage) if isinstance(cancel, Deadline) else contextlib.nullcontext()


def raise_if_passed(cancel: threading.Event | None) -> None:
    """Raise ``DeadlinePassed`` when ``cancel`` is a deadline whose time has run out."""
    if isinstance(cancel, Deadline) and cancel.expired():
        raise cancel.passed()


def wait_until(ready: Callable[[], bool], cancel: threading.Event | None, stage: str, poll_s: float = POLL_S) -> None:
    """Poll ``ready`` until it is true; raise ``DeadlinePassed`` / ``WaitCancelled`` when ``cancel`` ends the wait."""
    with waiting(cancel, stage):
        while not ready():
            if cancel is not None and cancel.is_set():
                raise_if_passed(cancel)
                raise WaitCancelled(stage)
            time.sleep(poll_s)


def wait_for_flock(fd: int, mode: int, cancel: threading.Event | None, stage: str, poll_s: float = 0.1) -> None:
    """Take ``flock(fd, mode)`` once it is free, polling ``cancel`` meanwhile (``wait_until``'s exceptions)."""

    def taken() -> bool:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    wait_until(taken, cancel, stage, poll_s)
