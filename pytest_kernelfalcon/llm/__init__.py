"""The LLM provider seam: ``get_provider(name, **options)`` returns a ``Provider``.

Names: ``anthropic`` (Messages API), ``openai`` (any OpenAI-compatible Chat Completions
server), ``replay`` (recorded run or transcript directory, offline), ``scripted``
(answers from a list or a callback). Wrap any of them in ``Recorder`` to persist every
call into the run directory. Errors are the tree drawn in ``base.py``; a bad name or
configuration raises ``ProviderConfigError`` at construction, never a silent fallback.

Options of the live providers (``anthropic``, ``openai``): ``model``, ``api_key`` (else
``ANTHROPIC_API_KEY`` / ``OPENAI_API_KEY``), ``base_url`` (else ``ANTHROPIC_BASE_URL`` /
``OPENAI_BASE_URL``), ``timeout`` (seconds per attempt, default 600), ``stream`` (default
True), ``max_concurrency`` (calls in flight per provider instance, default 8), ``prices``
(mapping or JSON path, see ``prices.py``), ``retry`` (a ``RetryPolicy``) or ``max_tries`` /
``base_delay_s`` / ``max_delay_s`` / ``jitter``, ``seed`` (jitter), ``check_connection``
(open a TCP connection to ``base_url`` at construction); anthropic also
``send_temperature``, openai also ``max_tokens_param``. ``replay``: ``root``, ``strict``,
``model``. ``scripted``: ``answers`` plus ``model``, ``prices``, ``max_concurrency`` and the
retry options (default one try).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from .base import (
    CallKey,
    Cancelled,
    Completion,
    ConnectionFailed,
    MalformedResponse,
    Overloaded,
    PromptDrift,
    Provider,
    ProviderConfigError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    ReplayMiss,
    Request,
    RequestRejected,
    ServerError,
    TokenUsage,
    TransientError,
)
from .prices import Price, PriceTable, load_prices
from .recorder import Recorder
from .replay import Drift, ReplayProvider
from .retry import RetryPolicy
from .scripted import ScriptedProvider, ScriptStep


def _anthropic(**options: Any) -> Provider:
    from .anthropic_provider import AnthropicProvider

    return AnthropicProvider(**options)


def _openai(**options: Any) -> Provider:
    from .openai_provider import OpenAIProvider

    return OpenAIProvider(**options)


def _replay(**options: Any) -> Provider:
    if "root" not in options:
        raise ProviderConfigError("replay: pass root=<run or transcript directory>")
    try:
        return ReplayProvider(**options)
    except TypeError as err:
        raise ProviderConfigError(f"replay: {err}") from err


def _scripted(**options: Any) -> Provider:
    return ScriptedProvider(options.pop("answers", ()), **options)


PROVIDERS: Mapping[str, Callable[..., Provider]] = MappingProxyType({
    "anthropic": _anthropic,
    "openai": _openai,
    "replay": _replay,
    "scripted": _scripted,
})


def get_provider(name: str, **options: Any) -> Provider:
    """Return the provider registered as ``name``, built from ``options`` (``ProviderConfigError`` if bad)."""
    factory = PROVIDERS.get(name)
    if factory is None:
        raise ProviderConfigError(
            f"unknown LLM provider {name!r}; choose one of: {', '.join(sorted(PROVIDERS))}")
    return factory(**options)


__all__ = [
    "PROVIDERS", "CallKey", "Cancelled", "Completion", "ConnectionFailed", "Drift",
    "MalformedResponse", "Overloaded", "Price", "PriceTable", "PromptDrift", "Provider",
    "ProviderConfigError", "ProviderError", "ProviderTimeout", "ProviderUnavailable",
    "RateLimited", "Recorder", "ReplayMiss", "ReplayProvider", "Request", "RequestRejected",
    "RetryPolicy", "ScriptStep", "ScriptedProvider", "ServerError", "TokenUsage",
    "TransientError", "get_provider", "load_prices",
]
