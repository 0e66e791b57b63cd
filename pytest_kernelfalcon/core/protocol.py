"""What crosses the process boundary: job modes, shared limits and messages, read by both sides.

The parent writes ``job.pt`` and reads ``result.pt`` (both ``weights_only``); the child does
the reverse. Constants that both sides need are defined here once.
"""

from __future__ import annotations

import signal
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding pytest_kernelfalcon/

FILE_LIMIT = 8 << 30  # RLIMIT_FSIZE of every child process (bytes)
DATA_PATHS = ("auto", "files", "resident")
CANDIDATE_START_S = 60.0  # resident path: the candidate's process gets this long to start before its time limit runs
TIMING_REFUSED = "timing needs a CUDA GPU: CPU or TRITON_INTERPRET timings say nothing about kernel speed"


def signal_name(code: int) -> str:
    """Return ``SIGKILL`` for 9 (or "signal N" when unknown)."""
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"
