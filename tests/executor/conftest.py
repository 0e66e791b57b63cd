"""Fixtures for executor tests: one warm pool per module, tiny job directories."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def _triton_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """This directory's in-process Triton runs in the interpreter; set per test, so GPU tests elsewhere see no leak."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture(scope="module")
def warm() -> Iterator[object]:
    """A CPU WarmExecutor with two workers, shared by a module's tests."""
    from pytest_kernelfalcon.executor.warm import WarmExecutor

    executor = WarmExecutor(pool_size=2, device="cpu")
    yield executor
    executor.close()
