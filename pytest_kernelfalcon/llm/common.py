"""Pieces both live providers share: option checks, base URL checks, the retried and gated call."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from .base import (
    Overloaded,
    ProviderConfigError,
    ProviderError,
    RateLimited,
    RequestRejected,
    ServerError,
    TokenUsage,
    check_cancel,
)
from .prices import PriceTable, load_prices
from .retry import Gate, RetryPolicy, call_with_retries, parse_retry_after, policy_from_options

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_CONCURRENCY = 8
_WATCH_S = 0.02  # how often a streaming call's watcher looks at the cancel event


@dataclass(frozen=True)
class Reply:
    """What one live attempt returned, before pricing and timing make it a ``Completion``."""

    text: str
    model: str
    stop_reason: str | None
    usage: TokenUsage


class LiveCaller:
    """The retry policy, concurrency gate, prices and jitter source one live provider owns."""

    def __init__(self, options: Mapping[str, Any], default_policy: RetryPolicy | None = None):
        self.policy = policy_from_options(options, default_policy)
        self.gate = Gate(int(options.get("max_concurrency") or DEFAULT_CONCURRENCY))
        self.prices: PriceTable = load_prices(options.get("prices"))
        self._rng = random.Random(options.get("seed"))

    def call(self, attempt: Callable[[], T], cancel: threading.Event | None) -> tuple[T, float]:
        """Return ``attempt()``'s result (retried, each try holding a gate slot) and the seconds it took."""
        start = time.monotonic()
        result = call_with_retries(lambda: self.gate.run(attempt, cancel), self.policy, cancel, self._rng)
        return result, time.monotonic() - start


@contextmanager
def watch_cancel(response: Any, cancel: threading.Event | None) -> Iterator[None]:
    """While the body streams, shut its socket down as soon as ``cancel`` is set; then raise ``Cancelled``.

    Closing the response from another thread does not wake a blocked read; shutting the
    socket down does, so a cancelled call returns at once even between slow events.
    """
    if cancel is None:
        yield
        return
    done = threading.Event()
    watcher = threading.Thread(target=_cut_on_cancel, args=(response, cancel, done), daemon=True)
    watcher.start()
    try:
        yield
    except Exception:
        check_cancel(cancel)
        raise
    finally:
        done.set()
    check_cancel(cancel)


def _cut_on_cancel(response: Any, cancel: threading.Event, done: threading.Event) -> None:
    while not done.wait(_WATCH_S):
        if cancel.is_set():
            _shutdown(response)
            return


def _shutdown(response: Any) -> None:
    stream = getattr(response, "extensions", {}).get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        else:
            response.close()
    except OSError:
        pass  # already closed


def resolve_key(option: str | None, env_var: str, provider: str, *, required: bool = True) -> str:
    """Return the API key from the option or ``env_var``; ``ProviderConfigError`` naming the variable."""
    key = option if option is not None else os.environ.get(env_var)
    if key is None or (required and not key.strip()):
        raise ProviderConfigError(
            f"{provider}: no API key; set the {env_var} environment variable or pass api_key=...")
    return key


def resolve_base_url(option: str | None, env_var: str, provider: str) -> str | None:
    """Return the base URL from the option or ``env_var`` (``None`` = the SDK default), checked."""
    url = option or os.environ.get(env_var) or None
    if url is None:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ProviderConfigError(
            f"{provider}: bad base URL {url!r} (from {'base_url=' if option else env_var}); "
            "want http(s)://host[:port][/path]")
    return url


def check_reachable(url: str, timeout_s: float = 5.0) -> None:
    """Raise ``ProviderConfigError`` unless a TCP connection to ``url``'s host and port opens."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError as err:
        raise ProviderConfigError(f"base URL {url} is unreachable: {err}") from err


def check_model(model: Any, provider: str) -> str:
    """Return ``model`` if it is a non-empty string, else ``ProviderConfigError``."""
    if not isinstance(model, str) or not model.strip():
        raise ProviderConfigError(f"{provider}: model must be a non-empty string, got {model!r}")
    return model


def split_system(messages: list[dict[str, Any]], system: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Return ``messages`` without system-role entries, and those joined onto ``system``."""
    extra = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
    rest = [m for m in messages if m.get("role") != "system"]
    parts = ([system] if system else []) + extra
    return rest, ("\n\n".join(parts) if parts else None)


def check_options(options: Mapping[str, Any], known: AbstractSet[str], provider: str) -> None:
    """Raise ``ProviderConfigError`` for an option ``provider`` does not understand."""
    unknown = sorted(set(options) - known)
    if unknown:
        raise ProviderConfigError(f"{provider}: unknown option(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(sorted(known))}")


LIVE_OPTIONS = frozenset({"model", "api_key", "base_url", "timeout", "max_concurrency", "prices", "seed",
                "retry", "max_tries", "base_delay_s", "max_delay_s", "jitter", "stream",
                "check_connection", "send_temperature"})


def status_error(provider: str, status: int, kind: str | None, message: str,
                 headers: Mapping[str, str] | None) -> ProviderError:
    """Return the project error for an HTTP error status (or an error event of type ``kind``)."""
    retry_after = parse_retry_after(headers)
    text = f"{provider}: HTTP {status}: {message[:500]}"
    if status == 429 or kind == "rate_limit_error":
        return RateLimited(text, status=status, retry_after=retry_after)
    if status == 529 or kind == "overloaded_error":
        return Overloaded(text, status=status, retry_after=retry_after)
    if status >= 500 or status == 408 or kind == "api_error":
        return ServerError(text, status=status, retry_after=retry_after)
    if status in (401, 403):
        return ProviderConfigError(f"{text} (is the API key right?)")
    if status == 404:
        return ProviderConfigError(f"{text} (unknown model or wrong base URL?)")
    return RequestRejected(text)
