"""Candidate jobs (in the child): import the candidate under the run-time audit, run every trial."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child.audit import RunAudit, classify_error
from pytest_kernelfalcon.child.runtime import (
    JobError,
    aliases,
    exec_file,
    inputs_after,
    pin_tf32_off,
    storage_ptr,
    torch_dtype,
)
from pytest_kernelfalcon.core.handoff import UncarriableValue
from pytest_kernelfalcon.core.protocol import AuditedJob, CandidateCase, CandidateJob, TrialInputs


def audited_cases(jobdir: Path, job: AuditedJob, cases: Sequence[tuple[CandidateCase, Sequence[Any]]],
                  run_trial: Any) -> dict[str, Any]:
    """Import the candidate under the run-time audit; per case construct it, then run each trial.

    ``cases`` holds (construction: construct_seed / init_inputs / state_dict, trials);
    ``run_trial(model, case_index, trial, audit, kept)`` returns the trial's record.
    Returns ``{"cases": [{"trials": [...]}], "audit", "timings", "error"}``; after an error the cases and
    trials finished so far stay, and the error says where it happened (``case``, ``trial``: None at import).
    """
    pin_tf32_off()
    audit = RunAudit(jobdir / "candidate.py", enabled=job.audit, device=job.device)
    audit.install()
    timings = {"import_s": 0.0, "construct_s": 0.0, "run_s": 0.0}
    body: dict[str, Any] = {"cases": [], "audit": audit.report(), "timings": timings, "error": None}
    at: dict[str, int | None] = {"case": None, "trial": None}
    try:
        entry = import_entry(jobdir, job, audit, timings)
        for index, (built, trials) in enumerate(cases):
            at.update(case=index, trial=None)
            start = time.perf_counter()
            follow_constants(entry, built.constants)
            model = construct_candidate(entry, built, job, audit)
            timings["construct_s"] += time.perf_counter() - start
            kept: list[Any] = []
            records: list[Any] = []
            body["cases"].append({"trials": records})
            for at["trial"], trial in enumerate(trials):
                start = time.perf_counter()
                records.append(run_trial(model, index, trial, audit, kept))
                timings["run_s"] += time.perf_counter() - start
    except JobError as exc:
        body["error"] = {"category": exc.category, "message": exc.message, "traceback": exc.tb, **at}
    finally:
        body["audit"] = audit.report()
        audit.uninstall()
    return body


def run_candidate(jobdir: Path, job: CandidateJob) -> dict[str, Any]:
    """Candidate mode: import, construct per case, run every trial under the run-time audit."""
    previous: dict[int, list[Any]] = {}  # per case: the last trial's inputs (address-reuse trials write into them)
    return audited_cases(jobdir, job, [(case, case.trials) for case in job.cases],
                         lambda model, index, trial, audit, kept: _candidate_trial(
                             model, trial, job, audit, kept, previous, index))


def follow_constants(entry: Any, constants: dict[str, int] | None) -> None:
    """Set the candidate module's own int constants named by the case's plan (state built from them follows).

    Only names the module already binds to an int change, as ``tasks.follow_plan`` does for the source.
    """
    if not constants:
        return
    module = sys.modules.get(getattr(entry, "__module__", ""))
    names = getattr(module, "__dict__", {})
    for name, value in constants.items():
        if isinstance(names.get(name), int) and not isinstance(names.get(name), bool):
            names[name] = int(value)


def reuse_storage(previous: list[Any] | None, fresh: list[Any]) -> list[Any]:
    """Write ``fresh`` into the previous trial's input tensors (same storage, same objects) where shapes match.

    A candidate caching results by ``data_ptr()`` or ``id()`` then sees known addresses with new values.
    """
    import torch

    def same(a: Any, b: Any) -> bool:
        if isinstance(b, torch.Tensor):
            return isinstance(a, torch.Tensor) and (a.shape, a.dtype, a.device) == (b.shape, b.dtype, b.device) \
                and a.is_contiguous()
        return not isinstance(a, torch.Tensor)

    if previous is None or len(previous) != len(fresh) or not all(map(same, previous, fresh)):
        return fresh
    with torch.no_grad():
        for old, new in zip(previous, fresh, strict=True):
            if isinstance(new, torch.Tensor):
                old.copy_(new)
    return [old if isinstance(new, torch.Tensor) else new for old, new in zip(previous, fresh, strict=True)]


def job_error(exc: BaseException, category: str, audit: RunAudit) -> JobError:
    where = audit.candidate_line(exc)
    prefix = f"{where}: " if where else ""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
    return JobError(category, f"{prefix}{type(exc).__name__}: {exc}"[:2000], tb)


def import_entry(jobdir: Path, job: AuditedJob, audit: RunAudit, timings: dict[str, float]) -> Any:
    start = time.perf_counter()
    try:
        module = exec_file(jobdir / "candidate.py", "kf_candidate")
    except BaseException as exc:
        raise job_error(exc, "compile_error", audit) from exc
    finally:
        timings["import_s"] = time.perf_counter() - start
    audit.check_integrity("after import")
    entry = getattr(module, job.entry, None)
    if not isinstance(entry, type):
        raise JobError("compile_error", f"candidate.py defines no class {job.entry!r}")
    return entry


def copy_state(model: Any, state: dict[str, Any]) -> dict[str, int]:
    """Copy reference state by name+shape, then the rest by registration order where shapes match; say how
    many copied tensors the candidate's own seeded construction had made different."""
    import torch

    mine = model.state_dict()
    done = {k for k, v in mine.items() if k in state and tuple(state[k].shape) == tuple(v.shape)}
    left = [k for k in state if k not in done]
    pairs = [(k, k) for k in done]
    for k in (k for k in mine if k not in done):
        match = next((r for r in left if tuple(state[r].shape) == tuple(mine[k].shape)), None)
        if match is not None:
            left.remove(match)
            pairs.append((k, match))
    changed = 0  # tensors whose seeded construction differs from the reference's (KernelBench copies no state)
    with torch.no_grad():
        for k, r in pairs:
            source = state[r].to(mine[k].device, mine[k].dtype)
            changed += not torch.equal(mine[k], source)
            mine[k].copy_(source)
    return {"by_name": len(done), "by_order": len(pairs) - len(done), "unmatched": len(mine) - len(pairs),
            "changed": changed}


