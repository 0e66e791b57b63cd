"""One conversation's check-and-feedback rounds (fuse, compose, direct): ask, take the code block, check it,
feed the failure back; the first candidate the checker accepts ends them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.pipeline.codeblock import FormatError, extract_code
from pytest_kernelfalcon.pipeline.context import stop_on_harness_error
from pytest_kernelfalcon.pipeline.feedback import feedback_detail
from pytest_kernelfalcon.pipeline.llmcall import save_verdict, verdict_text
from pytest_kernelfalcon.pipeline.rundir import atomic_write_text

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.checker import Checker
    from pytest_kernelfalcon.core.verdict import Verdict
    from pytest_kernelfalcon.pipeline.context import TaskScope
    from pytest_kernelfalcon.pipeline.llmcall import Conversation


@dataclass(frozen=True)
class Rounds:
    """What a stage's rounds need: the class an answer must define, the first prompt's templates (every
    later round's start with them), how many rounds, how a code block becomes the candidate file, its checker."""

    required: str
    templates: tuple[str, ...]
    rounds: int
    write: Callable[[str], str]
    checker: Checker
    skip_repeats: bool = False  # an answer identical to an earlier one is not checked again (duplicate template)
    precheck: Callable[[str], str | None] | None = None  # a problem found in the code before it runs (fed back)


@dataclass(frozen=True)
class RoundsEnd:
    """The accepted candidate (``passed``), else the last failure; the last verdict checked (None: none was)."""

    passed: bool
    rounds: int
    candidate: Path | None = None
    verdict: Verdict | None = None
    category: str = Category.FORMAT_ERROR.value
    detail: str = "no answer"


def checked(scope: TaskScope, stage: str, checker: Checker, candidate: Path, round_: int) -> Verdict:
    """Check ``candidate`` against the task, save its verdict beside it and tell the events; a harness error
    raises (it is no feedback for the LLM). Only a ``ModelNew`` (compose, direct) gets the KernelBench-comparable
    verdict: KernelBench judges the final file, never a fused model."""
    verdict = checker.verify(scope.task.path, candidate, cancel=scope.budget.deadline, comparable=stage != "fuse")
    save_verdict(candidate.with_suffix(".verdict.json"), verdict)
    stop_on_harness_error(verdict)
    scope.emit("verdict", stage=stage, subgraph="", worker=0, round=round_, passed=verdict.passed,
               category=verdict.category.value if verdict.category else None, detail=verdict.detail[:500])
    return verdict


def check_rounds(scope: TaskScope, conv: Conversation, spec: Rounds, prompt: str) -> RoundsEnd:
    """Run up to ``spec.rounds`` rounds of ``conv`` from ``prompt``; return at the first accepted candidate."""
    prompts, stage = scope.ctx.prompts, conv.stage
    templates, verdict = spec.templates, None
    last = (Category.FORMAT_ERROR.value, "no answer")
    tried: dict[str, tuple[str, str]] = {}
    for round_ in range(1, spec.rounds + 1):
        scope.emit("round", stage=stage, subgraph="", worker=0, round=round_)
        text = conv.ask(round_, prompt, templates).text
        try:
            block = extract_code(text, required=(spec.required,))
        except FormatError as err:
            last = (Category.FORMAT_ERROR.value, str(err))
            prompt = prompts.render("format_feedback", error=err, round=round_, max_rounds=spec.rounds)
            templates = (*spec.templates, "format_feedback")
            continue
        problem = spec.precheck(block.code) if spec.precheck is not None else None
        if problem is not None:
            last = (Category.RUNTIME_ERROR.value, problem)
            prompt = feedback_prompt(scope, last, round_, spec.rounds)
            templates = (*spec.templates, "feedback")
            continue
        if spec.skip_repeats and block.digest in tried:
            note = "Its result: " + ": ".join(tried[block.digest])
            prompt = prompts.render("duplicate", detail=note, round=round_, max_rounds=spec.rounds)
            templates = (*spec.templates, "duplicate")
            continue
        candidate = conv.path(round_, ".py")
        source = spec.write(block.code)
        atomic_write_text(candidate, source)
        verdict = checked(scope, stage, spec.checker, candidate, round_)
        last = tried[block.digest] = verdict_text(verdict)
        if verdict.passed:
            return RoundsEnd(True, round_, candidate, verdict)
        prompt = feedback_prompt(scope, last, round_, spec.rounds, source)
        templates = (*spec.templates, "feedback")
    return RoundsEnd(False, spec.rounds, None, verdict, last[0], last[1])


def feedback_prompt(scope: TaskScope, failure: tuple[str, str], round_: int, rounds: int, code: str = "") -> str:
    """Return the feedback prompt for a failed round of ``code``: its category and the detail that names the fix."""
    category, detail = failure
    return scope.ctx.prompts.render("feedback", category=category, detail=feedback_detail(category, detail, code),
                                    round=round_, max_rounds=rounds)
