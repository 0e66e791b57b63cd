"""Fixtures for checker tests: tiny inline tasks and candidates written to tmp dirs."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from checker_samples import HEADER, RELU_TASK, write

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions


@pytest.fixture(scope="session")
def relu_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ReLU task on signed (randn) inputs."""
    return write(tmp_path_factory.mktemp("tasks") / "relu.py", RELU_TASK.format(dist="randn"))


@pytest.fixture(scope="session")
def positive_relu_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ReLU task on torch.rand inputs: low signal (the input itself passes)."""
    return write(tmp_path_factory.mktemp("tasks") / "relu_rand.py", RELU_TASK.format(dist="rand"))


@pytest.fixture(scope="module")
def cpu_checker() -> Iterator[Checker]:
    """One checker per module so candidates of a task share the cached reference."""
    checker = Checker(CheckOptions(device="cpu", shapes="official", seeds=2, timeout_s=60.0))
    yield checker
    checker.close()


@pytest.fixture
def candidate(tmp_path: Path) -> Callable[[str], Path]:
    """Write a candidate made of the Triton header plus ``body``; return its path."""

    def make(body: str, header: str = HEADER) -> Path:
        return write(tmp_path / "candidate.py", textwrap.dedent(header) + textwrap.dedent(body))

    return make
