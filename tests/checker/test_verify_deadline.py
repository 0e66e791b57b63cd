"""``kernelfalcon verify`` never hangs (issue 22): past its deadline the verdict is a harness_error naming the
stage that waited, exit 3, and no process it started is left."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pytest_kernelfalcon.executor.leases import FOLDER, SIMULATED_ENV, Card, lease

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tests" / "corpus" / "tasks" / "scaled_add.py"
CANDIDATE = ROOT / "tests" / "corpus" / "own_scaled_add" / "correct.py"


def _leftovers(mark: str) -> list[int]:
    """Processes whose environment carries ``mark`` (every child of the command inherits it)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if mark.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _verify(card: str, mark: str, deadline: float) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, SIMULATED_ENV: f"{card}:{64 << 30}", "KF_TEST_MARK": mark,
           "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest_kernelfalcon.cli", "verify", str(TASK), str(CANDIDATE),
                           "--device", "cpu", "--shapes", "official", "--deadline", str(deadline), "--json"],
                          env=env, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - start


def _settled(mark: str) -> list[int]:
    end = time.monotonic() + 5
    while _leftovers(mark) and time.monotonic() < end:
        time.sleep(0.2)
    return _leftovers(mark)


@pytest.fixture()
def card_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_a_check_waiting_on_a_held_lease_ends_at_its_deadline(card_name: str) -> None:
    mark = uuid.uuid4().hex
    with lease(Card(f"simulated-{card_name}", 64 << 30), None):  # this test holds the whole card
        done, took = _verify(card_name, mark, 6.0)
    assert done.returncode == 3, done.stderr[-2000:]
    verdict = json.loads(done.stdout)
    assert verdict["category"] == "harness_error"
    assert "deadline of kernelfalcon verify (6 s" in verdict["detail"] and "GPU memory" in verdict["detail"]
    assert took < 6.0 + 8.0
    assert _settled(mark) == []


def test_a_wait_nobody_bounded_is_ended_from_outside(card_name: str, tmp_path: Path) -> None:
    """The lease folder's mutex held forever (a bookkeeping lock no wait polls): the watchdog ends the command."""
    import tempfile

    folder = Path(tempfile.gettempdir()) / FOLDER / f"simulated-{card_name}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mark = uuid.uuid4().hex
    with open(folder / "mutex", "a") as mutex:
        fcntl.flock(mutex, fcntl.LOCK_EX)
        done, took = _verify(card_name, mark, 3.0)
    assert done.returncode == 3, done.stderr[-2000:]
    verdict = json.loads(done.stdout)
    assert verdict["category"] == "harness_error" and verdict["audit"]["deadline"]["stage"].startswith("GPU memory")
    assert took < 3.0 + 10.0 + 8.0  # the deadline, the watchdog's grace, the start
    assert _settled(mark) == []
