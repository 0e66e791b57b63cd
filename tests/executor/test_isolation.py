"""Isolation of untrusted code: secrets in harness processes, signals, network, fork bombs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from samples import import_job, read_json, uid_processes

from pytest_kernelfalcon.checker.judge import job_failure
from pytest_kernelfalcon.core.isolation import IsolationPolicy
from pytest_kernelfalcon.executor.base import Job
from pytest_kernelfalcon.executor.cold import ColdExecutor
from pytest_kernelfalcon.executor.isolation import candidate_uid, probe
from pytest_kernelfalcon.executor.warm import WarmExecutor

SNOOP = """
import json, os

def parent(pid):
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])

found, pid = [], os.getppid()
while pid > 1:
    try:
        text = open(f"/proc/{pid}/environ", "rb").read()
        how = "read: key" if b"sk-fake-harness" in text else "read: no key"
    except OSError as exc:
        how = "denied: " + type(exc).__name__
    try:
        os.kill(pid, 0)
        sig = "allowed"
    except PermissionError:
        sig = "denied"
    found.append({"pid": pid, "environ": how, "signal": sig})
    pid = parent(pid)
json.dump(found, open("snoop.json", "w"))
class ModelNew: pass
"""

HARNESS = """
import json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from samples import import_job
from pytest_kernelfalcon.executor.base import Job
from pytest_kernelfalcon.executor.cold import ColdExecutor
from pytest_kernelfalcon.executor.warm import WarmExecutor
kind, jobdir, body = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]).read_text()
executor = WarmExecutor(device="cpu") if kind == "warm" else ColdExecutor(isolation=__import__(
    "pytest_kernelfalcon.core.isolation", fromlist=["x"]).IsolationPolicy())
result = executor.run(Job(import_job(jobdir, body), 60.0, "cpu"))
executor.close()
print(json.dumps({{"harness": __import__("os").getpid(), "rc": result.returncode}}))
"""


def run_harness(tmp_path: Path, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start a harness process holding a fake API key; its candidate snoops on every ancestor."""
    script = tmp_path / "harness.py"
    script.write_text(HARNESS.format(tests=str(Path(__file__).parent)))
    (tmp_path / "snoop.py").write_text(textwrap.dedent(SNOOP))
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-fake-harness"}
    out = subprocess.run([sys.executable, str(script), kind, str(tmp_path / "job"), str(tmp_path / "snoop.py")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    return info, read_json(tmp_path / "job" / "snoop.json")


@pytest.mark.parametrize("kind", ["warm", "cold"])
def test_candidate_cannot_read_or_signal_the_harness(tmp_path: Path, kind: str) -> None:
    info, seen = run_harness(tmp_path, kind)
    assert info["rc"] == 0
    harness = next(s for s in seen if s["pid"] == info["harness"])
    assert harness["environ"].startswith("denied"), seen
    assert not any(s["environ"] == "read: key" for s in seen), seen
    if os.geteuid() == 0:
        assert all(s["signal"] == "denied" for s in seen), seen


def test_probe_says_what_applies() -> None:
    report = probe(IsolationPolicy())
    assert "rlimits" in report.applied and "no_new_privs" in report.applied
    if os.geteuid() == 0:
        assert report.uid == candidate_uid(IsolationPolicy(), 0) and f"uid {report.uid}" in report.applied
    else:
        assert ("uid", "harness is not root") in report.missing
    assert "isolation:" in report.describe()


@pytest.fixture
def tcp_server() -> Any:
    """A TCP server on 127.0.0.1 that accepts connections; yields its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


CONNECT = """
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    how = "connected"
except OSError as exc:
    how = type(exc).__name__
open("net.txt", "w").write(how)
class ModelNew: pass
"""


def test_network_is_denied_where_the_namespace_works(tmp_path: Path, tcp_server: int) -> None:
    body = CONNECT.format(port=tcp_server)
    with WarmExecutor(device="cpu") as warm:
        if "netns" not in warm.isolation_report.applied:
            pytest.skip(f"no network namespace here: {warm.isolation_report.describe()}")
        assert warm.run(Job(import_job(tmp_path / "warm", body), 60.0, "cpu")).returncode == 0
    assert (tmp_path / "warm" / "net.txt").read_text() != "connected"
    open_policy = IsolationPolicy(network=False)
    result = ColdExecutor(isolation=open_policy).run(Job(import_job(tmp_path / "cold", body), 60.0, "cpu"))
    assert result.returncode == 0
    assert (tmp_path / "cold" / "net.txt").read_text() == "connected"  # the probe itself can connect


BOMB = """
import os, time
made = 0
try:
    while made < 5000:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        made += 1
except OSError as exc:
    pass
open("made.txt", "w").write(str(made))
class ModelNew: pass
"""


def test_fork_bomb_is_bounded_and_cleaned_up(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("RLIMIT_NPROC counts all processes of the harness uid without root")
    policy = IsolationPolicy(nproc=48)
    with WarmExecutor(device="cpu", isolation=policy) as warm:
        result = warm.run(Job(import_job(tmp_path / "job", BOMB), 60.0, "cpu"))
        assert job_failure(result, "candidate") is None, result
        made = int((tmp_path / "job" / "made.txt").read_text())
        assert 0 < made < 48
        uid = next(iter(warm.pools().values())).live.copy().pop().uid
        assert uid is not None and uid_processes(uid) == []
        again = warm.run(Job(import_job(tmp_path / "again", "class ModelNew: pass\n"), 60.0, "cpu"))
        assert job_failure(again, "candidate") is None
