"""Fixtures for the pipeline tests: a CPU checker (Triton interpreter), contexts, a prepared spec."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pipeline_tiny as tiny
import pytest


@pytest.fixture(autouse=True)
def _triton_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """This directory's in-process Triton runs in the interpreter; set per test, so GPU tests elsewhere see no leak."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture(scope="module")
def checker() -> Iterator[Any]:
    """A CPU checker (scaled shapes, one seed); its reference cache is shared by a module's tests."""
    from pytest_kernelfalcon.checker.checker import Checker, CheckOptions

    made = Checker(CheckOptions(device="cpu", shapes="scaled", seeds=1, timeout_s=120))
    yield made
    made.close()


@pytest.fixture
def make_ctx(tmp_path: Path, checker: Any) -> Callable[..., Any]:
    """Return ``make(provider, **config)`` -> a ``RunContext`` in ``tmp_path/runs`` (workers=2)."""
    from pytest_kernelfalcon.pipeline import PipelineConfig, RunContext

    def make(provider: Any, **config: Any) -> Any:
        config = {"workers": 2, "max_rounds": 2, "check": checker.options, "run_root": tmp_path / "runs",
                  **config}
        return RunContext.build(PipelineConfig(**config), provider, checker=checker,
                                executor=checker.executor)

    return make


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A task dir with an accepted ``fused.py`` and extracted specs (extract runs once per module)."""
    from pytest_kernelfalcon.pipeline.extract import ExtractRequest, extract_subgraphs
    from pytest_kernelfalcon.pipeline.sources import fused_file

    root = tmp_path_factory.mktemp("prepared")
    task = tiny.write_task(root)
    out = root / "out"
    out.mkdir()
    (out / "fused.py").write_text(fused_file(tiny.FUSED, task.read_text()))
    result = extract_subgraphs(ExtractRequest(task, out / "fused.py", out))
    assert result.error is None, result.error
    return root
