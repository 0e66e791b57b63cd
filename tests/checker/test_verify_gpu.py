"""verify on a CUDA GPU (compiled Triton): launches counted, torch compute and side streams caught."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from checker_samples import CORRECT_FORWARD, RELU_TASK, write

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
from pytest_kernelfalcon.core.verdict import Category

Make = Callable[[str], Path]
pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu_checker() -> Iterator[Checker]:
    """A CUDA checker at official shapes."""
    checker = Checker(CheckOptions(device="cuda", shapes="official", seeds=2, timeout_s=120.0))
    yield checker
    checker.close()


@pytest.fixture(scope="module")
def big_relu_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ReLU task large enough that unsynchronised side-stream work is still running at copy time."""
    source = RELU_TASK.format(dist="randn").replace("batch_size = 16", "batch_size = 4096")
    return write(tmp_path_factory.mktemp("gpu") / "relu_big.py", source.replace("dim = 64", "dim = 8192"))


def test_correct_relu_passes_on_gpu(gpu_checker: Checker, big_relu_task: Path, candidate: Make) -> None:
    verdict = gpu_checker.verify(big_relu_task, candidate(CORRECT_FORWARD))
    assert verdict.passed, verdict.detail
    assert verdict.device == "cuda" and verdict.audit["launches_per_trial"] == [1, 1]


def test_torch_compute_on_gpu(gpu_checker: Checker, big_relu_task: Path, candidate: Make) -> None:
    verdict = gpu_checker.verify(big_relu_task, candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                relu(x, torch.empty_like(x))
                return x.clamp_min(0.0)
    """))
    assert verdict.category == Category.TORCH_COMPUTE and "clamp_min" in verdict.detail


def test_unsynchronised_side_stream(gpu_checker: Checker, big_relu_task: Path, candidate: Make) -> None:
    verdict = gpu_checker.verify(big_relu_task, candidate("""
        class ModelNew(nn.Module):
            def forward(self, x):
                y = torch.empty_like(x)
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    torch.cuda._sleep(200_000_000)
                    relu(x, y)
                return y
    """))
    assert verdict.category == Category.SIDE_STREAM, verdict.detail


SIDE_STREAM_FORWARD = """
    class ModelNew(nn.Module):
        def __init__(self):
            super().__init__()
            self.side = torch.cuda.Stream()

        def forward(self, x):
            y = torch.empty_like(x)
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                relu(x, y)
            {join}
            return y
"""


@pytest.mark.parametrize("data_path", ["files", "resident"])
def test_small_unsynchronised_side_stream(relu_task: Path, candidate: Make, data_path: str) -> None:
    """A microsecond kernel on a side stream is done before any copy of its output: the stream check still sees
    that forward returned without waiting for it."""
    options = CheckOptions(device="cuda", shapes="official", seeds=2, timeout_s=120.0, data_path=data_path)
    checker = Checker(options)
    try:
        verdict = checker.verify(relu_task, candidate(SIDE_STREAM_FORWARD.replace("{join}", "")))
    finally:
        checker.close()
    assert verdict.category == Category.SIDE_STREAM, verdict.detail


@pytest.mark.parametrize("join", ["torch.cuda.current_stream().wait_stream(self.side)", "self.side.synchronize()"])
def test_side_stream_the_caller_waits_for_passes(relu_task: Path, candidate: Make, join: str) -> None:
    checker = Checker(CheckOptions(device="cuda", shapes="official", seeds=2, timeout_s=120.0))
    try:
        verdict = checker.verify(relu_task, candidate(SIDE_STREAM_FORWARD.replace("{join}", join)))
    finally:
        checker.close()
    assert verdict.passed, verdict.detail
