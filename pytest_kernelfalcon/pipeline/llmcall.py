"""One worker's conversation with the LLM: keyed calls, budget checks, every prompt and answer on disk."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.pipeline.rundir import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from pytest_kernelfalcon.llm.base import Completion
    from pytest_kernelfalcon.pipeline.context import TaskScope


@dataclass
class Conversation:
    """The message history of one (stage, subgraph, worker); ``ask`` adds one round."""

    scope: TaskScope
    stage: str
    subgraph: str = ""
    worker: int = 0
    temperature: float | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        """Return this conversation's directory: ``<task>/<stage>/<subgraph or _>/w<worker>``."""
        return self.scope.dir / self.stage / (self.subgraph or "_") / f"w{self.worker}"

    def ask(self, round_: int, prompt: str, templates: tuple[str, ...],
            cancel: threading.Event | None = None) -> Completion:
        """Send ``prompt`` after the history and return the answer (raises budget and provider errors)."""
        from pytest_kernelfalcon.llm.base import CallKey

        scope, prompts = self.scope, self.scope.ctx.prompts
        scope.budget.before_call()
        self.messages.append({"role": "user", "content": prompt})
        atomic_write_text(self.dir / f"r{round_}.prompt.md", prompt)
        key = CallKey(scope.task.id, self.stage, self.subgraph, self.worker, round_)
        completion = scope.ctx.provider.complete(
            list(self.messages), system=prompts.render("system"), temperature=self.temperature,
            max_tokens=scope.ctx.config.max_output_tokens, key=key,
            templates=prompts.hashes_of("system", *templates), cancel=cancel)
        self.messages.append({"role": "assistant", "content": completion.text})
        used = scope.budget.charge(completion)
        atomic_write_text(self.dir / f"r{round_}.response.md", completion.text)
        save_usage(scope)
        scope.emit("llm_call", stage=self.stage, subgraph=self.subgraph, worker=self.worker,
                   round=round_, source=completion.source, input_tokens=used.input_tokens,
                   output_tokens=used.output_tokens, cost_usd=used.cost_usd,
                   usage_reported=completion.usage.reported, stop_reason=completion.stop_reason,
                   latency_s=round(completion.latency_s, 3))
        return completion

    def path(self, round_: int, suffix: str) -> Path:
        """Return the file of round ``round_`` with ``suffix`` (``.py``, ``.verdict.json``)."""
        return self.dir / f"r{round_}{suffix}"


def save_usage(scope: TaskScope) -> None:
    """Write the task's usage so far to ``usage.json`` (a resumed task starts from it)."""
    import dataclasses

    data = {"usage": dataclasses.asdict(scope.budget.usage), "sources": sorted(scope.budget.sources)}
    atomic_write_json(scope.dir / "usage.json", data)


def load_usage(task_dir: Path) -> tuple[Any, tuple[str, ...]]:
    """Return the ``Usage`` and sources an earlier session of this task recorded (zero if none)."""
    from pytest_kernelfalcon.core.outcome import Usage
    from pytest_kernelfalcon.pipeline.rundir import read_json

    path = task_dir / "usage.json"
    if not path.is_file():
        return Usage(), ()
    data = read_json(path)
    return Usage(**data["usage"]), tuple(data.get("sources", ()))


def verdict_text(verdict: Any) -> tuple[str, str]:
    """Return ``(category, detail)`` of a verdict for feedback."""
    category = verdict.category.value if verdict.category is not None else "passed"
    return category, verdict.detail or "(no detail)"


def save_verdict(path: Path, verdict: Any) -> None:
    """Write a verdict's JSON beside its candidate."""
    atomic_write_json(path, verdict.to_json())
