"""The checker's own corpus tasks through the resident data path, on the CPU (Triton interpreter).

Every entry of ``tests/corpus/expected.json`` on one of our own small tasks
(``corpus:tasks/...``) that applies on the CPU is verified with
``data_path="resident"``: the candidate runs in its own process beside the comparer
and hands its tensors over the pipes of ``handoff.py``. Plus adversarial candidates
aimed at that channel: a forged ``done`` message and a candidate that kills its comparer.
One ``Checker`` per (task, timeout) and module; ``--dist loadgroup`` keeps a task on one worker.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_corpus import (
    CORPUS,
    DETAIL_PATTERNS,
    Entry,
    assert_expected_verdict,
    load_entries,
    verdict_name,
)

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
from pytest_kernelfalcon.core.verdict import Category, Verdict

RESIDENT_TIMEOUT_S = 60.0
SCALED_ADD = "corpus:tasks/scaled_add.py"


def own_entries() -> list[Entry]:
    """The corpus entries on our own tasks whose expectation applies on the CPU."""
    return [e for e in load_entries() if e.task.startswith("corpus:") and "cpu" in e.devices]


def task_file(task: str) -> Path:
    """The file of a ``corpus:`` task."""
    return CORPUS / task.split(":", 1)[1]


def timeout_for(entry: Entry) -> float:
    """An entry's own timeout, else the resident default."""
    return float(entry.timeout_s) if entry.timeout_s is not None else RESIDENT_TIMEOUT_S


@pytest.fixture(scope="module")
def resident_checker() -> Iterator[Callable[[str, float], Checker]]:
    """A factory of resident-path CPU ``Checker`` objects, one per (task, timeout), closed at module end."""
    made: dict[tuple[str, float], Checker] = {}

    def get(task: str, timeout_s: float = RESIDENT_TIMEOUT_S) -> Checker:
        if (task, timeout_s) not in made:
            options = CheckOptions(device="cpu", shapes="official", data_path="resident", timeout_s=timeout_s)
            made[(task, timeout_s)] = Checker(options)
        return made[(task, timeout_s)]

    yield get
    for checker in made.values():
        checker.close()


def _entry_params() -> list[Any]:
    return [pytest.param(e, id=e.key, marks=pytest.mark.xdist_group(e.task)) for e in own_entries()]


def _task_params() -> list[Any]:
    tasks = sorted({e.task for e in own_entries()})
    return [pytest.param(t, id=t, marks=pytest.mark.xdist_group(t)) for t in tasks]


def test_corpus_has_own_cpu_tasks() -> None:
    entries = own_entries()
    assert len({e.task for e in entries}) >= 3
    assert {e.task for e in entries if e.expected == "pass"} == {e.task for e in entries}


@pytest.mark.parametrize("task", _task_params())
def test_reference_is_resident(task: str, resident_checker: Callable[[str, float], Checker]) -> None:
    checker = resident_checker(task, RESIDENT_TIMEOUT_S)
    reference = checker.reference(task_file(task).read_text())
    assert not isinstance(reference, Verdict), reference
    assert reference.resident is True
    assert len(reference.cases) == 1 and reference.cases[0].plan.get("overrides") in (None, {})
    trials = reference.cases[0].trials
    assert [t["seed"] for t in trials] == [checker.base_seed + i for i in range(checker.options.seeds)]
    assert all("outputs" not in t and "inputs" not in t for t in trials)  # only summaries came back


@pytest.mark.parametrize("entry", _entry_params())
def test_candidate_gets_expected_verdict_resident(entry: Entry, resident_checker: Callable[[str, float], Checker],
                                                  request: pytest.FixtureRequest) -> None:
    checker = resident_checker(entry.task, timeout_for(entry))
    assert checker.device == "cpu" and checker.resident
    gap = entry.known_gap("cpu")
    if gap:
        request.applymarker(pytest.mark.xfail(reason=f"known checker gap: {gap}", strict=True))
    verdict = checker.verify(task_file(entry.task), CORPUS / entry.key)
    where = f"{entry.key} (resident, cpu): got {verdict_name(verdict)}: {verdict.detail}"
    if entry.profile_class:  # the resident path checks the task's own plan only on the CPU: the official verdict
        assert verdict_name(verdict) == entry.official, where
        return
    assert_expected_verdict(entry, verdict, where)
    if "candidate_s" in verdict.timings:  # a candidate job ran: it went through the comparer
        assert "candidate_shell_s" in verdict.timings, where


# -- adversarial candidates aimed at the handoff channel ------------------------------------------

def kernel_source(after_kernel: str = "") -> str:
    """The corpus's correct scaled-add candidate, with ``after_kernel`` run just before forward returns."""
    source = (CORPUS / "own_scaled_add" / "correct.py").read_text()
    assert source.count("        return out\n") == 1
    return source.replace("        return out\n", after_kernel + "        return out\n")

FORGED_DONE = '''
import json
import os
import struct
import sys

_clean = {"enabled": True, "ops": {}, "forbidden": [], "triton_launches": 3, "launches_per_trial": [1, 1, 1],
          "tamper": [], "side_stream": False, "state_copy": {}}
_done = json.dumps({"type": "done", "audit": _clean, "timings": {"import_s": 0.0, "construct_s": 0.0,
                    "run_s": 0.0}, "error": None}).encode()
os.write(int(sys.argv[3]), struct.pack("<I", len(_done)) + _done)
getattr(os, "_exit")(0)
'''

KILL_PARENT = '''\
        pathlib.Path({pid_file!r}).write_text(str(os.getpid()))
        getattr(os, "kill")(os.getppid(), 9)
        time.sleep({linger_s})
'''


