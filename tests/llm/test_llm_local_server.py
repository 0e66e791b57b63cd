"""The openai provider against what llama-cpp-python's server really sends (replayed by the fake service).

The answer texts are recorded model output (Qwen2.5-Coder-1.5B-Instruct Q4_K_M on a CPU, recorded by the
``Recorder`` during ``benchmarks/local_model.sh``; see ``tests/recorded/README.md``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fake_llm_server import FakeLLM, Step

from pytest_kernelfalcon.llm import get_provider

RECORDED = Path(__file__).resolve().parent.parent / "recorded"


def recorded(name: str) -> dict[str, Any]:
    """Return one recorded call (the recorder's JSON) from ``tests/recorded``."""
    return json.loads((RECORDED / f"{name}.json").read_text(encoding="utf-8"))


def test_a_stream_without_usage_is_marked_not_reported(fake_llm: FakeLLM) -> None:
    real = recorded("direct_relu_r1")
    text, stop = real["response"]["text"], real["response"]["stop_reason"]
    assert real["response"]["usage"]["reported"] is False  # what the real server did: no usage in the stream
    fake_llm.queue(Step(text=text, stream_usage=False, finish_reason=stop, chunks=50), Step(text=text))
    provider = get_provider("openai", api_key="EMPTY", base_url=fake_llm.url + "/v1", model="qwen", timeout=5.0)
    first = provider.complete([{"role": "user", "content": "write ModelNew"}], max_tokens=512)
    assert first.text == text and first.stop_reason == stop
    assert not first.usage.reported and first.usage.output_tokens == 0  # zero, and said to be unmeasured
    second = provider.complete([{"role": "user", "content": "again"}], max_tokens=512)
    assert second.usage.reported and second.usage.output_tokens == 300  # a server that does send usage
    assert all(r["body"]["stream"] is True for r in fake_llm.requests)  # streaming kept: per-piece timeouts


def test_a_slow_stream_within_the_timeout_per_piece_succeeds(fake_llm: FakeLLM) -> None:
    # The real server, after a stream without usage, was called non-streamed and timed out at 600 s
    # (the recorded level1/21_Sigmoid direct call): streamed, the timeout bounds each piece instead.
    assert recorded("direct_sigmoid_r1_timeout")["error"]["type"] == "ProviderTimeout"
    text = recorded("direct_relu_r1")["response"]["text"]
    fake_llm.queue(Step(text=text, stream_usage=False, chunks=6, event_delay_s=0.3))
    provider = get_provider("openai", api_key="EMPTY", base_url=fake_llm.url + "/v1", model="qwen", timeout=1.0)
    answer = provider.complete([{"role": "user", "content": "write ModelNew"}])
    assert answer.text == text and answer.latency_s > 1.0  # longer than the timeout in all, never per piece
