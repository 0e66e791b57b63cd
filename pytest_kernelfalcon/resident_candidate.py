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
    JobError,
    build_reference,
    construct_candidate,
    draw_inputs,
    exec_file,
    import_entry,
    job_error,
    pin_tf32_off,
    run_then_exit,
    storage_ptr,
    torch_dtype,
)
from pytest_kernelfalcon.child_audit import RunAudit, classify_error

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
    import torch

    from pytest_kernelfalcon.child import aliases
    from pytest_kernelfalcon.compare import flatten_outputs

    rfd, wfd = fds
    inputs = draw_inputs(get_inputs, trial["seed"], job["device"], torch_dtype(job["dtype"]),
                         tuple(trial["transform"]))
    handoff.send(wfd, {"type": "inputs", "seed": trial["seed"], "inputs": [handoff.describe(x) for x in inputs]})
    _expect_ack(rfd)
    torch.manual_seed(trial["seed"])
    try:
        with torch.no_grad():
            raw = audit.run_forward(model, inputs)
    except BaseException as exc:
        raise job_error(exc, classify_error(exc, "runtime_error"), audit) from exc
    outputs = flatten_outputs(raw)
    audit.check_side_stream(outputs)
    earlier = {storage_ptr(o) for o in kept} - {None}
    handoff.send(wfd, {"type": "outputs", "seed": trial["seed"], "outputs": [handoff.describe(o) for o in outputs],
                       "inputs": [handoff.describe(x) for x in inputs], "aliases": aliases(outputs, inputs),
                       "reused": [i for i, o in enumerate(outputs) if storage_ptr(o) in earlier]})
    _expect_ack(rfd)
    if job["poison"]:
        audit.poison(outputs)
    if sum(o.untyped_storage().nbytes() for o in kept) < KEEP_BYTES:
        kept.extend(o for o in outputs if isinstance(o, torch.Tensor))
    audit.check_integrity(f"after trial seed {trial['seed']}")


def run_shell(jobdir: Path, fds: tuple[int, int]) -> None:
    """Run every case and trial of ``jobdir/shell.pt`` and end with a ``done`` message."""
    import torch

    job = torch.load(jobdir / "shell.pt", map_location="cpu", weights_only=True)
    pin_tf32_off()
    cases = load_cases(jobdir, job)
    audit = RunAudit(jobdir / "candidate.py", enabled=job["audit"], device=job["device"])
    audit.install()
    timings = {"import_s": 0.0, "construct_s": 0.0, "run_s": 0.0}
    error = None
    try:
        entry = import_entry(jobdir, job, audit, timings)
        for (get_inputs, built), case in zip(cases, job["cases"], strict=True):
            start = time.perf_counter()
            model = construct_candidate(entry, built, job, audit)
            timings["construct_s"] += time.perf_counter() - start
            kept: list[Any] = []
            for trial in case["trials"]:
                start = time.perf_counter()
                run_trial(model, get_inputs, trial, job, audit, kept, fds)
                timings["run_s"] += time.perf_counter() - start
    except JobError as exc:
        error = {"category": exc.category, "message": exc.message, "traceback": exc.tb}
    finally:
        report = audit.report()
        audit.uninstall()
    handoff.send(fds[1], {"type": "done", "audit": report, "timings": timings, "error": error})


def main(argv: list[str] | None = None) -> None:
    """Entry point; never returns (``os._exit``: no atexit hooks of loaded code)."""
    args = list(sys.argv[1:] if argv is None else argv)
    run_then_exit(lambda: run_shell(Path(args[0]).resolve(), (int(args[1]), int(args[2]))))


if __name__ == "__main__":
    main()
