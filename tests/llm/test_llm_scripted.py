"""The scripted provider: answers in order or by callback, injected errors and delays, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_kernelfalcon.llm import (
    CallKey,
    Cancelled,
    MalformedResponse,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    ReplayMiss,
    Request,
    ScriptedProvider,
    ScriptStep,
    TokenUsage,
    get_provider,
)

MSG = [{"role": "user", "content": "make it fast"}]


def test_answers_in_order_and_records_requests() -> None:
    provider = ScriptedProvider(["one", "two"])
    key = CallKey("level1/1_Square", "generate", "sg0", 1, 2)
    first = provider.complete(MSG, system="sys", temperature=0.7, key=key, templates={"g": "h"})
    second = provider.complete(MSG)
    assert (first.text, second.text) == ("one", "two")
    assert first.source == "scripted" and first.cost_usd == 0.0
    assert provider.requests[0].key == key and provider.requests[0].system == "sys"
    assert provider.requests[0].templates == {"g": "h"} and provider.requests[0].prompt == "make it fast"
    with pytest.raises(ReplayMiss, match="no answer left"):
        provider.complete(MSG)


def test_callback_sees_the_request() -> None:
    def answer(request: Request) -> str:
        return f"t={request.temperature} {request.prompt}"

    provider = get_provider("scripted", answers=answer)
    assert provider.complete(MSG, temperature=0.5).text == "t=0.5 make it fast"


@pytest.mark.parametrize("error, status", [
    (RateLimited("slow down", status=429), 429),
    (ProviderTimeout("too slow"), None),
    (MalformedResponse("garbage"), None),
])
def test_injected_errors(error: Exception, status: int | None) -> None:
    provider = get_provider("scripted", answers=[error])
    if status is None:
        with pytest.raises(type(error)):
            provider.complete(MSG)
    else:
        with pytest.raises(ProviderUnavailable) as err:
            provider.complete(MSG)
        assert err.value.attempts == 1 and err.value.last_status == status


def test_injected_transient_errors_are_retried_when_asked() -> None:
    provider = ScriptedProvider([RateLimited("429", status=429), "ok"], max_tries=3)
    assert provider.complete(MSG).text == "ok"
    assert len(provider.requests) == 1 and provider.remaining == 0


def test_usage_is_priced_by_model() -> None:
    step = ScriptStep(text="x", usage=TokenUsage(input_tokens=1_000_000))
    provider = get_provider("scripted", answers=[step, step], model="claude-haiku-4-5")
    assert provider.complete(MSG).cost_usd == pytest.approx(1.0)
    unknown = get_provider("scripted", answers=[step], model="mystery")
    assert unknown.complete(MSG).cost_usd is None


def test_delay_is_interrupted_by_cancel() -> None:
    provider = get_provider("scripted", answers=[ScriptStep(text="late", delay_s=10)])
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        provider.complete(MSG, cancel=cancel)
    assert time.monotonic() - start < 1.0


def test_concurrency_limit_with_threads() -> None:
    in_flight, peak = [0], [0]
    lock = threading.Lock()

    def answer(request: Request) -> str:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return "ok"

    provider = get_provider("scripted", answers=answer, max_concurrency=3)
    threads = [threading.Thread(target=provider.complete, args=(MSG,)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3
