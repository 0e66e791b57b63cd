"""Shared fixtures: where the real KernelBench problems are, and the GPU marker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _interpret_where_no_gpu() -> None:
    """Without CUDA every kernel runs in Triton's interpreter: say so before anything imports triton.

    ``triton.language``'s own ``@jit`` helpers (``tl.max``, ``tl.softmax``) are decided at import;
    imported without ``TRITON_INTERPRET=1``, kernels that call them fail in the interpreter later
    ("Cannot call @triton.jit'd outside of the scope of a kernel"), depending on which test of an
    xdist worker imported triton first. On a GPU machine the tests that need it set it per test.
    """
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


_interpret_where_no_gpu()


def kernelbench_root() -> Path:
    """Return ``KERNELBENCH_DIR`` or the default ``../shared/kernelbench`` beside the repo."""
    default = REPO.parent / "shared" / "kernelbench"
    return Path(os.environ.get("KERNELBENCH_DIR", default))


@pytest.fixture(scope="session")
def kernelbench_dir() -> Path:
    """The real KernelBench problems; skips the test cleanly where they are absent."""
    root = kernelbench_root()
    if not (root / "level1").is_dir():
        pytest.skip(f"KernelBench problems not found at {root} (set KERNELBENCH_DIR)")
    return root


@pytest.fixture(autouse=True, scope="session")
def _session_reference_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The reference cache of CLI and plugin runs (``auto`` as root) goes to a folder of this session,
    never the user's ``~/.cache``."""
    patch = pytest.MonkeyPatch()
    patch.setenv("KERNELFALCON_REFERENCE_CACHE", str(tmp_path_factory.mktemp("reference-cache")))
    yield
    patch.undo()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.gpu`` tests where CUDA is not available."""
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the GPU machine)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
