"""The candidate's process on the resident data path (untrusted once the candidate is imported).

``python -m pytest_kernelfalcon.child.resident_candidate JOBDIR READ_FD WRITE_FD``, or forked
ahead by a warm job process (``prefork``: it waits for ``arm`` and ``go``). It loads the task
copies and the reference state before importing the candidate, says ``ready`` (the
candidate's time limit starts there: imports and task copies are the harness's time), then per trial shows its
inputs to the comparer, runs forward under the run-time audit and hands the outputs over
(CUDA IPC). Nothing here compares: the comparer does (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child.audit import RunAudit
from pytest_kernelfalcon.child.candidate import (
    audited_cases,
    candidate_forward,
    end_trial,
    reuse_storage,
    reused_outputs,
)
from pytest_kernelfalcon.child.reference import build_reference
from pytest_kernelfalcon.child.runtime import (
    aliases,
    draw_inputs,
    exec_file,
    pin_tf32_off,
    run_then_exit,
    torch_dtype,
)
from pytest_kernelfalcon.core import handoff
from pytest_kernelfalcon.core.protocol import CandidateCase, ResidentJob, TrialDraw

KEEP_BYTES = 4 << 30  # earlier outputs kept alive (storage-reuse check) while under this many bytes
ACK_S = 600.0
WAIT_S = 7 * 86400.0  # a fork waits for its job at most this long


@dataclass(frozen=True)
class Forked:
    """A candidate's process forked ahead of its job: its pid and the comparer's ends of its pipes."""

    pid: int
    to_shell: int
    from_shell: int


def _expect_ack(rfd: int) -> None:
    if handoff.recv(rfd, time.monotonic() + ACK_S).get("type") != "ack":
        raise handoff.HandoffError("expected an ack")


def load_cases(jobdir: Path, job: ResidentJob) -> list[tuple[Any, CandidateCase]]:
    """Load every task copy and build its reference state, before any candidate code runs."""
    loaded = []
    for k, case in enumerate(job.cases):
        name = f"kf_task_{k}"
        task = exec_file(jobdir / case.file, name)
        model, init_inputs = build_reference(task, case.construct_seed, job.device, job.dtype)
        state = {key: v.detach().clone() for key, v in model.state_dict().items()}
        del model
        sys.modules.pop(name, None)
        loaded.append((task.get_inputs, CandidateCase(case.construct_seed, tuple(init_inputs), state, (),
                                                      constants=case.constants)))
    return loaded


def run_trial(model: Any, get_inputs: Any, trial: TrialDraw, job: ResidentJob, audit: RunAudit,
              kept: list[Any], fds: tuple[int, int], previous: list[Any] | None = None) -> list[Any]:
    """One trial: inputs shown, forward under the audit, outputs handed over, then poisoned; returns the inputs."""
    rfd, wfd = fds
    inputs = draw_inputs(get_inputs, trial.seed, job.device, torch_dtype(job.dtype), trial.transform)
    if trial.reuse_storage:
        inputs = reuse_storage(previous, inputs)
    handoff.send(wfd, {"type": "inputs", "seed": trial.seed, "inputs": [handoff.describe(x) for x in inputs]})
    _expect_ack(rfd)
    outputs = candidate_forward(model, inputs, trial.seed, audit)
    audit.check_side_stream(outputs)
    handoff.send(wfd, {"type": "outputs", "seed": trial.seed, "outputs": [handoff.describe(o) for o in outputs],
                       "inputs": [handoff.describe(x) for x in inputs], "aliases": aliases(outputs, inputs),
                       "reused": reused_outputs(outputs, kept, inputs)})
    _expect_ack(rfd)
    end_trial(outputs, trial.seed, job, audit, kept,
              keep=sum(o.untyped_storage().nbytes() for o in kept) < KEEP_BYTES)
    return inputs


def preload() -> None:
    """Import what a warm worker's fork holds imported already (started with ``python -m``, this is ours to do,
    not the candidate's time)."""
    import torch._dynamo  # noqa: F401  (the run-time audit imports it)
    import triton  # noqa: F401
    import triton.language  # noqa: F401


def run_shell(jobdir: Path, fds: tuple[int, int]) -> None:
    """Run every case and trial of ``jobdir/shell.pt`` and end with a ``done`` message."""
    import torch

    job = ResidentJob.from_wire(torch.load(jobdir / "shell.pt", map_location="cpu", weights_only=True))
    pin_tf32_off()
    loaded = load_cases(jobdir, job)  # trusted: before the candidate is imported
    cases = [(built, case.trials) for (_, built), case in zip(loaded, job.cases, strict=True)]
    previous: dict[int, list[Any]] = {}  # per case: the last trial's inputs (address-reuse trials write into them)

    def trial(model: Any, index: int, trial: TrialDraw, audit: RunAudit, kept: list[Any]) -> None:
        inputs = run_trial(model, loaded[index][0], trial, job, audit, kept, fds, previous.pop(index, None))
        trials = cases[index][1]
        at = next(k for k, t in enumerate(trials) if t is trial)
        if at + 1 < len(trials) and trials[at + 1].reuse_storage:  # official inputs are large: keep
            previous[index] = inputs  # only an address-reuse trial's predecessor alive

    preload()
    handoff.send(fds[1], {"type": "ready"})  # the candidate's time limit starts now: its code runs from here
    body = audited_cases(jobdir, job, cases, trial)
    handoff.send(fds[1], {"type": "done", "audit": body["audit"], "timings": body["timings"],
                          "error": body["error"]})


def prefork() -> Forked:
    """Fork a waiting candidate's process (call where CUDA is not initialised); see the module docstring."""
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(to_w)
            os.close(from_r)
            from pytest_kernelfalcon.core import isolation

            isolation.keep_only_fds((to_r, from_w))
            _wait_then_run(to_r, from_w)
        finally:
            os._exit(3)
    os.close(to_r)
    os.close(from_w)
    return Forked(pid, to_w, from_r)


def _log_to(path: Path) -> None:
    out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for fd in (1, 2):
        os.dup2(out, fd)
    os.close(out)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _wait_then_run(rfd: int, wfd: int) -> None:
    """The fork's life: wait for ``arm`` and ``go``, enter the job's isolation when armed with a request, run."""
    from pytest_kernelfalcon.child import isolation
    from pytest_kernelfalcon.core import isolation as process

    process.die_with_parent()
    try:
        arm = handoff.recv(rfd, time.monotonic() + WAIT_S)
        go = handoff.recv(rfd, time.monotonic() + WAIT_S)
    except handoff.HandoffError:
        os._exit(0)
    if arm.get("type") != "arm" or not isinstance(arm.get("request"), dict) or go.get("type") != "go" \
            or not isinstance(go.get("jobdir"), str):
        os._exit(0)
    jobdir = Path(go["jobdir"])
    _log_to(jobdir / "candidate.log")  # before the isolation: a failure to enter it shows in the comparer's report

    def run() -> None:
        isolation.enter_request(arm["request"], parent_death=True)
        process.allow_dumps()
        run_shell(jobdir, (rfd, wfd))

    run_then_exit(run)


def main(argv: list[str] | None = None) -> None:
    """Entry point; never returns (``os._exit``: no atexit hooks of loaded code)."""
    args = list(sys.argv[1:] if argv is None else argv)
    run_then_exit(lambda: run_shell(Path(args[0]).resolve(), (int(args[1]), int(args[2]))))


if __name__ == "__main__":
    main()
