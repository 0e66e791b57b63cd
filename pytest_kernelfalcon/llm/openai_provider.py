"""OpenAI-compatible Chat Completions (OpenAI, vLLM, SGLang, local servers) through the ``openai`` SDK."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .base import (
    CallKey,
    Completion,
    ConnectionFailed,
    MalformedResponse,
    ProviderConfigError,
    ProviderError,
    ProviderTimeout,
    RequestRejected,
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

OPENAI_OPTIONS = LIVE_OPTIONS | {"max_tokens_param"}
TEMPERATURE_RANGE = (0.0, 2.0)


class OpenAIProvider:
    """Calls ``client.chat.completions.create`` against any ``base_url``.

    Streamed by default (``stream_options={"include_usage": True}``); a set ``cancel`` event
    cuts the stream at once, a non-streamed call notices it only before each attempt.

    A local server that checks no key still needs one set: ``api_key="EMPTY"`` works.
    ``usage.input_tokens`` excludes cached prompt tokens (reported as ``cache_read_tokens``),
    matching the Anthropic convention so one price table serves both.

    A server whose streams carry no usage (llama-cpp-python 0.3 ignores ``include_usage``)
    gives completions with ``usage.reported`` False (zero counts, not measured ones). Streaming is
    kept anyway: ``timeout`` then bounds the wait for each piece (a slow local server's prompt
    read, then each token), while a non-streamed call must finish its whole answer within it.
    """

    name = "openai"

    def __init__(self, **options: Any):
        check_options(options, OPENAI_OPTIONS, self.name)
        if not options.get("model"):
            raise ProviderConfigError("openai: no model; pass model=... (the name the server serves)")
        self.model = check_model(options["model"], self.name)
        key = resolve_key(options.get("api_key"), "OPENAI_API_KEY", self.name)
        self.base_url = resolve_base_url(options.get("base_url"), "OPENAI_BASE_URL", self.name)
        if options.get("check_connection") and self.base_url:
            check_reachable(self.base_url)
        self.stream = bool(options.get("stream", True))
        self.max_tokens_param = str(options.get("max_tokens_param") or "max_tokens")
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
        cost = self._caller.prices.cost(self.model, reply.usage)
        return Completion(reply.text, reply.model, reply.stop_reason, reply.usage, cost, latency, "live")

    def close(self) -> None:
        """Close the SDK client's connections."""
        self._client.close()

    def _params(self, messages: list[dict[str, Any]], system: str | None,
                temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        rest, system = split_system(messages, system)
        chat = ([{"role": "system", "content": system}] if system else []) + rest
        params: dict[str, Any] = {"model": self.model, "messages": chat}
        if max_tokens is not None:
            params[self.max_tokens_param] = int(max_tokens)
        if temperature is not None:
            params["temperature"] = min(max(float(temperature), TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1])
        if self.stream:
            params.update(stream=True, stream_options={"include_usage": True})
        return params

    def _attempt(self, params: dict[str, Any], cancel: threading.Event | None) -> Reply:
        import openai

        try:
            if not self.stream:
                return _from_completion(self._client.chat.completions.create(**params))
            with self._client.chat.completions.create(**params) as chunks, \
                    watch_cancel(chunks.response, cancel):
                return _collect(chunks, cancel)
        except openai.OpenAIError as err:
            raise translate(err) from err
        except ValueError as err:  # bad JSON in the body or in a chunk
            raise MalformedResponse(f"openai: unreadable response: {err}") from err


def _make_client(key: str, base_url: str | None, timeout: float) -> Any:
    try:
        import openai
    except ImportError as err:
        raise ProviderConfigError(
            "the openai provider needs the openai package: pip install 'pytest-kernelfalcon[openai]'"
        ) from err
    return openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=0)


def _collect(chunks: Any, cancel: threading.Event | None) -> Reply:
    text: list[str] = []
    model, stop, usage = "", None, None
    for chunk in chunks:
        check_cancel(cancel)
        model = getattr(chunk, "model", None) or model
        usage = getattr(chunk, "usage", None) or usage
        for choice in getattr(chunk, "choices", None) or []:
            if choice.index == 0 and choice.delta is not None:
                text.append(choice.delta.content or "")
                stop = choice.finish_reason or stop
    if stop is None and not text:
        raise MalformedResponse("openai: the stream ended without any choice")
    return Reply("".join(text), model, stop, _usage(usage))


def _usage(usage: Any) -> TokenUsage:
    if usage is None:
        return TokenUsage(reported=False)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = int(getattr(details, "cached_tokens", None) or 0)
    written = int(getattr(details, "cache_write_tokens", None) or 0)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    return TokenUsage(input_tokens=max(prompt - cached - written, 0),
                      output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                      cache_read_tokens=cached, cache_write_tokens=written)


def _from_completion(completion: Any) -> Reply:
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices or getattr(choices[0], "message", None) is None:
        raise MalformedResponse(f"openai: response without choices: {completion!r:.300}")
    first = choices[0]
    return Reply(first.message.content or "", getattr(completion, "model", "") or "",
                  first.finish_reason, _usage(getattr(completion, "usage", None)))


def translate(err: Exception) -> ProviderError:
    """Return the project error for an ``openai`` SDK error (the one translation boundary)."""
    import openai

    if isinstance(err, openai.APITimeoutError):
        return ProviderTimeout(f"openai: no response within the client timeout ({err}); a slow server "
                               "needs a longer one (--falcon-llm-timeout, or timeout=)")
    if isinstance(err, openai.APIConnectionError):
        return ConnectionFailed(f"openai: connection failed: {err}")
    if isinstance(err, openai.APIResponseValidationError):
        return MalformedResponse(f"openai: response did not match the schema: {err}")
    if isinstance(err, openai.APIStatusError):
        body = err.body if isinstance(err.body, Mapping) else {}
        kind = body.get("type") if isinstance(body.get("type"), str) else None
        return status_error("openai", err.status_code, kind, str(err), err.response.headers)
    if isinstance(err, openai.APIError):  # an error event inside a stream
        return RequestRejected(f"openai: the server reported an error mid-stream: {err}")
    return MalformedResponse(f"openai: {type(err).__name__}: {err}")
