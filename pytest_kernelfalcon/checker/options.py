"""What a check is asked to do (``CheckOptions``) and what a finished reference run holds (``Reference``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_kernelfalcon.core.protocol import CANDIDATE_START_S, DATA_PATHS, ReferenceCase
from pytest_kernelfalcon.core.verdict import Category

STATIC_REJECT = (Category.FALLBACK, Category.REFERENCE_REUSE, Category.CHECKER_TAMPER)


# default: the task's plan + drawn sizes and values + address reuse (checker/profile.py); official: exactly
# KernelBench's check; scaled: one shrunk plan; fuzz: Hypothesis-drawn plans only
SHAPE_PROFILES = ("default", "official", "scaled", "fuzz")


CPU_BUDGET_NUMEL = 1 << 16


GPU_BUDGET_NUMEL = 1 << 24  # scaled/fuzz on cuda: big enough for many blocks, small enough to ship


DEFAULT_SEED = 42


STRONG_TRANSFORM = (4.0, -2.0)


STRONG_TRIALS = 2


FUZZ_TRIALS = 2


RESIDENT_NUMEL = 1 << 26  # auto: official inputs and outputs above this many elements stay on the device


RESIDENT_MARGIN_S = 15.0 + CANDIDATE_START_S  # the comparer starts its candidate, outlives its time limit, reports


@dataclass(frozen=True)
class CheckOptions:
    """How a candidate is checked; frozen, read once."""

    device: str = "auto"  # "cpu" | "cuda" | "auto" (cuda if available else cpu + TRITON_INTERPRET=1)
    shapes: str = "default"  # "default" (checker/profile.py) | "official" | "scaled" | "fuzz"
    seeds: int = 3  # trials
    seed: int | None = None  # base seed (fuzz replay); printed in the verdict
    dtype: str = "fp32"  # "fp32" | "bf16" | "fp16"
    timeout_s: float = 120.0
    entry: str = "ModelNew"  # class name in the candidate file
    audit: bool = True  # full anti-cheat; False = plain equivalence (fuse stage, torch allowed)
    gpu: str | None = None  # value for CUDA_VISIBLE_DEVICES in the children
    data_path: str = "auto"  # "files" | "resident" | "auto" (resident: official inputs + outputs on cuda > RESIDENT_NUMEL)
    reference_cache: str | None = "off"  # "off" | "auto" (where candidates run as another uid) | a directory
    precision: str = "fp32"  # "fp32" | "tf32": accept TF32-class error (core/precision.py)
    allow_torch: tuple[str, ...] = ()  # hybrid policy: aten ops forward may run (core/ops.py); default strict


@dataclass(frozen=True)
class Reference:
    """A finished reference run: cases (plan, weights, trials), low-signal probes, discarded plans."""

    cases: tuple[ReferenceCase, ...]
    discarded: tuple[dict[str, Any], ...]
    probes: tuple[str, ...]
    base_seed: int
    wall_s: float
    resident: bool = False  # tensors stayed on the device (candidates go through the comparer)
    extras: Reference | None = None  # default profile beside a resident base: drawn cases, judged through files
    plans: tuple[Any, ...] = ()  # the ShapePlans of the job; a case's is ``plans[case.index]``
    cached: bool = False  # read from the persistent reference cache (``refcache``), not run
    split: dict[str, float] = field(default_factory=dict)  # seconds of the run's parts (job, probes)

    def plan_of(self, case: ReferenceCase) -> Any:
        """The ``ShapePlan`` a case ran at (parent side only; the child saw its description)."""
        return self.plans[case.index]

    def trials_of(self, case: ReferenceCase) -> list[dict[str, Any]]:
        """A case's trials a candidate runs: the ordinary ones, plus the strengthened ones when low-signal."""
        return list(case.trials) + (list(case.strong_trials) if self.low_signal else [])

    @property
    def low_signal(self) -> bool:
        """Whether a trivial answer passes the ordinary trials."""
        return bool(self.probes)

    @property
    def trial_count(self) -> int:
        """How many trials a candidate runs: every case's trials, plus the strengthened ones when low-signal."""
        return sum(len(self.trials_of(c)) for c in self.cases)


def resident_fits(shapes: str, device: str) -> bool:
    """Whether the resident data path can serve a profile: its task plan is official (default: on cuda)."""
    return shapes == "official" or (shapes == "default" and device == "cuda")


def validate(options: CheckOptions) -> None:
    """Raise ``ValueError`` for option values the checker does not know."""
    if options.shapes not in SHAPE_PROFILES:
        raise ValueError(f"unknown shapes {options.shapes!r}; expected one of {', '.join(SHAPE_PROFILES)}")
    if options.dtype not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"unknown dtype {options.dtype!r}; expected fp32, bf16 or fp16")
    if options.data_path not in DATA_PATHS:
        raise ValueError(f"unknown data path {options.data_path!r}; expected one of {', '.join(DATA_PATHS)}")
    if options.data_path == "resident" and options.shapes not in ("official", "default"):
        raise ValueError("the resident data path checks official shapes only (official or default)")
    if options.seeds < 1 or options.timeout_s <= 0:
        raise ValueError("seeds must be >= 1 and timeout_s > 0")
    from pytest_kernelfalcon.core.ops import parse_allowed
    from pytest_kernelfalcon.core.precision import PRECISIONS

    if options.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {options.precision!r}; expected one of {', '.join(PRECISIONS)}")
    parse_allowed(options.allow_torch)  # ValueError naming an op torch.ops.aten does not have
