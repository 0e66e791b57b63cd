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

from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.pipeline.codeblock import FormatError, extract_code
from pytest_kernelfalcon.pipeline.context import stop_on_harness_error
from pytest_kernelfalcon.pipeline.llmcall import Conversation, save_verdict, verdict_text
from pytest_kernelfalcon.pipeline.rundir import atomic_write_text

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
    prompts, rounds = scope.ctx.prompts, scope.ctx.config.max_rounds
    conv = Conversation(scope, "direct", "", 0, scope.ctx.config.temperature(0))
    prompt = prompts.render("direct", task_id=scope.task.id, example=prompts.texts["triton_example"].strip(),
                            task_source=scope.task.path.read_text(encoding="utf-8"))
    templates: tuple[str, ...] = FIRST_TEMPLATES
    last = (Category.FORMAT_ERROR.value, "no answer")
    tried: dict[str, tuple[str, str]] = {}
    for round_ in range(1, rounds + 1):
        scope.emit("round", stage="direct", subgraph="", worker=0, round=round_)
        text = conv.ask(round_, prompt, templates).text
        try:
            block = extract_code(text, required=("ModelNew",))
        except FormatError as err:
            last = (Category.FORMAT_ERROR.value, str(err))
            prompt = prompts.render("format_feedback", error=err, round=round_, max_rounds=rounds)
            templates = (*FIRST_TEMPLATES, "format_feedback")
            continue
        if block.digest in tried:
            note = "Its result: " + ": ".join(tried[block.digest])
            prompt = prompts.render("duplicate", detail=note, round=round_, max_rounds=rounds)
            templates = (*FIRST_TEMPLATES, "duplicate")
            continue
        candidate = conv.path(round_, ".py")
        atomic_write_text(candidate, block.code)
        verdict = scope.ctx.checker.verify(scope.task.path, candidate)
        save_verdict(conv.path(round_, ".verdict.json"), verdict)
        stop_on_harness_error(verdict)  # raises: the harness's failure is no feedback for the LLM
        last = tried[block.digest] = verdict_text(verdict)
        scope.emit("verdict", stage="direct", subgraph="", worker=0, round=round_, passed=verdict.passed,
                   category=None if verdict.passed else last[0], detail=verdict.detail[:500])
        if verdict.passed:
            target = scope.dir / "ModelNew.py"
            shutil.copyfile(candidate, target)
            return DirectResult(True, round_, target, verdict)
        prompt = prompts.render("feedback", category=last[0], detail=last[1], round=round_, max_rounds=rounds)
        templates = (*FIRST_TEMPLATES, "feedback")
    return DirectResult(False, rounds, category=last[0], detail=last[1])
