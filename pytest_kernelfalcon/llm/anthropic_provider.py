"""Anthropic Messages API through the official ``anthropic`` SDK (streamed, retried, gated)."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .base import (
    CallKey,
    Completion,
    ConnectionFailed,
    MalformedResponse,
    ProviderConfigError,
    ProviderError,
    ProviderTimeout,
    TokenUsage,
    check_cancel,
)
from .common import (
    DEFAULT_TIMEOUT_S,
    LIVE_OPTIONS,
    LiveCaller,
    Reply,
    check_model,
    check_options,
    check_reachable,
    resolve_base_url,
    resolve_key,
    split_system,
    status_error,
    watch_cancel,
)

DEFAULT_MODEL = "claude-sonnet-4-6"
FALLBACK_MAX_TOKENS = 16_000
# Output-token ceilings (default max_tokens and the clamp); unknown models use FALLBACK_MAX_TOKENS
# as the default and are not clamped.
MAX_OUTPUT_TOKENS: Mapping[str, int] = MappingProxyType({
    "claude-opus-4-5": 64_000,
    "claude-sonnet-4-5": 64_000,
    "claude-haiku-4-5": 64_000,
    "claude-sonnet-4-0": 64_000,
    "claude-opus-4-1": 32_000,
})
TEMPERATURE_RANGE = (0.0, 1.0)
# Models known to accept ``temperature``. The SDK (2.x) no longer has the parameter and models
# from Opus 4.7 on answer 400 "temperature is deprecated", so it goes through ``extra_body`` only
# for these (or when ``send_temperature=True``); for any other model it is left out.
TEMPERATURE_MODELS = frozenset({
    "claude-opus-4-6", "claude-opus-4-5", "claude-opus-4-1", "claude-opus-4-0",
    "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-sonnet-4-0", "claude-haiku-4-5",
})


class AnthropicProvider:
    """Calls ``client.messages.create``; the system prompt is sent as one cached block.

    Streamed by default: a set ``cancel`` event cuts the stream at once. A non-streamed
    call (``stream=False``) notices ``cancel`` only before each attempt.
    """

    name = "anthropic"

    def __init__(self, **options: Any):
        check_options(options, LIVE_OPTIONS, self.name)
        self.model = check_model(options.get("model") or DEFAULT_MODEL, self.name)
        key = resolve_key(options.get("api_key"), "ANTHROPIC_API_KEY", self.name)
        self.base_url = resolve_base_url(options.get("base_url"), "ANTHROPIC_BASE_URL", self.name)
        if options.get("check_connection") and self.base_url:
            check_reachable(self.base_url)
        self.stream = bool(options.get("stream", True))
        self.sends_temperature = _sends_temperature(self.model, options.get("send_temperature"))
        self._caller = LiveCaller(options)
        self._client = _make_client(key, self.base_url, float(options.get("timeout") or DEFAULT_TIMEOUT_S))

    @property
    def max_concurrency(self) -> int:
        """Return how many calls this instance lets run at once."""
        return self._caller.gate.limit

    def complete(self, messages: list[dict[str, Any]], *, system: str | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 key: CallKey | None = None, templates: Mapping[str, str] | None = None,
                 cancel: threading.Event | None = None) -> Completion:
        """Return the model's answer; retries transient failures, raises only ``ProviderError``."""
        params = self._params(messages, system, temperature, max_tokens)
        reply, latency = self._caller.call(lambda: self._attempt(params, cancel), cancel)
        cost = self._caller.prices.cost(reply.model or self.model, reply.usage)
        return Completion(reply.text, reply.model, reply.stop_reason, reply.usage, cost, latency, "live")

    def close(self) -> None:
        """Close the SDK client's connections."""
        self._client.close()

    def _params(self, messages: list[dict[str, Any]], system: str | None,
                temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        rest, system = split_system(messages, system)
        params: dict[str, Any] = {"model": self.model, "messages": rest,
                                  "max_tokens": output_budget(self.model, max_tokens)}
        if system:
            params["system"] = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
        if temperature is not None and self.sends_temperature:
            low, high = TEMPERATURE_RANGE
            params["extra_body"] = {"temperature": min(max(float(temperature), low), high)}
        return params

    def _attempt(self, params: dict[str, Any], cancel: threading.Event | None) -> Reply:
        import anthropic

        try:
            if not self.stream:
                return _from_message(self._client.messages.create(**params))
            with self._client.messages.create(**params, stream=True) as events, \
                    watch_cancel(events.response, cancel):
                return _collect(events, cancel)
        except anthropic.AnthropicError as err:
            raise translate(err) from err
        except ValueError as err:  # bad JSON in the body or in an SSE event
            raise MalformedResponse(f"anthropic: unreadable response: {err}") from err


def _sends_temperature(model: str, option: bool | None) -> bool:
    if option is not None:
        return bool(option)
    dated = re.match(r"^(.+)-\d{8}$", model)
    return (dated.group(1) if dated else model) in TEMPERATURE_MODELS


def output_budget(model: str, requested: int | None) -> int:
    """Return ``max_tokens`` for a call: the request clamped to the model's limit, or the default."""
    limit = MAX_OUTPUT_TOKENS.get(model)
    if requested is None:
        return min(limit, FALLBACK_MAX_TOKENS) if limit else FALLBACK_MAX_TOKENS
    if requested < 1:
        raise ProviderConfigError(f"max_tokens must be positive, got {requested}")
    return min(requested, limit) if limit else requested


def _make_client(key: str, base_url: str | None, timeout: float) -> Any:
    try:
        import anthropic
    except ImportError as err:  # pragma: no cover - a core dependency
        raise ProviderConfigError("the anthropic package is not installed") from err
    return anthropic.Anthropic(api_key=key, base_url=base_url, timeout=timeout, max_retries=0)


def _collect(events: Any, cancel: threading.Event | None) -> Reply:
    text: list[str] = []
    usage: dict[str, int] = {}
    model, stop, done = "", None, False
    for event in events:
        check_cancel(cancel)
        kind = event.type
        if kind == "message_start":
            model = event.message.model
            _merge_usage(usage, event.message.usage)
        elif kind == "content_block_delta" and event.delta.type == "text_delta":
            text.append(event.delta.text)
        elif kind == "message_delta":
            stop = event.delta.stop_reason
            _merge_usage(usage, event.usage)
        elif kind == "message_stop":
            done = True
    if not done:
        raise MalformedResponse("anthropic: the stream ended before message_stop")
    return Reply("".join(text), model, stop, _usage(usage))


def _merge_usage(into: dict[str, int], usage: Any) -> None:
    """Keep the latest value of each counter (message_delta counts are cumulative)."""
    for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        value = getattr(usage, name, None)
        if value is not None:
            into[name] = int(value)


def _usage(counts: Mapping[str, int]) -> TokenUsage:
    return TokenUsage(input_tokens=counts.get("input_tokens", 0),
                      output_tokens=counts.get("output_tokens", 0),
                      cache_read_tokens=counts.get("cache_read_input_tokens", 0),
                      cache_write_tokens=counts.get("cache_creation_input_tokens", 0))


def _from_message(message: Any) -> Reply:
    content = getattr(message, "content", None)
    if not isinstance(content, list) or getattr(message, "usage", None) is None:
        raise MalformedResponse(f"anthropic: response without content or usage: {message!r:.300}")
    text = "".join(getattr(b, "text", "") for b in content if getattr(b, "type", None) == "text")
    counts: dict[str, int] = {}
    _merge_usage(counts, message.usage)
    return Reply(text, getattr(message, "model", ""), getattr(message, "stop_reason", None), _usage(counts))


def translate(err: Exception) -> ProviderError:
    """Return the project error for an ``anthropic`` SDK error (the one translation boundary)."""
    import anthropic

    if isinstance(err, anthropic.APITimeoutError):
        return ProviderTimeout(f"anthropic: no response within the client timeout ({err})")
    if isinstance(err, anthropic.APIConnectionError):
        return ConnectionFailed(f"anthropic: connection failed: {err}")
    if isinstance(err, anthropic.APIResponseValidationError):
        return MalformedResponse(f"anthropic: response did not match the schema: {err}")
    if isinstance(err, anthropic.APIStatusError):
        return status_error("anthropic", err.status_code, getattr(err, "type", None),
                            str(err), err.response.headers)
    return MalformedResponse(f"anthropic: {type(err).__name__}: {err}")
