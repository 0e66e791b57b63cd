"""What one task (one pytest item) ended in: the seam between runner, plugin and reports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pytest_kernelfalcon.core.verdict import KernelBenchVerdict


@dataclass(frozen=True)
class Usage:
    """LLM usage summed over a task."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = 0.0
    unreported_calls: int = 0  # calls whose service sent no token counts (counted as zero above)

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Usage(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            cost,
            self.unreported_calls + other.unreported_calls,
        )


@dataclass(frozen=True)
class TaskOutcome:
    """The result of one task: passed, or the stage and category where it failed."""

    task_id: str  # "level1/19_ReLU"
    level: str  # "level1"
    passed: bool
    stage: str | None = None  # "fuse" | "extract" | "generate" | "compose" | "check" | None
    category: str | None = None  # a verdict.Category value
    detail: str = ""
    rounds: int = 0
    usage: Usage = field(default_factory=Usage)
    wall_s: float = 0.0
    seeds: tuple[int, ...] = ()
    shapes: tuple[dict[str, Any], ...] = ()
    low_signal: bool = False
    source: str = "check"  # "live" | "replay" | "hand-written" | "scripted" | "check" (judged, no LLM)
    model_new: str | None = None  # path of the final ModelNew.py, when there is one
    speedup_eager: float | None = None
    speedup_compile: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    kernelbench: KernelBenchVerdict | None = None  # what KernelBench's own eval says of the final candidate
    allowed_torch: tuple[str, ...] = ()  # a hybrid pass: the torch ops --falcon-allow-torch accepted

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["seeds"] = list(self.seeds)
        data["shapes"] = [dict(s) for s in self.shapes]
        data["allowed_torch"] = list(self.allowed_torch)
        return data

    @property
    def kernelbench_passed(self) -> bool:
        """Whether KernelBench's own eval passes the task's final candidate (False where it was not judged)."""
        return bool(self.kernelbench and self.kernelbench.passed)

    def with_verdict(self, verdict: Any) -> TaskOutcome:
        """This outcome carrying a final verdict's KernelBench-comparable verdict and hybrid allowance."""
        return dataclasses.replace(self, kernelbench=verdict.kernelbench, allowed_torch=tuple(verdict.allowed_torch))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskOutcome:
        """Rebuild an outcome from ``to_json`` output."""
        data = dict(data)
        data["usage"] = Usage(**data.get("usage", {}))
        data["seeds"] = tuple(data.get("seeds", ()))
        data["shapes"] = tuple(data.get("shapes", ()))
        data["kernelbench"] = KernelBenchVerdict.from_json(data.get("kernelbench"))
        data["allowed_torch"] = tuple(data.get("allowed_torch", ()))
        return cls(**data)
