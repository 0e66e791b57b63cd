"""GPU memory leases on a simulated card (issue 22): many processes at once never sum past the card."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_kernelfalcon.executor.deadline import Deadline, DeadlinePassed
from pytest_kernelfalcon.executor.leases import SIMULATED_ENV, Card, card_for, lease

HOLDER = """
import os, random, sys, time
from pathlib import Path
from pytest_kernelfalcon.executor.leases import Card, lease
root, log, capacity, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
card = Card("sim", capacity)
for _ in range(3):
    size = None if rng.random() < 0.15 else rng.choice([20, 35, 50, 70])
    with lease(card, size, root=root):
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        os.write(fd, f"+ {time.monotonic():.6f} {size}\\n".encode())
        time.sleep(rng.uniform(0.01, 0.08))
        os.write(fd, f"- {time.monotonic():.6f} {size}\\n".encode())
        os.close(fd)
"""


def _intervals(log: Path) -> list[tuple[float, float, int | None]]:
    opened: dict[str, list[float]] = {}
    found = []
    for line in log.read_text().splitlines():
        sign, stamp, size = line.split()
        if sign == "+":
            opened.setdefault(size, []).append(float(stamp))
        else:
            found.append((opened[size].pop(0), float(stamp), None if size == "None" else int(size)))
    return found


def test_many_processes_never_lease_more_than_the_card(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.touch()
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "leases"), str(log), "100", str(k)])
             for k in range(8)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    spans = _intervals(log)
    assert len(spans) == 24  # everyone got every lease
    for moment in sorted(start for start, _, _ in spans):  # what was held when each lease began
        held = [size for start, end, size in spans if start <= moment < end]
        assert None not in held or len(held) == 1, f"an exclusive lease ran beside another at {moment}: {held}"
        assert sum(size or 0 for size in held) <= 100


def test_a_lease_of_a_killed_holder_is_released(tmp_path: Path) -> None:
    hold = ("import sys, time; from pathlib import Path; from pytest_kernelfalcon.executor.leases import Card, lease\n"
            "with lease(Card('sim', 100), None, root=Path(sys.argv[1])):\n"
            "    print('held', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with pytest.raises(DeadlinePassed), lease(Card("sim", 100), 10, Deadline(0.5), root=tmp_path):
        pass  # held: a request waits
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with lease(Card("sim", 100), None, Deadline(10.0), root=tmp_path) as held:
        assert held.nbytes is None and held.beside == 0


def test_requests_are_served_in_order_so_running_alone_is_not_starved(tmp_path: Path) -> None:
    card, order = Card("sim", 100), []
    first_held, release_first = threading.Event(), threading.Event()

    def take(name: str, size: int | None, after: threading.Event | None = None) -> None:
        if after is not None:
            after.wait(10)
        with lease(card, size, Deadline(30.0), root=tmp_path):
            order.append(name)
            if name == "first":
                first_held.set()
                release_first.wait(10)

    threads = [threading.Thread(target=take, args=("first", 60))]
    threads[0].start()
    first_held.wait(10)
    alone = threading.Thread(target=take, args=("alone", None))
    alone.start()
    time.sleep(0.5)  # the exclusive request is queued before the small one
    small = threading.Thread(target=take, args=("small", 30))
    small.start()
    time.sleep(0.5)
    assert order == ["first"]  # 30 would fit beside 60, but it waits behind the older request to run alone
    release_first.set()
    for thread in (*threads, alone, small):
        thread.join(30)
    assert order == ["first", "alone", "small"]


def test_a_card_that_reports_no_size_runs_every_lease_alone(tmp_path: Path) -> None:
    card = Card("unknown", None)
    with lease(card, 1, root=tmp_path) as held:
        assert held.nbytes is None
        with pytest.raises(DeadlinePassed) as caught, lease(card, 1, Deadline(0.3), root=tmp_path):
            pass
    assert "GPU memory" in caught.value.stage


def test_a_lease_larger_than_the_card_runs_alone(tmp_path: Path) -> None:
    with lease(Card("sim", 100), 500, root=tmp_path) as held:
        assert held.nbytes is None


def test_the_simulated_card_applies_on_any_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIMULATED_ENV, "small:4096")
    assert card_for("cpu", None) == Card("simulated-small", 4096, "simulated")
    monkeypatch.setenv(SIMULATED_ENV, "nothing:")
    assert card_for("cpu", None).capacity is None  # type: ignore[union-attr]
    monkeypatch.delenv(SIMULATED_ENV)
    assert card_for("cpu", None) is None
