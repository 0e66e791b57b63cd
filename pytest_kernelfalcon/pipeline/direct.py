"""The direct strategy: one stage, the LLM writes ``ModelNew`` for the whole task (level-1 style tasks).

Judged by the same checker as the staged pipeline's final step (full anti-cheat audit against
the task's ``Model``); failed rounds get the same feedback templates. One conversation
(worker 0), up to ``max_rounds`` rounds; an answer identical to an earlier one is not checked
again (the duplicate template says so).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.pipeline.llmcall import Conversation
from pytest_kernelfalcon.pipeline.rounds import Rounds, check_rounds

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.verdict import Verdict
    from pytest_kernelfalcon.pipeline.context import TaskScope

FIRST_TEMPLATES = ("direct", "triton_example")


@dataclass(frozen=True)
class DirectResult:
    """The accepted ``ModelNew.py`` (with its verdict), or the last failure; rounds used."""

    passed: bool
    rounds: int
    model_new: Path | None = None
    verdict: Verdict | None = None
    category: str | None = None
    detail: str = ""


def direct_model(scope: TaskScope) -> DirectResult:
    """Ask for ``ModelNew`` up to ``max_rounds`` times; return the first one the checker accepts."""
    prompts = scope.ctx.prompts
    conv = Conversation(scope, "direct", "", 0, scope.ctx.config.temperature(0))
    prompt = prompts.render("direct", task_id=scope.task.id, example=prompts.texts["triton_example"].strip(),
                            task_source=scope.task.path.read_text(encoding="utf-8"))
    spec = Rounds("ModelNew", FIRST_TEMPLATES, scope.ctx.config.max_rounds, lambda code: code, scope.ctx.checker,
                  skip_repeats=True)
    end = check_rounds(scope, conv, spec, prompt)
    if end.passed and end.candidate is not None:
        target = scope.dir / "ModelNew.py"
        shutil.copyfile(end.candidate, target)
        return DirectResult(True, end.rounds, target, end.verdict)
    return DirectResult(False, end.rounds, category=end.category, detail=end.detail)
