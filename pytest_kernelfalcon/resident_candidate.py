"""The candidate's process on the resident data path (untrusted once the candidate is imported).

``python -m pytest_kernelfalcon.resident_candidate JOBDIR READ_FD WRITE_FD`` is started by
the resident comparer (``resident.py``), as the same uid, with a pair of pipes. Before the
candidate is imported it loads the task copies, builds the reference state per case (the
comparer builds the same from the same seed), and installs the run-time audit. Per trial
it draws the inputs on the device from the trial seed, shows them to the comparer, runs
forward under the audit, checks for side-stream work on the device, and hands the
outputs and the inputs after forward to the comparer (by CUDA IPC, no copy), waiting
until the comparer is done with them. Nothing here compares: the comparer does.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from pytest_kernelfalcon import handoff
from pytest_kernelfalcon.child import (
    aliases,
    audited_cases,
    build_reference,
    candidate_forward,
    draw_inputs,
    end_trial,
    exec_file,
    pin_tf32_off,
    reused_outputs,
    run_then_exit,
    torch_dtype,
)
from pytest_kernelfalcon.child_audit import RunAudit

KEEP_BYTES = 4 << 30  # earlier outputs kept alive (storage-reuse check) while under this many bytes
ACK_S = 600.0


def _expect_ack(rfd: int) -> None:
    if handoff.recv(rfd, time.monotonic() + ACK_S).get("type") != "ack":
        raise handoff.HandoffError("expected an ack")


def load_cases(jobdir: Path, job: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Load every task copy and build its reference state, before any candidate code runs."""
    loaded = []
    for k, case in enumerate(job["cases"]):
        name = f"kf_task_{k}"
        task = exec_file(jobdir / case["file"], name)
        model, init_inputs = build_reference(task, {**job, "construct_seed": case["construct_seed"]})
        state = {key: v.detach().clone() for key, v in model.state_dict().items()}
        del model
        sys.modules.pop(name, None)
        loaded.append((task.get_inputs, {"construct_seed": case["construct_seed"], "init_inputs": init_inputs,
                                         "state_dict": state}))
    return loaded


def run_trial(model: Any, get_inputs: Any, trial: dict[str, Any], job: dict[str, Any], audit: RunAudit,
              kept: list[Any], fds: tuple[int, int]) -> None:
    """One trial: inputs shown, forward under the audit, outputs handed over, then poisoned."""
    rfd, wfd = fds
    inputs = draw_inputs(get_inputs, trial["seed"], job["device"], torch_dtype(job["dtype"]),
                         tuple(trial["transform"]))
    handoff.send(wfd, {"type": "inputs", "seed": trial["seed"], "inputs": [handoff.describe(x) for x in inputs]})
    _expect_ack(rfd)
    outputs = candidate_forward(model, inputs, trial["seed"], audit)
    audit.check_side_stream(outputs)
    handoff.send(wfd, {"type": "outputs", "seed": trial["seed"], "outputs": [handoff.describe(o) for o in outputs],
                       "inputs": [handoff.describe(x) for x in inputs], "aliases": aliases(outputs, inputs),
                       "reused": reused_outputs(outputs, kept)})
    _expect_ack(rfd)
    end_trial(outputs, trial["seed"], job, audit, kept,
              keep=sum(o.untyped_storage().nbytes() for o in kept) < KEEP_BYTES)


def run_shell(jobdir: Path, fds: tuple[int, int]) -> None:
    """Run every case and trial of ``jobdir/shell.pt`` and end with a ``done`` message."""
    import torch

    job = torch.load(jobdir / "shell.pt", map_location="cpu", weights_only=True)
    pin_tf32_off()
    loaded = load_cases(jobdir, job)  # trusted: before the candidate is imported
    cases = [(built, case["trials"]) for (_, built), case in zip(loaded, job["cases"], strict=True)]
    body = audited_cases(jobdir, job, cases, lambda model, index, trial, audit, kept: run_trial(
        model, loaded[index][0], trial, job, audit, kept, fds))
    handoff.send(fds[1], {"type": "done", "audit": body["audit"], "timings": body["timings"],
                          "error": body["error"]})


def main(argv: list[str] | None = None) -> None:
    """Entry point; never returns (``os._exit``: no atexit hooks of loaded code)."""
    args = list(sys.argv[1:] if argv is None else argv)
    run_then_exit(lambda: run_shell(Path(args[0]).resolve(), (int(args[1]), int(args[2]))))


if __name__ == "__main__":
    main()