def construct_candidate(entry: Any, case: CandidateCase, job: AuditedJob, audit: RunAudit) -> Any:
    import torch

    try:
        torch.manual_seed(case.construct_seed)
        model = entry(*case.init_inputs).to(job.device).to(torch_dtype(job.dtype))
        audit.state_copy = copy_state(model, case.state_dict)
    except BaseException as exc:
        raise job_error(exc, classify_error(exc, "runtime_error"), audit) from exc
    return model


def candidate_forward(model: Any, inputs: list[Any], seed: int, audit: RunAudit) -> list[Any]:
    """Run the candidate's forward on ``inputs`` under the audit; return its flattened outputs."""
    import torch

    from pytest_kernelfalcon.core.compare import flatten_outputs

    torch.manual_seed(seed)
    try:
        with torch.no_grad():
            return flatten_outputs(audit.run_forward(model, inputs))
    except BaseException as exc:
        raise job_error(exc, classify_error(exc, "runtime_error"), audit) from exc


def reused_outputs(outputs: list[Any], kept: list[Any], inputs: list[Any] | None = None) -> list[int]:
    """Return the outputs whose storage is an earlier trial's output (kept alive in ``kept``).

    Storage that is one of this trial's inputs is left to the aliasing rules (an address-reuse
    trial's inputs are the tensors an in-place forward returned the trial before).
    """
    earlier = {storage_ptr(o) for o in kept} - {None} - {storage_ptr(x) for x in inputs or ()}
    return [i for i, o in enumerate(outputs) if storage_ptr(o) in earlier]


def end_trial(outputs: list[Any], seed: int, job: AuditedJob, audit: RunAudit, kept: list[Any],
              keep: bool = True) -> None:
    """After a trial: poison its outputs, keep them alive (``keep``), recheck integrity."""
    import torch

    if job.poison:
        audit.poison(outputs)
    if keep:
        kept.extend(o for o in outputs if isinstance(o, torch.Tensor))
    audit.check_integrity(f"after trial seed {seed}")


def _candidate_trial(model: Any, trial: TrialInputs, job: CandidateJob, audit: RunAudit,
                     kept: list[Any], previous: dict[int, list[Any]], index: int) -> dict[str, Any]:
    import torch

    inputs = [x.to(job.device, copy=True) if isinstance(x, torch.Tensor) else x for x in trial.inputs]
    if trial.reuse_storage:
        inputs = reuse_storage(previous.get(index), inputs)
    previous[index] = inputs
    outputs = candidate_forward(model, inputs, trial.seed, audit)
    try:
        host = audit.outputs_to_host(outputs)
    except UncarriableValue as exc:
        raise JobError("runtime_error", f"forward returned a value the checker cannot compare: {exc}") from exc
    record = {"seed": trial.seed, "outputs": host, "aliases": aliases(outputs, inputs),
              "inputs_after": inputs_after(list(trial.inputs), inputs), "reused": reused_outputs(outputs, kept, inputs)}
    end_trial(outputs, trial.seed, job, audit, kept)
    return record
