"""Retries with exponential backoff and jitter, and the per-provider concurrency gate."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .base import Cancelled, ProviderConfigError, ProviderUnavailable, TransientError, check_cancel

T = TypeVar("T")

_POLL_S = 0.05  # how often a blocked wait looks at the cancel event


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures."""

    max_tries: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    jitter: float = 0.5  # each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
    honour_retry_after: bool = True
    max_retry_after_s: float = 120.0  # a server's retry-after is obeyed up to this, apart from max_delay_s

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ProviderConfigError(f"max_tries must be at least 1, got {self.max_tries}")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or not 0 <= self.jitter <= 1:
            raise ProviderConfigError("retry delays must be >= 0 and jitter within [0, 1]")

    def delay(self, attempt: int, error: TransientError, rng: random.Random) -> float:
        """Return the seconds to wait after failed ``attempt`` (1-based)."""
        if self.honour_retry_after and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after_s)
        backoff = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        return backoff * rng.uniform(1 - self.jitter, 1 + self.jitter)


def policy_from_options(options: Mapping[str, Any], default: RetryPolicy | None = None) -> RetryPolicy:
    """Return a ``RetryPolicy`` from ``retry=``/``max_tries=``/``base_delay_s=``/``max_delay_s=`` options."""
    if isinstance(options.get("retry"), RetryPolicy):
        return options["retry"]
    base = default or RetryPolicy()
    fields = ("max_tries", "base_delay_s", "max_delay_s", "jitter")
    picked = {f: options[f] for f in fields if options.get(f) is not None}
    return RetryPolicy(**{**{f: getattr(base, f) for f in fields}, **picked})


def wait(seconds: float, cancel: threading.Event | None) -> None:
    """Sleep ``seconds``, waking early with ``Cancelled`` when ``cancel`` is set."""
    if cancel is None:
        time.sleep(max(seconds, 0.0))
    elif cancel.wait(max(seconds, 0.0)):
        raise Cancelled("call cancelled by the caller")


def call_with_retries(attempt: Callable[[], T], policy: RetryPolicy,
                      cancel: threading.Event | None = None,
                      rng: random.Random | None = None) -> T:
    """Return ``attempt()``, retrying ``TransientError`` per ``policy``; ``ProviderUnavailable`` after."""
    rng = rng or random.Random()
    for tries in range(1, policy.max_tries + 1):
        check_cancel(cancel)
        try:
            return attempt()
        except TransientError as err:
            if tries == policy.max_tries:
                raise exhausted(tries, err) from err
            wait(policy.delay(tries, err, rng), cancel)
    raise AssertionError("unreachable")  # pragma: no cover


def exhausted(attempts: int, err: TransientError) -> ProviderUnavailable:
    """Return the error that ends a run of failed tries."""
    status = f"HTTP {err.status}" if err.status is not None else type(err).__name__
    return ProviderUnavailable(
        f"gave up after {attempts} attempt(s); last failure: {status}: {err}",
        attempts=attempts, last_status=err.status, last_error=err,
    )


class Gate:
    """A bounded number of calls in flight at once, shared by every thread using one provider."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ProviderConfigError(f"max_concurrency must be at least 1, got {limit}")
        self.limit = limit
        self._sem = threading.BoundedSemaphore(limit)

    def run(self, fn: Callable[[], T], cancel: threading.Event | None = None) -> T:
        """Return ``fn()`` once a slot is free (``Cancelled`` if cancelled while queued)."""
        while not self._sem.acquire(timeout=_POLL_S):
            check_cancel(cancel)
        try:
            check_cancel(cancel)
            return fn()
        finally:
            self._sem.release()


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Return the ``retry-after`` header in seconds (``retry-after-ms`` too), or ``None``."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return float(raw) * scale
        except ValueError:
            continue  # an HTTP date: not honoured, fall back to backoff
    return None
