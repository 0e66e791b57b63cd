"""What crosses the process boundary: typed job and result records, shared limits and messages.

The parent builds a job record and writes its ``to_wire()`` form as ``job.pt``; the child reads it
back with ``read_job`` (``weights_only``) and answers in ``result.pt``. Constants that both sides
need are defined here once.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding pytest_kernelfalcon/

FILE_LIMIT = 8 << 30  # RLIMIT_FSIZE of every child process (bytes)
DATA_PATHS = ("auto", "files", "resident")
CANDIDATE_START_S = 60.0  # resident path: the candidate's process gets this long to start before its time limit runs
THREADS_ENV = "KERNELFALCON_THREADS"  # a job's share of the CPU threads (executor/threads.py sets it)
TIMING_REFUSED = "timing needs a CUDA GPU: CPU or TRITON_INTERPRET timings say nothing about kernel speed"


def signal_name(code: int) -> str:
    """Return ``SIGKILL`` for 9 (or "signal N" when unknown)."""
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


# -- typed records: the parent builds them, ``to_wire`` makes plain data for ``torch.save``; the child
# reads ``job.pt`` (``weights_only``) back with ``read_job``. Tensors and task values ride inside as they are.

WIRE_VERSION = 1
R = TypeVar("R", bound="Record")


class ProtocolError(ValueError):
    """A job or result file that is not a record of this protocol (the harness's fault, never the candidate's)."""


def _wire(value: Any) -> Any:
    """A field's value on the wire: records as dicts, a tuple field as a list; the task values inside
    (a tuple init input such as LayerNorm's shape) stay as they are, tuples included."""
    if isinstance(value, Record):
        return value.to_wire()
    if isinstance(value, tuple):
        return [v.to_wire() if isinstance(v, Record) else v for v in value]
    return value


def _unwire(hint: Any, value: Any) -> Any:
    """``value`` as the field typed ``hint`` holds it: nested records rebuilt, lists as tuples."""
    if get_origin(hint) in (Union, UnionType):  # ``tuple[...] | None``: the tuple part
        hint = next((h for h in get_args(hint) if get_origin(h) is tuple), hint)
    if get_origin(hint) is not tuple or not isinstance(value, (list, tuple)):
        return value
    inner = get_args(hint)[0]
    if isinstance(inner, type) and issubclass(inner, Record):
        return tuple(inner.from_wire(v) for v in value)
    return tuple(value)


class Record:
    """Base of the protocol's frozen dataclasses: ``to_wire`` and ``from_wire`` to and from plain data."""

    def to_wire(self) -> dict[str, Any]:
        """Plain dicts, lists, numbers, strings and tensors (``torch.load(weights_only=True)`` reads them)."""
        return {f.name: _wire(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_wire(cls: type[R], data: Any) -> R:
        """Rebuild the record from ``to_wire``'s output; ``ProtocolError`` for anything else."""
        if not isinstance(data, dict):
            raise ProtocolError(f"{cls.__name__}: expected a dict, got {type(data).__name__}")
        hints = get_type_hints(cls)
        known = fields(cls)  # type: ignore[arg-type]
        missing = [f.name for f in known
                   if f.name not in data and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise ProtocolError(f"{cls.__name__}: missing {', '.join(missing)}")
        return cls(**{f.name: _unwire(hints[f.name], data[f.name]) for f in known if f.name in data})


class JobRecord(Record):
    """A job spec: written as ``job.pt`` with the protocol version and its ``mode``."""

    mode: str

    def to_wire(self) -> dict[str, Any]:
        return {"version": WIRE_VERSION, **super().to_wire()}


@dataclass(frozen=True)
class PlanTrial(Record):
    """One trial a plan asks for (default profile): its seed, input transform and value distribution's name."""

    seed: int
    transform: tuple[Any, ...]
    values: str = "task"  # "task": the task's own values; else a drawn distribution (dropped when unrunnable)


def task_valued(trial: Mapping[str, Any]) -> bool:
    """Whether a reference trial record ran at the task's own values (not a drawn value distribution)."""
    return trial.get("values", "task") == "task"


@dataclass(frozen=True)
class PlanFile(Record):
    """One shape plan of a reference job: the task copy written for it and how inputs are spread."""

    file: str  # relative to the job directory
    index: int
    plan: dict[str, Any]  # ShapePlan.describe()
    transform: tuple[Any, ...]  # (scale, shift) or (scale, shift, mode) of floating inputs (shapes.apply_transform)
    trials: tuple[PlanTrial, ...] | None = None  # the plan's own trials; None: the job's ``seeds`` at ``transform``
    group: str | None = None  # under ``each``, plans of one group are alternatives: the first that runs is kept
    strong: bool = True  # run the strengthened trials (when the task is low-signal or plans are many)


@dataclass(frozen=True)
class ReferenceJob(JobRecord):
    """Run the task's Model over plans and seeds (``mode`` reference, or resident_reference)."""

    device: str
    dtype: str
    construct_seed: int
    plans: tuple[PlanFile, ...]
    pick: str  # first_fit: the first plan that fits; each: every plan
    budget_numel: int | None
    last_exempt: bool  # the last plan runs even over budget
    seeds: tuple[int, ...]
    strong_seeds: tuple[int, ...]
    strong: tuple[float, float]  # the transform of strengthened trials
    resident_above: int | None  # official shapes above this many input and output elements go resident
    mode: str = "reference"


@dataclass(frozen=True)
class TrialInputs(Record):
    """One trial a candidate runs: its seed and the reference's inputs (host tensors and values)."""

    seed: int
    inputs: tuple[Any, ...]
    reuse_storage: bool = False  # written into the previous trial's input tensors (same addresses)


@dataclass(frozen=True)
class CandidateCase(Record):
    """One shape plan for a candidate: how to construct it (reference weights) and its trials."""

    construct_seed: int
    init_inputs: tuple[Any, ...]
    state_dict: dict[str, Any]
    trials: tuple[TrialInputs, ...]
    constants: dict[str, int] | None = None  # the plan's size constants, set in the candidate's module


@dataclass(frozen=True)
class AuditedJob(JobRecord):
    """What every job that imports the candidate under the run-time audit holds."""

    entry: str  # the candidate's class
    device: str
    dtype: str
    audit: bool  # full anti-cheat (False: plain equivalence, as the fuse stage checks)
    poison: bool  # fill outputs with NaN after each trial


@dataclass(frozen=True)
class CandidateJob(AuditedJob):
    """Import the candidate under the run-time audit and run every case's trials."""

    cases: tuple[CandidateCase, ...]
    mode: str = "candidate"


@dataclass(frozen=True)
class TrialDraw(Record):
    """One trial of the resident path: drawn on the device from its seed and transform."""

    seed: int
    strong: bool
    transform: tuple[Any, ...]
    reuse_storage: bool = False  # written into the previous trial's input tensors (same addresses)


@dataclass(frozen=True)
class ResidentCase(Record):
    """One shape plan of the resident path: the task copy, its construct seed, its plan and trials."""

    file: str
    construct_seed: int
    plan: dict[str, Any]
    trials: tuple[TrialDraw, ...]
    constants: dict[str, int] | None = None  # the plan's size constants, set in the candidate's module


@dataclass(frozen=True)
class ResidentJob(AuditedJob):
    """The comparer serves the candidate's process (``mode`` resident; ``shell`` is the candidate's side)."""

    cases: tuple[ResidentCase, ...]
    timeout_s: float
    mode: str = "resident"


@dataclass(frozen=True)
class ExtractJob(JobRecord):
    """Build the fused model, run one forward with hooks, return its subgraph specs."""

    task: str  # files relative to the job directory
    fused: str
    entry: str
    construct_seed: int
    input_seed: int
    device: str
    timeout_s: float
    mode: str = "extract"


@dataclass(frozen=True)
class BenchJob(JobRecord):
    """Time the task's Model, its compiled form and ``ModelNew`` on the GPU."""

    task_path: str
    model_new_path: str
    bandwidth_gbps: float | None
    dtype: str
    seed: int
    input_sets: int
    warmup_ms: float
    rep_ms: float
    min_reps: int
    max_reps: int
    compile: bool
    device: str = "cuda"
    mode: str = "bench"


@dataclass(frozen=True)
class KernelBenchJob(JobRecord):
    """Replay KernelBench's own eval of the candidate in one process, no audit (``core/kernelbench.py``)."""

    task: str  # the task plan's copy, relative to the job directory (the candidate is candidate.py)
    entry: str
    device: str
    dtype: str
    seed: int
    trials: int
    mode: str = "kernelbench"


@dataclass(frozen=True)
class ReferenceCase(Record):
    """What a reference job found for one plan; ``trials`` hold tensors (or, resident, summaries)."""

    plan: dict[str, Any]
    index: int
    construct_seed: int
    init_inputs: tuple[Any, ...]
    trials: tuple[dict[str, Any], ...]
    strong_trials: tuple[dict[str, Any], ...]
    state_dict: dict[str, Any] | None = None  # None on the resident path (weights stay in the child)
    probes: tuple[str, ...] = ()  # trivial answers that pass this case (found on the device, in the child)
    # what the trials and one repeated forward say about the task (``child/taskfacts.py``, ``core/facts.py``):
    # {"trials": [per-trial kinds, digests, zero/constant outputs], "repeat": {determinism, RNG, time, peak}}
    facts: dict[str, Any] = field(default_factory=dict)
    dropped: tuple[dict[str, Any], ...] = ()  # value draws the reference could not take (seed, values, error)


@dataclass(frozen=True)
class ReferenceResult(Record):
    """The body of a reference job's ``result.pt``: cases, discarded plans, the low-signal probes
    found in the child (None: the parent finds them from the trials)."""

    cases: tuple[ReferenceCase, ...]
    discarded: tuple[dict[str, Any], ...]
    probes: tuple[str, ...] | None = None
    resident: bool = False  # the tensors stayed in the child (candidates go through the comparer)


JOBS: dict[str, type[JobRecord]] = {
    "reference": ReferenceJob, "resident_reference": ReferenceJob, "candidate": CandidateJob,
    "resident": ResidentJob, "shell": ResidentJob, "extract": ExtractJob, "bench": BenchJob,
    "kernelbench": KernelBenchJob,
}


def read_job(data: Any) -> JobRecord:
    """The job record of a loaded ``job.pt``; ``ProtocolError`` for another version or an unknown mode."""
    if not isinstance(data, dict) or data.get("version") != WIRE_VERSION:
        raise ProtocolError(f"job file is not version {WIRE_VERSION} of the protocol")
    record = JOBS.get(str(data.get("mode")))
    if record is None:
        raise ProtocolError(f"unknown job mode {data.get('mode')!r}")
    return record.from_wire({k: v for k, v in data.items() if k != "version"})
