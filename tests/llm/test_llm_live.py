"""The real ``anthropic`` and ``openai`` SDK clients against the fake service on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fake_llm_server import FakeLLM, Step

from pytest_kernelfalcon.llm import (
    Cancelled,
    MalformedResponse,
    ProviderConfigError,
    ProviderTimeout,
    ProviderUnavailable,
    RequestRejected,
    get_provider,
)

FAST = {"base_delay_s": 0.01, "max_delay_s": 0.05, "max_tries": 3}
ERROR_BODY = {"type": "error", "error": {"type": "api_error", "message": "boom"}}
Make = Callable[..., Any]


@pytest.fixture(params=["anthropic", "openai"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which SDK a test drives."""
    return request.param


@pytest.fixture
def make(fake_llm: FakeLLM, kind: str) -> Make:
    """Build a provider of ``kind`` pointed at the fake service, with fast retries."""
    def build(**options: Any) -> Any:
        if kind == "anthropic":
            base = {"api_key": "sk-ant-test-SECRET123", "base_url": fake_llm.url,
                    "model": "claude-sonnet-4-6"}
        else:
            base = {"api_key": "EMPTY", "base_url": fake_llm.url + "/v1", "model": "qwen-coder"}
        return get_provider(kind, **{**base, **FAST, "timeout": 5.0, **options})
    return build


def ask(provider: Any, prompt: str = "hello", **kwargs: Any) -> Any:
    """Send one user message."""
    return provider.complete([{"role": "user", "content": prompt}], **kwargs)


@pytest.mark.parametrize("stream", [True, False])
def test_success_text_usage_and_cost(make: Make, fake_llm: FakeLLM, kind: str, stream: bool) -> None:
    prices = {"qwen-coder": {"input": 1.0, "output": 2.0, "cache_read": 0.5}}
    provider = make(stream=stream, prices=prices)
    result = ask(provider, "write a kernel", system="static context")
    assert result.text == "answer to: write a kernel"
    assert result.source == "live" and result.latency_s > 0
    assert result.usage.output_tokens == 300 and result.usage.cache_read_tokens == 1000
    if kind == "anthropic":
        # sonnet-4-6: 1200 in * $3 + 300 out * $15 + 1000 cache read * $0.30 + 200 cache write * $3.75
        assert result.usage.input_tokens == 1200 and result.usage.cache_write_tokens == 200
        assert result.cost_usd == pytest.approx(0.00915)
        assert result.stop_reason == "end_turn"
    else:
        # prompt_tokens 1200 include 1000 cached: 200 * $1 + 300 * $2 + 1000 * $0.5
        assert result.usage.input_tokens == 200
        assert result.cost_usd == pytest.approx(0.0013)
        assert result.stop_reason == "stop"
    assert fake_llm.requests[0]["body"].get("stream", False) is stream


def test_unknown_model_price_is_none(make: Make) -> None:
    provider = make(model="some-future-model")
    assert ask(provider).cost_usd is None


def test_anthropic_request_shape(fake_llm: FakeLLM) -> None:
    provider = get_provider("anthropic", api_key="k-test", base_url=fake_llm.url,
                            model="claude-haiku-4-5")
    ask(provider, system="context", temperature=1.7, max_tokens=100_000)
    body = fake_llm.requests[0]["body"]
    assert body["system"] == [{"type": "text", "text": "context",
                               "cache_control": {"type": "ephemeral"}}]
    assert body["temperature"] == 1.0  # clamped to the API range
    assert body["max_tokens"] == 64_000  # clamped to the model's output limit
    headers = fake_llm.requests[0]["headers"]
    assert "k-test" in (headers.get("x-api-key") or headers.get("authorization", ""))


def test_anthropic_defaults_and_temperature_left_out_for_new_models(fake_llm: FakeLLM) -> None:
    provider = get_provider("anthropic", api_key="k", base_url=fake_llm.url, model="claude-opus-4-8")
    ask(provider, temperature=0.3)
    body = fake_llm.requests[0]["body"]
    assert "temperature" not in body  # newer models answer 400 to it
    assert body["max_tokens"] == 16_000


def test_openai_request_shape(fake_llm: FakeLLM) -> None:
    provider = get_provider("openai", api_key="EMPTY", base_url=fake_llm.url + "/v1", model="m")
    ask(provider, system="context", temperature=0.2, max_tokens=50)
    request = fake_llm.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["messages"][0] == {"role": "system", "content": "context"}
    assert request["body"]["stream_options"] == {"include_usage": True}
    assert request["body"]["max_tokens"] == 50 and request["body"]["temperature"] == 0.2


def test_429_honours_retry_after_then_succeeds(make: Make, fake_llm: FakeLLM) -> None:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    fake_llm.queue(Step(status=429, body=body, headers={"retry-after": "0.4"}))
    start = time.monotonic()
    assert ask(make()).text == "answer to: hello"
    assert time.monotonic() - start >= 0.4  # waited what the server asked, not the 0.01 s backoff
    assert len(fake_llm.requests) == 2


def test_529_twice_then_succeeds(make: Make, fake_llm: FakeLLM) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    fake_llm.queue(Step(status=529, body=overloaded), Step(status=529, body=overloaded))
    assert ask(make()).text == "answer to: hello"
    assert len(fake_llm.requests) == 3


