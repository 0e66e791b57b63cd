"""``PipelineConfig``: the pipeline's frozen settings (derived from ``FalconConfig`` under pytest).

The run context built from it (``RunContext``, ``TaskBudget``, ``TaskScope``) is in ``context.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.pipeline.rundir import DEFAULT_ROOT

DEFAULT_MODEL = "claude-sonnet-4-6"


@dataclass(frozen=True)
class PipelineConfig:
    """How the pipeline runs one task: workers, rounds, model, budgets, checker options, paths."""

    workers: int = 4
    temperatures: tuple[float, ...] = ()  # one per worker; empty = spread over 0.2..1.0
    max_rounds: int = 4  # per generate worker
    fuse_rounds: int = 3
    compose_rounds: int = 2
    model: str = DEFAULT_MODEL
    provider: str = "replay"
    strategy: str = "staged"  # staged: fuse -> extract -> generate -> compose; direct: ModelNew in one stage
    fuse: str = "auto"  # auto: a forward that is already one subgraph keeps the task's module (no LLM call); always
    base_url: str | None = None  # an OpenAI-compatible server (None: the provider's environment variable)
    llm_timeout_s: float = 600.0  # one LLM request (the SDK's client timeout)
    budget_usd: float | None = None  # per task
    max_llm_calls: int | None = None  # per task
    max_tokens: int | None = None  # per task, input + output tokens
    max_output_tokens: int = 8192  # per call
    task_timeout_s: float = 900.0
    extract_timeout_s: float = 300.0
    check: Any = None  # CheckOptions; None = the checker's defaults
    prompts_dir: Path | None = None
    run_root: Path = DEFAULT_ROOT

    def temperature(self, worker: int) -> float:
        """Return worker ``worker``'s sampling temperature (explicit, or spread over 0.2..1.0)."""
        if self.temperatures:
            return self.temperatures[worker % len(self.temperatures)]
        if self.workers <= 1:
            return 0.2
        return round(0.2 + 0.8 * worker / (self.workers - 1), 3)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (check options flattened, paths as strings)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        check = self.check
        data["check"] = dataclasses.asdict(check) if dataclasses.is_dataclass(check) and not isinstance(check, type) else check
        data["temperatures"] = [self.temperature(w) for w in range(self.workers)]
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}
