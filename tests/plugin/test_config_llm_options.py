"""The LLM options a local server needs reach the pipeline config and the provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_kernelfalcon.config import FalconConfig
from pytest_kernelfalcon.session import FalconSession


def test_strategy_tokens_timeout_and_base_url_reach_the_openai_provider(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    cfg = FalconConfig.from_values({"falcon": True, "falcon_provider": "openai", "falcon_model": "qwen",
                                    "falcon_strategy": "direct", "falcon_max_rounds": 2,
                                    "falcon_base_url": "http://127.0.0.1:9/v1", "falcon_max_output_tokens": 512,
                                    "falcon_llm_timeout": 1800.0, "falcon_device": "cpu"})
    session = FalconSession(cfg, tmp_path, "run")
    config = session.pipeline_config()
    assert (config.strategy, config.max_output_tokens, config.llm_timeout_s) == ("direct", 512, 1800.0)
    assert config.fuse_rounds == 2 and config.compose_rounds == 2  # capped by --falcon-max-rounds
    assert config.fuse == "auto"  # the default: a one-subgraph task keeps its module
    assert FalconConfig.from_values({"falcon": True, "falcon_fuse": "always"}).pipeline_config(None).fuse == "always"
    provider = session.make_provider(config)
    try:
        assert provider.base_url == "http://127.0.0.1:9/v1"
        assert provider._client.timeout == 1800.0
    finally:
        provider.close()


@pytest.mark.parametrize("values, message", [
    ({"falcon_strategy": "oneshot"}, "--falcon-strategy must be one of staged, direct"),
    ({"falcon_fuse": "never"}, "--falcon-fuse must be one of auto, always"),
    ({"falcon_max_output_tokens": 0}, "--falcon-max-output-tokens must be at least 1"),
    ({"falcon_llm_timeout": 0.0}, "--falcon-llm-timeout must be a positive number"),
])
def test_bad_values_are_usage_errors(values: dict[str, object], message: str) -> None:
    with pytest.raises(pytest.UsageError, match=message):
        FalconConfig.from_values({"falcon": True, **values})