def test_500_until_tries_run_out(make: Make, fake_llm: FakeLLM) -> None:
    fake_llm.queue(*[Step(status=500, body=ERROR_BODY) for _ in range(10)])
    with pytest.raises(ProviderUnavailable, match=r"gave up after 3 attempt\(s\).*HTTP 500") as err:
        ask(make())
    assert err.value.attempts == 3 and err.value.last_status == 500
    assert len(fake_llm.requests) == 3


def test_400_is_not_retried(make: Make, fake_llm: FakeLLM) -> None:
    fake_llm.queue(Step(status=400, body={"type": "error", "error": {
        "type": "invalid_request_error", "message": "prompt is too long"}}))
    with pytest.raises(RequestRejected, match="400"):
        ask(make())
    assert len(fake_llm.requests) == 1


def test_401_is_a_config_error(make: Make, fake_llm: FakeLLM) -> None:
    fake_llm.queue(Step(status=401, body={"type": "error", "error": {
        "type": "authentication_error", "message": "invalid x-api-key"}}))
    with pytest.raises(ProviderConfigError, match="API key"):
        ask(make())


@pytest.mark.parametrize("stream", [True, False])
def test_timeout(make: Make, fake_llm: FakeLLM, stream: bool) -> None:
    fake_llm.queue(Step(delay_s=3.0))
    start = time.monotonic()
    with pytest.raises(ProviderTimeout):
        ask(make(timeout=0.3, stream=stream))
    assert time.monotonic() - start < 2.0
    assert len(fake_llm.requests) == 1  # a timeout is reported, not retried


@pytest.mark.parametrize("body", [b"{not json", b'{"unexpected": true}'])
def test_malformed_body(make: Make, fake_llm: FakeLLM, body: bytes) -> None:
    fake_llm.queue(Step(body=body))
    with pytest.raises(MalformedResponse):
        ask(make(stream=False))


def test_malformed_stream_event(make: Make, fake_llm: FakeLLM, kind: str) -> None:
    frame = b"event: message_start\ndata: {oops\n\n" if kind == "anthropic" else b"data: {oops\n\n"
    fake_llm.queue(Step(body=frame, headers={"content-type": "text/event-stream"}))
    with pytest.raises(MalformedResponse):
        ask(make())


def test_concurrency_limit_holds_under_16_callers(make: Make, fake_llm: FakeLLM) -> None:
    provider = make(max_concurrency=4)
    fake_llm.queue(*[Step(delay_s=0.15) for _ in range(16)])
    results: list[str] = []
    threads = [threading.Thread(target=lambda i=i: results.append(ask(provider, f"p{i}").text))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(results) == sorted(f"answer to: p{i}" for i in range(16))
    assert fake_llm.max_in_flight == 4


def test_cancel_mid_stream_returns_promptly(make: Make, fake_llm: FakeLLM) -> None:
    fake_llm.queue(Step(event_delay_s=0.5, chunks=20))  # the whole answer would take ~13 s
    cancel = threading.Event()
    provider = make()  # built first: the SDK's first import is not what this times
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        ask(provider, "x" * 40, cancel=cancel)
    assert time.monotonic() - start < 1.0


def test_cancel_during_backoff_returns_promptly(make: Make, fake_llm: FakeLLM) -> None:
    fake_llm.queue(Step(status=429, body=ERROR_BODY, headers={"retry-after": "30"}))
    cancel = threading.Event()
    provider = make(max_delay_s=60)
    threading.Timer(0.2, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        ask(provider, cancel=cancel)
    assert time.monotonic() - start < 1.0


def test_no_key_names_the_variable(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    var = "ANTHROPIC_API_KEY" if kind == "anthropic" else "OPENAI_API_KEY"
    monkeypatch.delenv(var, raising=False)
    with pytest.raises(ProviderConfigError, match=var):
        get_provider(kind, model="m")


def test_key_and_base_url_from_environment(kind: str, fake_llm: FakeLLM,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = "ANTHROPIC" if kind == "anthropic" else "OPENAI"
    monkeypatch.setenv(f"{prefix}_API_KEY", "env-key-123")
    monkeypatch.setenv(f"{prefix}_BASE_URL", fake_llm.url + ("" if kind == "anthropic" else "/v1"))
    assert ask(get_provider(kind, model="m")).text == "answer to: hello"
    headers = fake_llm.requests[0]["headers"]
    assert "env-key-123" in (headers.get("x-api-key") or headers.get("authorization", ""))


def test_bad_base_url_is_a_config_error(kind: str) -> None:
    with pytest.raises(ProviderConfigError, match="bad base URL"):
        get_provider(kind, api_key="k", model="m", base_url="localhost:8000")


def test_unreachable_base_url_fails_at_construction(kind: str) -> None:
    with pytest.raises(ProviderConfigError, match="unreachable"):
        get_provider(kind, api_key="k", model="m", base_url="http://127.0.0.1:9", check_connection=True)


def test_unknown_option_is_a_config_error(kind: str) -> None:
    with pytest.raises(ProviderConfigError, match="max_concurency"):
        get_provider(kind, api_key="k", model="m", max_concurency=3)
