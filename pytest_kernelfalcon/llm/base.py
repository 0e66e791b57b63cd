"""The provider seam: the ``Provider`` protocol, the dataclasses it speaks, and its error tree.

Errors (every provider raises only these; SDK errors are translated at one
boundary per provider, and the retry loop in ``retry.py`` turns the transient
ones into ``ProviderUnavailable`` once its tries run out)::

    ProviderError
    ├── ProviderConfigError     no key, unknown provider or model, bad base_url, missing SDK
    │                           (also HTTP 401/403/404 at call time: key rejected, model unknown)
    ├── TransientError          one failed attempt; retried, never seen by callers of a real provider
    │   ├── RateLimited         HTTP 429 (``retry_after`` from the header when given)
    │   ├── Overloaded          HTTP 529
    │   ├── ServerError         other HTTP 5xx
    │   └── ConnectionFailed    could not connect / connection dropped
    ├── ProviderUnavailable     retries exhausted: ``attempts``, ``last_status``, ``last_error``
    ├── ProviderTimeout         an attempt ran past the client timeout (not retried)
    ├── MalformedResponse       the answer could not be parsed
    ├── RequestRejected         the service refused the request (a 4xx other than 401/403/404/429)
    ├── Cancelled               the caller's cancel event was set
    ├── ReplayMiss              replay has no recorded answer for the ``CallKey``
    └── PromptDrift             strict replay: a template's hash differs from the recording
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

SOURCES = ("live", "replay", "scripted", "hand-written")


class ProviderError(Exception):
    """Base of every error a provider raises."""


class ProviderConfigError(ProviderError):
    """The provider cannot be used as configured (raised at construction)."""


class TransientError(ProviderError):
    """One attempt failed in a way worth retrying."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RateLimited(TransientError):
    """The service said 429: too many requests."""


class Overloaded(TransientError):
    """The service said 529: overloaded."""


class ServerError(TransientError):
    """The service answered with another 5xx status."""


class ConnectionFailed(TransientError):
    """No connection could be made, or it dropped mid-request."""


class ProviderUnavailable(ProviderError):
    """Every try failed; carries how many attempts were made and the last status seen."""

    def __init__(self, message: str, *, attempts: int, last_status: int | None,
                 last_error: BaseException | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.last_status = last_status
        self.last_error = last_error


class ProviderTimeout(ProviderError):
    """An attempt took longer than the client timeout."""


class MalformedResponse(ProviderError):
    """The response could not be understood (bad JSON, missing fields, a truncated stream)."""


class RequestRejected(ProviderError):
    """The service refused this request (e.g. HTTP 400: prompt too long); retrying will not help."""


class Cancelled(ProviderError):
    """The caller cancelled the call through its ``cancel`` event."""


class ReplayMiss(ProviderError):
    """The replay source holds no answer for the requested key."""


class PromptDrift(ProviderError):
    """Strict replay: the prompt templates differ from those recorded; ``templates`` names them."""

    def __init__(self, message: str, *, templates: tuple[str, ...]):
        super().__init__(message)
        self.templates = templates


@dataclass(frozen=True)
class CallKey:
    """Where a call belongs in a run; replay matches answers by this, never by arrival order."""

    task: str
    stage: str
    subgraph: str = ""
    worker: int = 0
    round: int = 0

    def describe(self) -> str:
        """Return a short human label such as ``level1/19_ReLU generate/sg0 w1 r2``."""
        sub = f"/{self.subgraph}" if self.subgraph else ""
        return f"{self.task} {self.stage}{sub} w{self.worker} r{self.round}"


@dataclass(frozen=True)
class TokenUsage:
    """Tokens one call used, as the service reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reported: bool = True  # False: the service sent no usage (the counts are zero, not measured)


@dataclass(frozen=True)
class Completion:
    """One answer: text, usage, cost (``None`` when the price is unknown) and where it came from."""

    text: str
    model: str
    stop_reason: str | None
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = None
    latency_s: float = 0.0
    source: str = "live"  # one of SOURCES


@dataclass(frozen=True)
class Request:
    """A call as a provider received it (what scripted callbacks and the recorder see)."""

    messages: tuple[Mapping[str, Any], ...]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    key: CallKey | None = None
    templates: Mapping[str, str] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """Return the text of the last message (the usual thing a callback inspects)."""
        return message_text(self.messages[-1]) if self.messages else ""


@runtime_checkable
class Provider(Protocol):
    """Anything that turns messages into a ``Completion``; safe to call from several threads."""

    name: str
    model: str

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        key: CallKey | None = None,
        templates: Mapping[str, str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """Return the model's answer to ``messages`` (raises only ``ProviderError``)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


def message_text(message: Mapping[str, Any]) -> str:
    """Return the plain text of one chat message whose content is a string or a list of blocks."""
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, Mapping))


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise ``Cancelled`` when the event is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("call cancelled by the caller")


def make_request(messages: list[dict[str, Any]], **fields: Any) -> Request:
    """Return a ``Request`` from ``complete``'s arguments (templates default to empty)."""
    fields["templates"] = dict(fields.get("templates") or {})
    return Request(messages=tuple(dict(m) for m in messages), **fields)
