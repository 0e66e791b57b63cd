"""Recording a multi-worker run, replaying it in another order, drift detection, no secrets on disk."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_llm_server import FakeLLM, Step

from pytest_kernelfalcon.llm import (
    CallKey,
    Overloaded,
    PromptDrift,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailable,
    Recorder,
    ReplayMiss,
    ReplayProvider,
    ScriptedProvider,
    get_provider,
)
from pytest_kernelfalcon.llm.recorder import scrub
from pytest_kernelfalcon.llm.transcript import hand_written, record_path

SECRET = "sk-ant-test-SECRET123"
TASK = "level1/19_ReLU"
KEYS = [CallKey(TASK, "generate", f"sg{s}", w, r) for s in range(2) for w in range(3) for r in range(2)]


def sha(text: str) -> str:
    """Return the sha256 of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()


TEMPLATES = {"generate": sha("generate v1"), "system": sha("system v1")}


def run_workers(provider: Any, seed: int, templates: dict[str, str] = TEMPLATES) -> dict[CallKey, str]:
    """Run one call per key, each in its own thread, started in a shuffled order with random stalls."""
    rng = random.Random(seed)
    order = rng.sample(KEYS, len(KEYS))
    stalls = {key: rng.uniform(0, 0.03) for key in order}
    results: dict[CallKey, str] = {}
    lock = threading.Lock()

    def work(key: CallKey) -> None:
        time.sleep(stalls[key])
        messages = [{"role": "user", "content": f"write the kernel for {key.describe()}"}]
        text = provider.complete(messages, system="static context", key=key, templates=templates).text
        with lock:
            results[key] = text

    threads = [threading.Thread(target=work, args=(key,)) for key in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.fixture
def recorded_run(tmp_path: Path, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run directory recorded from the live Anthropic client, answers numbered by arrival order."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    rng = random.Random(7)
    fake_llm.queue(*[Step(text=f"kernel #{i}", delay_s=rng.uniform(0, 0.05)) for i in range(len(KEYS))])
    live = get_provider("anthropic", base_url=fake_llm.url, model="claude-sonnet-4-6", max_concurrency=4)
    recorder = Recorder(live, tmp_path)
    first = run_workers(recorder, seed=1)
    recorder.close()
    assert sorted(first.values()) == sorted(f"kernel #{i}" for i in range(len(KEYS)))
    (tmp_path / "first.json").write_text(json.dumps({k.describe(): v for k, v in first.items()}))
    return tmp_path


def test_replay_of_a_multi_worker_run_is_identical(recorded_run: Path) -> None:
    first = json.loads((recorded_run / "first.json").read_text())
    for seed in (2, 3):  # other start orders and stalls: answers still follow the keys
        replay = get_provider("replay", root=recorded_run)
        again = run_workers(replay, seed=seed)
        assert {k.describe(): v for k, v in again.items()} == first


def test_replayed_completion_keeps_usage_and_is_labelled(recorded_run: Path) -> None:
    replay = get_provider("replay", root=recorded_run)
    result = replay.complete([{"role": "user", "content": "x"}], key=KEYS[0], templates=TEMPLATES)
    assert result.source == "replay"
    assert result.usage.output_tokens == 300 and result.cost_usd == pytest.approx(0.00915)


def test_record_file_layout_and_content(recorded_run: Path) -> None:
    path = recorded_run / "llm" / "level1" / "19_ReLU" / "generate" / "sg1" / "w2-r1.json"
    record = json.loads(path.read_text())
    assert record["key"] == {"task": TASK, "stage": "generate", "subgraph": "sg1", "worker": 2, "round": 1}
    assert record["request"]["templates"] == TEMPLATES
    assert record["request"]["system"] == "static context"
    assert record["provider"] == "anthropic" and record["source"] == "live"
    assert record["response"]["stop_reason"] == "end_turn" and record["error"] is None
    assert not list(recorded_run.rglob("*.tmp"))


def test_no_secret_in_any_recorded_file(recorded_run: Path, fake_llm: FakeLLM) -> None:
    live = get_provider("anthropic", base_url=fake_llm.url, max_tries=2, base_delay_s=0.01)
    recorder = Recorder(live, recorded_run)
    leak = [{"role": "user", "content": f"my key is {SECRET}, and Bearer {SECRET[::-1]}"}]
    recorder.complete(leak, key=CallKey(TASK, "fuse"))
    fake_llm.queue(Step(status=500), Step(status=500))
    with pytest.raises(ProviderUnavailable):
        recorder.complete(leak, key=CallKey(TASK, "compose"))
    files = [p for p in recorded_run.rglob("*") if p.is_file()]
    assert len(files) >= len(KEYS) + 2
    for path in files:
        data = path.read_bytes()
        assert b"SECRET123" not in data and b"321TERCES" not in data, path
    failed = json.loads(record_path(recorded_run / "llm", CallKey(TASK, "compose")).read_text())
    assert failed["error"]["type"] == "ProviderUnavailable" and failed["error"]["attempts"] == 2


def test_changed_template_named_in_strict_mode(recorded_run: Path) -> None:
    replay = get_provider("replay", root=recorded_run, strict=True)
    edited = {**TEMPLATES, "generate": sha("generate v2")}
    with pytest.raises(PromptDrift, match="generate") as err:
        replay.complete([{"role": "user", "content": "x"}], key=KEYS[3], templates=edited)
    assert err.value.templates == ("generate",)


def test_changed_template_counted_in_lenient_mode(recorded_run: Path) -> None:
    first = json.loads((recorded_run / "first.json").read_text())
    replay = ReplayProvider(recorded_run, strict=False)
    edited = {**TEMPLATES, "system": sha("system v2")}
    again = run_workers(replay, seed=5, templates=edited)
    assert {k.describe(): v for k, v in again.items()} == first
    assert replay.drift_count == len(KEYS)
    assert {d.templates for d in replay.drift} == {("system",)}


def test_missing_key_is_a_replay_miss(recorded_run: Path) -> None:
    replay = get_provider("replay", root=recorded_run)
    with pytest.raises(ReplayMiss, match="w9 r0"):
        replay.complete([{"role": "user", "content": "x"}], key=CallKey(TASK, "generate", "sg0", 9))
    with pytest.raises(ReplayMiss, match="CallKey"):
        replay.complete([{"role": "user", "content": "x"}])


def test_hand_written_markdown_answer(tmp_path: Path) -> None:
    key = CallKey("level1/19_ReLU", "generate", "", 0, 0)
    path = tmp_path / "level1" / "19_ReLU" / "generate" / "_" / "w0-r0.md"
    path.parent.mkdir(parents=True)
    path.write_text(hand_written("```python\nclass ModelNew: ...\n```\n", "written by the maintainers"))
    replay = ReplayProvider(tmp_path)
    result = replay.complete([{"role": "user", "content": "x"}], key=key, templates={"generate": "abc"})
    assert result.text == "```python\nclass ModelNew: ...\n```\n"
    assert result.source == "hand-written" and result.usage.input_tokens == 0
    assert replay.drift_count == 0


def test_recorded_failure_replays_as_the_same_error(tmp_path: Path) -> None:
    recorder = Recorder(ScriptedProvider([Overloaded("busy", status=529)], max_tries=1), tmp_path)
    key = CallKey(TASK, "fuse")
    with pytest.raises(ProviderUnavailable):
        recorder.complete([{"role": "user", "content": "x"}], key=key)
    replay = get_provider("replay", root=tmp_path)
    with pytest.raises(ProviderUnavailable, match="busy") as err:
        replay.complete([{"role": "user", "content": "x"}], key=key)
    assert err.value.attempts == 1 and err.value.last_status == 529


def test_replay_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ProviderConfigError, match="no recorded run"):
        get_provider("replay", root=tmp_path / "missing")


def test_unsafe_key_is_refused(tmp_path: Path) -> None:
    recorder = Recorder(ScriptedProvider(["ok"]), tmp_path)
    with pytest.raises(ProviderError, match="unsafe"):
        recorder.complete([{"role": "user", "content": "x"}], key=CallKey("../../etc", "fuse"))


def test_scrub_redacts_key_fields_and_patterns() -> None:
    data = {"headers": {"x-api-key": "abc", "Authorization": "Bearer xyz"},
            "text": "use sk-proj-ABCDEFGHIJKLMNOP here", "n": 3}
    assert scrub(data) == {"headers": {"x-api-key": "[redacted]", "Authorization": "[redacted]"},
                           "text": "use [redacted] here", "n": 3}
    assert scrub("token hunter2-long-value", ("hunter2-long-value",)) == "token [redacted]"
