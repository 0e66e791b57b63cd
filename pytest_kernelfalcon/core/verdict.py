"""What a trusted check ends in: one ``Category`` and a ``Verdict`` with concrete detail."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

# the checker's copy of the candidate in a message: bare, or under its job directory (kf-cand-*)
JOB_CANDIDATE = re.compile(r"""(?:[^\s"']*/kf-cand-[^/\s"']+/|(?<![\w./-]))candidate\.py\b""")


class Category(str, Enum):
    """Stable failure names; the JSON report and the terminal summary use ``.value``."""

    COMPILE_ERROR = "compile_error"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    CRASH = "crash"
    SHAPE_MISMATCH = "shape_mismatch"
    NUMERIC_MISMATCH = "numeric_mismatch"
    TORCH_COMPUTE = "torch_compute"
    NO_TRITON_LAUNCH = "no_triton_launch"
    FALLBACK = "fallback"
    REFERENCE_REUSE = "reference_reuse"
    RESULT_REUSE = "result_reuse"
    INPUT_MUTATION = "input_mutation"
    SIDE_STREAM = "side_stream"
    CHECKER_TAMPER = "checker_tamper"
    MISSING_CANDIDATE = "missing_candidate"
    OUT_OF_MEMORY = "out_of_memory"  # the candidate ran out of device memory alone (beside others: run again)
    REFERENCE_ERROR = "reference_error"
    CANCELLED = "cancelled"
    # pipeline-level outcomes (a task that never reached a final check)
    LLM_ERROR = "llm_error"
    FORMAT_ERROR = "format_error"
    BUDGET_EXCEEDED = "budget_exceeded"
    WORKER_CRASH = "worker_crash"
    # the harness or the machine failed (a missing package, a child that broke before the candidate
    # was imported): never the candidate's failure, never fed back to the LLM
    HARNESS_ERROR = "harness_error"


@dataclass(frozen=True)
class Tolerance:
    """The tolerance policy a check used, reported with every verdict."""

    policy: str
    atol: float
    rtol: float


@dataclass(frozen=True)
class KernelBenchVerdict:
    """What KernelBench's own eval would say of the same candidate (``core/kernelbench.py``), and why ours differs.

    ``passed`` is None where it could not be told (nothing ran: a harness error, a cancel).
    ``source``: ``trials`` (our task plan's trials at the task's own values, judged KernelBench's
    way) or ``kernelbench job`` (KernelBench's procedure replayed in a child, where our trials
    cannot tell). ``why`` names the kind of difference (audit, drawn plan, precision, tolerance,
    address reuse, reference tf32, weights, trials, not judged) and ``reason`` says it in one line;
    both are empty when the two verdicts agree.
    """

    passed: bool | None
    detail: str
    source: str = "trials"
    trials: int = 0
    sizes: dict[str, int] = field(default_factory=dict)  # the task plan's size constants ({}: official)
    policy: str = ""
    why: str = ""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> KernelBenchVerdict | None:
        """Rebuild from ``to_json`` output (None stays None; unknown keys are ignored)."""
        if data is None:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def sizes_text(self) -> str:
        """``official`` or the task plan's constants (``N=128``)."""
        return ", ".join(f"{k}={v}" for k, v in sorted(self.sizes.items())) or "official"

    def label(self) -> str:
        """``pass``, ``fail`` or ``?`` (not judged)."""
        return "?" if self.passed is None else ("pass" if self.passed else "fail")


@dataclass(frozen=True)
class Verdict:
    """The checker's judgement of one candidate against one task."""

    passed: bool
    category: Category | None
    detail: str
    seeds: tuple[int, ...] = ()
    shapes: tuple[dict[str, Any], ...] = ()
    tolerance: Tolerance | None = None
    low_signal: bool = False
    device: str = "cpu"
    dtype: str = "fp32"
    tf32: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"  # the precision policy asked (core/precision.py): fp32, or tf32 (TF32-class error accepted)
    allowed_torch: tuple[str, ...] = ()  # torch ops forward ran that --allow-torch accepted ("aten.x x2 at f.py:9")
    kernelbench: KernelBenchVerdict | None = None  # what KernelBench's own eval would say

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``category`` as its string name or ``None``)."""
        data = dataclasses.asdict(self)
        data["category"] = self.category.value if self.category else None
        data["seeds"] = list(self.seeds)
        data["shapes"] = [dict(s) for s in self.shapes]
        data["allowed_torch"] = list(self.allowed_torch)
        data["kernelbench"] = self.kernelbench.to_json() if self.kernelbench else None
        return data

    @classmethod
    def failed(cls, category: Category, detail: str, **extra: Any) -> Verdict:
        """Return a failing verdict of ``category``."""
        return cls(passed=False, category=category, detail=detail, **extra)

    def naming(self, candidate: str) -> Verdict:
        """The verdict with the job's copy ``candidate.py`` named as the user's file (``my_kernel.py:12``)."""
        def named(text: str) -> str:
            return JOB_CANDIDATE.sub(lambda _: candidate, text)

        kb = self.kernelbench
        if kb is not None:
            kb = dataclasses.replace(kb, detail=named(kb.detail), reason=named(kb.reason))
        return dataclasses.replace(self, detail=named(self.detail), kernelbench=kb,
                                   allowed_torch=tuple(named(a) for a in self.allowed_torch))
