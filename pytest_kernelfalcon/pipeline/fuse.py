"""Stage 1, fuse: the LLM rewrites ``Model`` as ``FusedModel``; accepted only when the checker finds them equal."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.pipeline.llmcall import Conversation
from pytest_kernelfalcon.pipeline.rounds import Rounds, check_rounds
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
    prompt = scope.ctx.prompts.render("fuse", task_id=scope.task.id, task_source=task_source)
    spec = Rounds("FusedModel", ("fuse",), scope.ctx.config.fuse_rounds,
                  lambda code: fused_file(code, task_source), fuse_checker(scope))
    end = check_rounds(scope, conv, spec, prompt)
    if end.passed and end.candidate is not None:
        _accept(end.candidate, target)
        return FuseResult(True, target, end.rounds)
    return FuseResult(False, target, end.rounds, category=end.category, detail=end.detail)


def _accept(candidate: Path, target: Path) -> None:
    tmp = target.with_name(".fused.py.tmp")
    shutil.copyfile(candidate, tmp)
    tmp.replace(target)
