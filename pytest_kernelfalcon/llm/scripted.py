"""A provider that answers from a script (a list, in order) or a callback; for tests and demos.

A script entry is a string (the answer), a ``ProviderError`` instance (raised for that
call: ``RateLimited``, ``Overloaded``, ``ProviderTimeout``, ``MalformedResponse``, ...), or
a ``ScriptStep`` that adds a delay (interruptible by the caller's cancel event), a stop
reason and usage. Injected errors pass through the same retry loop as the live providers:
with the default ``max_tries=1`` a ``RateLimited`` reaches the caller as
``ProviderUnavailable(attempts=1, last_status=429)``, exactly what a live provider raises
when its tries run out; pass ``max_tries=3`` to watch a retry consume the next entry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import (
    CallKey,
    Completion,
    ProviderConfigError,
    ProviderError,
    ReplayMiss,
    Request,
    TokenUsage,
    check_cancel,
    make_request,
)
from .common import check_options
from .prices import load_prices
from .retry import Gate, RetryPolicy, call_with_retries, policy_from_options, wait


@dataclass(frozen=True)
class ScriptStep:
    """One scripted answer: text or an error, after an optional delay."""

    text: str | None = None
    error: ProviderError | None = None
    delay_s: float = 0.0
    stop_reason: str = "end_turn"
    usage: TokenUsage = field(default_factory=TokenUsage)


Entry = str | ProviderError | ScriptStep
Callback = Callable[[Request], Entry]
SCRIPTED_OPTIONS = frozenset({"answers", "model", "prices", "max_concurrency", "retry", "max_tries",
                    "base_delay_s", "max_delay_s", "jitter", "seed"})


def as_step(entry: Entry) -> ScriptStep:
    """Return ``entry`` as a ``ScriptStep``."""
    if isinstance(entry, ScriptStep):
        return entry
    if isinstance(entry, ProviderError):
        return ScriptStep(error=entry)
    if isinstance(entry, str):
        return ScriptStep(text=entry)
    raise ProviderConfigError(f"scripted: a script entry must be str, ProviderError or ScriptStep, "
                              f"got {type(entry).__name__}")


class ScriptedProvider:
    """Answers in order from ``answers`` (or from ``answers(request)`` when it is callable)."""

    name = "scripted"

    def __init__(self, answers: Sequence[Entry] | Callback = (), **options: Any):
        check_options(options, SCRIPTED_OPTIONS - {"answers"}, self.name)
        self.model = str(options.get("model") or "scripted")
        self._callback = answers if callable(answers) else None
        self._script = [] if callable(answers) else [as_step(a) for a in answers]
        self._policy = policy_from_options(options, RetryPolicy(max_tries=1, base_delay_s=0.0))
        limit = options.get("max_concurrency")
        self._gate = Gate(int(limit)) if limit else None
        self._prices = load_prices(options.get("prices"))
        self._lock = threading.Lock()
        self.requests: list[Request] = []  # every call received, in arrival order

    @property
    def remaining(self) -> int:
        """Return how many scripted entries have not been used yet."""
        with self._lock:
            return len(self._script)

    def complete(self, messages: list[dict[str, Any]], *, system: str | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 key: CallKey | None = None, templates: Mapping[str, str] | None = None,
                 cancel: threading.Event | None = None) -> Completion:
        """Return the next scripted answer (or raise the scripted error) for this request."""
        request = make_request(messages, system=system, temperature=temperature,
                               max_tokens=max_tokens, key=key, templates=templates)
        with self._lock:
            self.requests.append(request)
        start = time.monotonic()
        step = call_with_retries(lambda: self._gated(request, cancel), self._policy, cancel)
        cost = self._cost(step.usage)
        text = step.text or ""
        return Completion(text, self.model, step.stop_reason, step.usage, cost,
                          time.monotonic() - start, "scripted")

    def close(self) -> None:
        """Nothing to release."""

    def _gated(self, request: Request, cancel: threading.Event | None) -> ScriptStep:
        if self._gate is None:
            return self._answer(request, cancel)
        return self._gate.run(lambda: self._answer(request, cancel), cancel)

    def _answer(self, request: Request, cancel: threading.Event | None) -> ScriptStep:
        step = self._next(request)
        if step.delay_s:
            wait(step.delay_s, cancel)
        check_cancel(cancel)
        if step.error is not None:
            raise step.error
        return step

    def _next(self, request: Request) -> ScriptStep:
        if self._callback is not None:
            return as_step(self._callback(request))
        with self._lock:
            if not self._script:
                where = request.key.describe() if request.key else "an unkeyed call"
                raise ReplayMiss(f"scripted: no answer left in the script for {where} "
                                 f"(call {len(self.requests)})")
            return self._script.pop(0)

    def _cost(self, usage: TokenUsage) -> float | None:
        if usage == TokenUsage():
            return 0.0
        return self._prices.cost(self.model, usage)