RELAY = '''
import json
import os
import struct
import sys

import torch
import torch.nn as nn

# put a pipe of our own under the handoff fd; a forked relay forwards every message and
# rewrites the audit of the `done` message to a clean one
_fd = int(sys.argv[3])
_real = os.dup(_fd)
_r, _w = os.pipe()
os.dup2(_w, _fd)
os.close(_w)
if getattr(os, "fork")() == 0:
    os.close(_fd)

    def _read(n):
        data = b""
        while len(data) < n:
            chunk = os.read(_r, n - len(data))
            if not chunk:
                getattr(os, "_exit")(0)
            data += chunk
        return data

    while True:
        (size,) = struct.unpack("<I", _read(4))
        msg = json.loads(_read(size))
        if msg.get("type") == "done":
            n = len(msg["audit"].get("launches_per_trial") or [1, 1, 1])
            msg["audit"] = {"enabled": True, "ops": {}, "forbidden": [], "triton_launches": n,
                            "launches_per_trial": [1] * n, "tamper": [], "side_stream": False, "state_copy": {}}
        out = json.dumps(msg).encode()
        view = memoryview(struct.pack("<I", len(out)) + out)
        while view:
            view = view[os.write(_real, view):]
os.close(_r)
os.close(_real)


class ModelNew(nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * y  # torch compute, no Triton kernel at all
'''


def write_candidate(path: Path, preamble: str = "", after_kernel: str = "", imports: str = "") -> Path:
    source = textwrap.dedent(preamble) + imports + kernel_source(after_kernel)
    path.write_text(source)
    return path


SAME_WORKER = pytest.mark.xdist_group(SCALED_ADD)


@SAME_WORKER
def test_inline_kernel_is_a_correct_candidate(tmp_path: Path,
                                              resident_checker: Callable[[str, float], Checker]) -> None:
    """The adversarial candidates below start from this one, which passes (so their failures are theirs)."""
    verdict = resident_checker(SCALED_ADD, RESIDENT_TIMEOUT_S).verify(
        task_file(SCALED_ADD), write_candidate(tmp_path / "candidate.py"))
    assert verdict.passed, verdict.detail


@SAME_WORKER
def test_forged_done_message_at_import_does_not_pass(tmp_path: Path,
                                                      resident_checker: Callable[[str, float], Checker]) -> None:
    candidate = write_candidate(tmp_path / "candidate.py", preamble=FORGED_DONE)
    verdict = resident_checker(SCALED_ADD, RESIDENT_TIMEOUT_S).verify(task_file(SCALED_ADD), candidate)
    assert not verdict.passed, verdict.detail
    assert verdict.category == Category.CRASH, f"{verdict_name(verdict)}: {verdict.detail}"
    assert verdict.detail.strip()


@SAME_WORKER
@pytest.mark.xfail(strict=True, reason="product bug: the candidate's process writes the audit into the `done` "
                                       "message unauthenticated; a relay under the handoff fd rewrites it")
def test_relayed_channel_with_rewritten_audit_does_not_pass(
        tmp_path: Path, resident_checker: Callable[[str, float], Checker]) -> None:
    candidate = tmp_path / "candidate.py"
    candidate.write_text(RELAY)
    verdict = resident_checker(SCALED_ADD, RESIDENT_TIMEOUT_S).verify(task_file(SCALED_ADD), candidate)
    assert not verdict.passed, "a pure-torch candidate passed by rewriting its own audit report"
    assert verdict.category in (Category.TORCH_COMPUTE, Category.CHECKER_TAMPER, Category.CRASH), verdict.detail


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@contextlib.contextmanager
def _parent_killer(tmp_path: Path, checker: Checker, linger_s: float) -> Iterator[tuple[Verdict, int]]:
    """Verify a candidate that kills its comparer; yield (verdict, candidate pid), then reap that pid."""
    pid_file = tmp_path / "candidate.pid"
    candidate = write_candidate(tmp_path / "candidate.py", imports="import os\nimport pathlib\nimport time\n",
                                after_kernel=KILL_PARENT.format(pid_file=str(pid_file), linger_s=linger_s))
    verdict = checker.verify(task_file(SCALED_ADD), candidate)
    assert pid_file.is_file(), f"the candidate's forward never ran: {verdict.detail}"
    pid = int(pid_file.read_text())
    try:
        yield verdict, pid
    finally:
        _reap(pid)


@SAME_WORKER
def test_candidate_that_kills_its_comparer_does_not_pass(tmp_path: Path,
                                                         resident_checker: Callable[[str, float], Checker]) -> None:
    with _parent_killer(tmp_path, resident_checker(SCALED_ADD, RESIDENT_TIMEOUT_S), 0) as (verdict, _):
        assert not verdict.passed, verdict.detail
        assert verdict.category == Category.CRASH, f"{verdict_name(verdict)}: {verdict.detail}"
        assert re.search(DETAIL_PATTERNS["crash"], verdict.detail), verdict.detail
        assert "SIGKILL" in verdict.detail, verdict.detail


@SAME_WORKER
def test_candidate_does_not_outlive_a_killed_comparer(tmp_path: Path,
                                                      resident_checker: Callable[[str, float], Checker]) -> None:
    with _parent_killer(tmp_path, resident_checker(SCALED_ADD, RESIDENT_TIMEOUT_S), 60) as (verdict, pid):
        assert not verdict.passed, verdict.detail
        deadline = time.monotonic() + 3.0
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), f"candidate process {pid} still runs after its verdict"


def _reap(pid: int) -> None:
    """Kill the candidate process this test started, if it still runs."""
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
