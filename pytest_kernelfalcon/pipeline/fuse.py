"""Stage 1, fuse: the LLM rewrites ``Model`` as ``FusedModel``; accepted only when the checker finds them equal."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.pipeline.codeblock import FormatError, extract_code
from pytest_kernelfalcon.pipeline.context import stop_on_harness_error
from pytest_kernelfalcon.pipeline.llmcall import Conversation, save_verdict, verdict_text
from pytest_kernelfalcon.pipeline.rundir import atomic_write_text
from pytest_kernelfalcon.pipeline.sources import fused_file

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.checker import Checker
    from pytest_kernelfalcon.pipeline.context import TaskScope


@dataclass(frozen=True)
class FuseResult:
    """Where the accepted fused file is, or the last failure; rounds used; whether it was resumed."""

    passed: bool
    fused_path: Path
    rounds: int
    category: str | None = None
    detail: str = ""
    resumed: bool = False


def fuse_checker(scope: TaskScope) -> Checker:
    """Return a checker judging ``FusedModel`` for plain equivalence (no anti-cheat audit)."""
    from pytest_kernelfalcon.checker.checker import Checker

    base = scope.ctx.checker
    options = dataclasses.replace(base.options, entry="FusedModel", audit=False)
    return Checker(options, base.executor)


def fuse_model(scope: TaskScope) -> FuseResult:
    """Return the accepted ``fused.py`` (reused when it exists), after up to ``fuse_rounds`` rounds."""
    target = scope.dir / "fused.py"
    if target.is_file():
        return FuseResult(True, target, 0, resumed=True)
    task_source = scope.task.path.read_text(encoding="utf-8")
    conv = Conversation(scope, "fuse", "", 0, scope.ctx.config.temperature(0))
    checker = fuse_checker(scope)
    prompt = scope.ctx.prompts.render("fuse", task_id=scope.task.id, task_source=task_source)
    templates: tuple[str, ...] = ("fuse",)
    last = (Category.FORMAT_ERROR.value, "no answer")
    rounds = scope.ctx.config.fuse_rounds
    for round_ in range(1, rounds + 1):
        scope.emit("round", stage="fuse", subgraph="", worker=0, round=round_)
        text = conv.ask(round_, prompt, templates).text
        try:
            block = extract_code(text, required=("FusedModel",))
        except FormatError as err:
            last = (Category.FORMAT_ERROR.value, str(err))
            prompt = scope.ctx.prompts.render("format_feedback", error=err, round=round_, max_rounds=rounds)
            templates = ("fuse", "format_feedback")
            continue
        candidate = conv.path(round_, ".py")
        atomic_write_text(candidate, fused_file(block.code, task_source))
        verdict = checker.verify(scope.task.path, candidate)
        save_verdict(conv.path(round_, ".verdict.json"), verdict)
        stop_on_harness_error(verdict)  # raises: the harness's failure is no feedback for the LLM
        last = verdict_text(verdict)
        scope.emit("verdict", stage="fuse", subgraph="", worker=0, round=round_, passed=verdict.passed,
                   category=last[0] if not verdict.passed else None, detail=verdict.detail[:500])
        if verdict.passed:
            _accept(candidate, target)
            return FuseResult(True, target, round_)
        prompt = scope.ctx.prompts.render("feedback", category=last[0], detail=last[1], round=round_,
                                          max_rounds=rounds)
        templates = ("fuse", "feedback")
    return FuseResult(False, target, rounds, category=last[0], detail=last[1])


def _accept(candidate: Path, target: Path) -> None:
    tmp = target.with_name(".fused.py.tmp")
    shutil.copyfile(candidate, tmp)
    tmp.replace(target)
