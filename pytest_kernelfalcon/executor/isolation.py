"""Isolation, parent side: candidate uids leased per harness process, killing by uid, the probe.

The steps a child applies to itself are in ``child/isolation.py``; the policy and the report
both sides read are in ``core/isolation.py``. ``probe`` runs those steps in a throwaway
process and returns an ``IsolationReport`` saying what worked and why the rest did not.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_kernelfalcon.core.isolation import (
    IsolationPolicy,
    IsolationReport,
    is_root,
    status_uid,
)

KILL_ROUNDS = 200


UID_BLOCK = 1000  # uids per harness process: pools use slots below 900, the cold path 900 and up
MAX_BLOCKS = 64


def process_uid_block(uid_base: int) -> int:
    """Return this process's block of candidate uids for ``uid_base`` (leased once, held for life)."""
    return _uid_lease(uid_base)[0]


@functools.cache  # one lease per process and uid base, held until the process ends
def _uid_lease(uid_base: int) -> tuple[int, object]:
    """Lease a block of candidate uids for this process, machine-wide (xdist workers, parallel runs).

    Two harness processes must never share a uid: each kills whatever runs under its uids. The lease
    is an exclusive ``flock`` on a lock file, released by the kernel when this process exits.
    """
    import fcntl

    folder = Path(tempfile.gettempdir()) / "kernelfalcon-uid-blocks"
    folder.mkdir(mode=0o700, exist_ok=True)
    for block in range(MAX_BLOCKS):
        handle = open(folder / f"{uid_base}-{block}.lock", "a")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return block, handle
    raise RuntimeError(f"more than {MAX_BLOCKS} isolating harness processes on this machine")




def candidate_uid(policy: IsolationPolicy, slot: int) -> int | None:
    """Return the unprivileged uid for executor ``slot``, or None when no switch applies."""
    if not (policy.drop_privileges and is_root()):
        return None
    import pwd

    uid, left = policy.uid_base + UID_BLOCK * process_uid_block(policy.uid_base), slot
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            if left == 0:
                return uid
            left -= 1
        uid += 1


def kill_uid(uid: int) -> int:
    """SIGKILL every live process whose real uid is ``uid`` until none is left; return how many."""
    killed = 0
    for _ in range(KILL_ROUNDS):
        pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and status_uid(e) == uid]
        if not pids:
            return killed
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def probe(policy: IsolationPolicy, slot: int = 0) -> IsolationReport:
    """Run ``enter`` in a throwaway process and return what it could apply."""
    uid = candidate_uid(policy, slot)
    cmd = [sys.executable, "-m", "pytest_kernelfalcon.child.isolation", policy.to_json(), str(uid)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return IsolationReport((), (("probe", f"probe failed: {done.stderr.strip()[-300:]}"),), uid)
    return IsolationReport(tuple(data["applied"]), tuple(tuple(m) for m in data["missing"]), data["uid"])

