"""Stage 1, fuse: ``Model`` as ``FusedModel``, accepted only when the checker finds them equal.

A task whose ``forward`` is already one subgraph (``passthrough.fuse_plan``) keeps its own module: the
pipeline writes ``FusedModel`` around it, with no LLM call (``--falcon-fuse auto``, the default). Else
the LLM writes it; an answer whose ``FusedModel.__init__`` does not take ``Model``'s arguments is sent
back before it runs, naming the constructor to write.
"""

from __future__ import annotations

import ast
import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.pipeline.llmcall import Conversation
from pytest_kernelfalcon.pipeline.passthrough import fuse_plan, passthrough_fused
from pytest_kernelfalcon.pipeline.rounds import Rounds, check_rounds, checked
from pytest_kernelfalcon.pipeline.rundir import atomic_write_text
from pytest_kernelfalcon.pipeline.sources import fused_file

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.checker import Checker
    from pytest_kernelfalcon.pipeline.context import TaskScope


@dataclass(frozen=True)
class FuseResult:
    """Where the accepted fused file is, or the last failure; rounds used; whether it was resumed; how it
    was made (``kept``: the task's own module, no LLM call; ``llm``: the LLM's answer)."""

    passed: bool
    fused_path: Path
    rounds: int
    category: str | None = None
    detail: str = ""
    resumed: bool = False
    how: str = "llm"


def fuse_checker(scope: TaskScope) -> Checker:
    """Return a checker judging ``FusedModel`` for plain equivalence (no anti-cheat audit)."""
    from pytest_kernelfalcon.checker.checker import Checker

    base = scope.ctx.checker
    options = dataclasses.replace(base.options, entry="FusedModel", audit=False)
    return Checker(options, base.executor)


def fuse_model(scope: TaskScope) -> FuseResult:
    """Return the accepted ``fused.py`` (reused when it exists): the task's own module where its forward is
    already one subgraph, else the LLM's after up to ``fuse_rounds`` rounds."""
    target = scope.dir / "fused.py"
    if target.is_file():
        own = scope.dir / "fuse" / "kept.py"
        how = "kept" if own.is_file() and own.read_bytes() == target.read_bytes() else "llm"
        return FuseResult(True, target, 0, resumed=True, how=how)
    task_source = scope.task.path.read_text(encoding="utf-8")
    if scope.ctx.config.fuse == "auto":
        kept = _keep_module(scope, task_source, target)
        if kept is not None:
            return kept
    return _llm_fuse(scope, task_source, target)


def _keep_module(scope: TaskScope, task_source: str, target: Path) -> FuseResult | None:
    """Return the accepted fused file that keeps the task's module, or None where the LLM should fuse."""
    plan = fuse_plan(task_source)
    scope.emit("fuse_plan", stage="fuse", skip=plan.skip, reason=plan.reason)
    if not plan.skip:
        return None
    candidate = scope.dir / "fuse" / "kept.py"
    atomic_write_text(candidate, passthrough_fused(task_source))
    verdict = checked(scope, "fuse", fuse_checker(scope), candidate, 0)
    if not verdict.passed:  # the pipeline's own file: say so, and let the LLM fuse
        scope.emit("warning", stage="fuse", detail=f"the kept module was not accepted: {verdict.detail[:300]}")
        return None
    _accept(candidate, target)
    return FuseResult(True, target, 0, detail=plan.reason, how="kept")


def _llm_fuse(scope: TaskScope, task_source: str, target: Path) -> FuseResult:
    conv = Conversation(scope, "fuse", "", 0, scope.ctx.config.temperature(0))
    prompt = scope.ctx.prompts.render("fuse", task_id=scope.task.id, task_source=task_source,
                                      init_signature=init_signature(task_source, "Model"))
    spec = Rounds("FusedModel", ("fuse",), scope.ctx.config.fuse_rounds,
                  lambda code: fused_file(code, task_source), fuse_checker(scope),
                  precheck=lambda code: constructor_problem(code, task_source))
    end = check_rounds(scope, conv, spec, prompt)
    if end.passed and end.candidate is not None:
        _accept(end.candidate, target)
        return FuseResult(True, target, end.rounds)
    return FuseResult(False, target, end.rounds, category=end.category, detail=end.detail)


def _init_args(source: str, class_name: str) -> ast.arguments | None:
    """Return the arguments of ``class_name.__init__`` in ``source`` (None: no such class or no ``__init__``)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            return init.args if init is not None else ast.arguments(posonlyargs=[], args=[ast.arg("self")],
                                                                    kwonlyargs=[], kw_defaults=[], defaults=[])
    return None


def init_signature(source: str, class_name: str) -> str:
    """Return ``def __init__(self, ...)`` of ``class_name`` in ``source``, without annotations."""
    args = _init_args(source, class_name)
    if args is None:
        return "def __init__(self)"
    bare = ast.arguments(posonlyargs=[], args=[ast.arg(a.arg) for a in [*args.posonlyargs, *args.args]],
                         vararg=ast.arg(args.vararg.arg) if args.vararg else None,
                         kwonlyargs=[ast.arg(a.arg) for a in args.kwonlyargs], kw_defaults=args.kw_defaults,
                         kwarg=ast.arg(args.kwarg.arg) if args.kwarg else None, defaults=args.defaults)
    return f"def __init__({ast.unparse(bare)})"


def _arity(args: ast.arguments) -> tuple[int, int, bool]:
    """Return (required positional, positional, takes ``*args``) of a method's arguments, ``self`` left out."""
    positional = len(args.posonlyargs) + len(args.args) - 1
    return positional - len(args.defaults), positional, args.vararg is not None


def _accepts(fused: ast.arguments, model: ast.arguments) -> bool:
    """Return whether a constructor with arguments ``fused`` takes every positional call ``model`` takes."""
    f_required, f_positional, f_var = _arity(fused)
    m_required, m_positional, m_var = _arity(model)
    return f_required <= m_required and (f_var or (f_positional >= m_positional and not m_var))


def constructor_problem(block: str, task_source: str) -> str | None:
    """Return why ``FusedModel.__init__`` in ``block`` cannot take ``Model``'s arguments (None: it can)."""
    try:
        fused = _init_args(block, "FusedModel")
    except SyntaxError:
        return None  # the checker reports it with its line
    model = _init_args(task_source, "Model")
    if fused is None or model is None or _accepts(fused, model):
        return None
    return (f"FusedModel.__init__ is `{init_signature(block, 'FusedModel')}`, but the checker builds FusedModel "
            f"with Model's constructor arguments (`FusedModel(*get_init_inputs())`), and Model has "
            f"`{init_signature(task_source, 'Model')}`. Write exactly that constructor for FusedModel and pass "
            "what each subgraph needs from it (found before running the code).")


def _accept(candidate: Path, target: Path) -> None:
    tmp = target.with_name(".fused.py.tmp")
    shutil.copyfile(candidate, tmp)
    tmp.replace(target)
