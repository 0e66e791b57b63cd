"""The child's job dispatch: one name -> function map of job modes, ``run_job`` and the entry point.

``python -m pytest_kernelfalcon.child JOBDIR [--timeout S]`` reads a nonce from stdin, sets
resource limits, runs ``run_job`` and leaves through ``os._exit`` (no atexit hooks of loaded
code run).
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child.runtime import JobError, goes_resident, run_then_exit, set_limits
from pytest_kernelfalcon.core.protocol import (
    THREADS_ENV,
    JobRecord,
    ProtocolError,
    ReferenceJob,
    read_job,
)

# job mode -> (module, function(jobdir, job record) -> result body); imported only when a job needs it
MODES: dict[str, tuple[str, str]] = {
    "reference": ("pytest_kernelfalcon.child.reference", "run_reference"),
    "candidate": ("pytest_kernelfalcon.child.candidate", "run_candidate"),
    "resident": ("pytest_kernelfalcon.child.resident", "run_resident"),
    "resident_reference": ("pytest_kernelfalcon.child.resident", "run_resident_reference"),
    "extract": ("pytest_kernelfalcon.child.extract", "run_extract_job"),
    "bench": ("pytest_kernelfalcon.child.bench", "run_bench_job"),
    "kernelbench": ("pytest_kernelfalcon.child.kernelbench", "run_kernelbench"),
}


def run_mode(jobdir: Path, job: JobRecord) -> dict[str, Any]:
    """Run the job mode ``job.mode`` names and return its result body.

    A reference job at official shapes whose inputs exceed ``resident_above`` elements goes
    the resident way: summaries and probes, the tensors stay on the device.
    """
    mode = job.mode
    if isinstance(job, ReferenceJob) and mode == "reference" and goes_resident(jobdir, job):
        mode = "resident_reference"
    entry = MODES.get(mode)
    if entry is None:
        raise JobError("runtime_error", f"unknown job mode {mode!r}")
    module, function = entry
    result: dict[str, Any] = getattr(import_module(module), function)(jobdir, job)
    return result


def run_job(jobdir: Path, nonce: str) -> None:
    """Run the job described by ``jobdir/job.pt`` and write ``jobdir/result.pt`` (with ``nonce``)."""
    import torch

    threads = os.environ.get(THREADS_ENV, "")
    if threads.isdigit() and int(threads) > 0:  # the parent's share of the cores (a warm worker's torch
        torch.set_num_threads(int(threads))  # was imported before this job's environment was set)
    try:
        body = run_mode(jobdir, _read(jobdir))
    except JobError as exc:
        body = {"error": {"category": exc.category, "message": exc.message, "traceback": exc.tb}}
    body.setdefault("error", None)
    tmp = jobdir / f".result-{nonce}.tmp"
    torch.save({"version": 1, "nonce": nonce, **body}, tmp)
    os.replace(tmp, jobdir / "result.pt")


def _read(jobdir: Path) -> JobRecord:
    """The job record of ``jobdir/job.pt`` (a malformed one is the harness's fault)."""
    import torch

    try:
        return read_job(torch.load(jobdir / "job.pt", map_location="cpu", weights_only=True))
    except ProtocolError as exc:
        raise JobError("harness_error", f"job.pt: {exc}") from exc


def _isolate(args: list[str], jobdir: Path, timeout: float) -> None:
    """Apply ``--isolation POLICY --uid UID`` (ColdExecutor with isolation) before any job code runs."""
    if "--isolation" not in args:
        return
    from pytest_kernelfalcon.child import isolation
    from pytest_kernelfalcon.core.isolation import IsolationPolicy

    policy = IsolationPolicy.from_json(args[args.index("--isolation") + 1])
    raw_uid = args[args.index("--uid") + 1]
    isolation.enter(policy, jobdir, None if raw_uid == "None" else int(raw_uid), timeout)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the child process; never returns (exits through ``os._exit``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    timeout = float(args[args.index("--timeout") + 1]) if "--timeout" in args else 600.0
    nonce = sys.stdin.readline().strip()
    set_limits(timeout)
    jobdir = Path(args[0]).resolve()

    def body() -> None:
        _isolate(args, jobdir, timeout)
        run_job(jobdir, nonce)

    run_then_exit(body)
