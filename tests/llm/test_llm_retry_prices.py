"""Backoff arithmetic, the concurrency gate, the price table and the provider registry."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest

from pytest_kernelfalcon.llm import (
    PROVIDERS,
    Cancelled,
    Overloaded,
    ProviderConfigError,
    ProviderUnavailable,
    RateLimited,
    RetryPolicy,
    TokenUsage,
    get_provider,
    load_prices,
)
from pytest_kernelfalcon.llm.retry import Gate, call_with_retries, parse_retry_after


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, jitter=0.5)
    rng = random.Random(0)
    err = Overloaded("busy", status=529)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (8, 5.0)]:
        delays = [policy.delay(attempt, err, rng) for _ in range(50)]
        assert all(base * 0.5 <= d <= base * 1.5 for d in delays)
        assert max(delays) - min(delays) > 0  # jittered


def test_retry_after_wins_over_backoff() -> None:
    policy = RetryPolicy(base_delay_s=10.0, max_retry_after_s=30)
    assert policy.delay(1, RateLimited("x", retry_after=0.25), random.Random()) == 0.25
    assert policy.delay(1, RateLimited("x", retry_after=500), random.Random()) == 30


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after({}) is None


def test_call_with_retries_counts_attempts() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RateLimited("429", status=429)
        return "ok"

    assert call_with_retries(flaky, RetryPolicy(max_tries=3, base_delay_s=0)) == "ok"
    calls.clear()
    with pytest.raises(ProviderUnavailable) as err:
        call_with_retries(flaky, RetryPolicy(max_tries=2, base_delay_s=0))
    assert err.value.attempts == 2 and err.value.last_status == 429
    assert isinstance(err.value.last_error, RateLimited)


def test_bad_policy_is_a_config_error() -> None:
    with pytest.raises(ProviderConfigError):
        RetryPolicy(max_tries=0)
    with pytest.raises(ProviderConfigError):
        Gate(0)


def test_gate_cancel_while_queued() -> None:
    gate = Gate(1)
    release = threading.Event()
    holder = threading.Thread(target=gate.run, args=(release.wait,))
    holder.start()
    time.sleep(0.05)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    with pytest.raises(Cancelled):
        gate.run(lambda: "never", cancel)
    release.set()
    holder.join()
    assert gate.run(lambda: "free again") == "free again"


def test_prices_builtin_dated_and_unknown() -> None:
    table = load_prices()
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000,
                       cache_read_tokens=1_000_000, cache_write_tokens=1_000_000)
    assert table.cost("claude-opus-4-5", usage) == pytest.approx(5 + 25 + 0.5 + 6.25)
    assert table.cost("claude-sonnet-4-5-20250929", usage) == pytest.approx(3 + 15 + 0.3 + 3.75)
    assert table.cost("claude-sonnet-4-5-preview", usage) is None
    assert table.cost("gpt-oss-120b", usage) is None


def test_prices_extended_by_mapping_and_file(tmp_path: Path) -> None:
    usage = TokenUsage(input_tokens=2_000_000, output_tokens=1_000_000)
    table = load_prices({"my-model": {"input": 0.5, "output": 1.5}})
    assert table.cost("my-model", usage) == pytest.approx(2.5)
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"claude-haiku-4-5": {"input": 0, "output": 0}}))
    assert load_prices(path).cost("claude-haiku-4-5", usage) == 0
    with pytest.raises(ProviderConfigError, match="bad price"):
        load_prices({"m": {"inptu": 1}})
    with pytest.raises(ProviderConfigError, match="cannot read"):
        load_prices(tmp_path / "absent.json")


def test_registry_names_and_unknown_name() -> None:
    assert set(PROVIDERS) == {"anthropic", "openai", "replay", "scripted"}
    with pytest.raises(ProviderConfigError, match="unknown LLM provider 'antropic'"):
        get_provider("antropic")
    with pytest.raises(ProviderConfigError, match="root="):
        get_provider("replay")
    with pytest.raises(ProviderConfigError, match="no model"):
        get_provider("openai", api_key="EMPTY")


def test_openai_missing_sdk_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "openai", None)  # what an install without the extra looks like
    with pytest.raises(ProviderConfigError, match=r"pytest-kernelfalcon\[openai\]"):
        get_provider("openai", api_key="EMPTY", model="m", base_url="http://127.0.0.1:1/v1")


def test_every_provider_and_the_recorder_satisfy_the_protocol(tmp_path: Path) -> None:
    from pytest_kernelfalcon.llm import Provider, Recorder

    providers = [
        get_provider("anthropic", api_key="k", model="claude-haiku-4-5"),
        get_provider("openai", api_key="EMPTY", model="m", base_url="http://127.0.0.1:1/v1"),
        get_provider("replay", root=tmp_path),
        get_provider("scripted", answers=["x"]),
    ]
    for provider in providers:
        assert isinstance(provider, Provider)
        assert isinstance(Recorder(provider, tmp_path), Provider)
        provider.close()
