"""Stage 4, compose: ``ModelNew`` = the fused model with each subgraph class served by its verified kernel."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.pipeline.codeblock import bound_names
from pytest_kernelfalcon.pipeline.llmcall import Conversation, verdict_text
from pytest_kernelfalcon.pipeline.rename import prefix_kernel
from pytest_kernelfalcon.pipeline.rounds import Rounds, check_rounds, checked
from pytest_kernelfalcon.pipeline.rundir import atomic_write_text
from pytest_kernelfalcon.pipeline.sources import (
    HEADER,
    fused_core,
    input_functions,
    statements,
    task_tail,
)

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.verdict import Verdict
    from pytest_kernelfalcon.pipeline.context import TaskScope


@dataclass(frozen=True)
class Kernel:
    """A verified kernel file and the subgraph (spec id, class name) it serves."""

    spec_id: str
    class_name: str
    path: Path


@dataclass(frozen=True)
class ComposeResult:
    """The final ``ModelNew.py`` and its verdict, or the last failure; how it was built."""

    passed: bool
    model_new: Path | None
    rounds: int
    verdict: Verdict | None = None
    category: str | None = None
    detail: str = ""
    how: str = "mechanical"  # "mechanical" | "llm"


def compose_source(fused_source: str, task_source: str, kernels: list[Kernel]) -> str:
    """Return the mechanical ``ModelNew`` file: renamed kernels, rebound subgraph classes, the fused model."""
    imports: dict[str, None] = dict.fromkeys(HEADER.splitlines())
    bodies: list[str] = []
    bindings: dict[str, str] = {}
    for kernel in kernels:
        renamed = prefix_kernel(kernel.path.read_text(encoding="utf-8"), f"{kernel.spec_id}_")
        imports.update(dict.fromkeys(renamed.imports))
        bodies.append(f"# --- kernel for {kernel.spec_id} ({kernel.class_name}) ---\n{renamed.body}\n")
        bindings.setdefault(kernel.class_name, f"{kernel.spec_id}_ModelNew")
    core_imports, core = split_imports(statements(fused_core(fused_source), drop=tuple(bindings)))
    imports.update(dict.fromkeys(core_imports))
    rebind = "".join(f"{cls} = {new}\n" for cls, new in bindings.items())
    return ("\n".join(imports) + "\n\n\n" + "\n\n".join(bodies)
            + f"\n# --- subgraph classes served by their kernels ---\n{rebind}\n\n"
            + f"# --- the fused model ---\n{core}\n\n" + MODEL_NEW + "\n\n"
            + input_functions(task_source))


MODEL_NEW = ('''class ModelNew(FusedModel):\n    """KernelBench entry point: the fused model, each subgraph '''
             '''served by its verified Triton kernel."""\n''')


def split_imports(source: str) -> tuple[list[str], str]:
    """Return the top-level import statements of ``source`` and the rest of it."""
    lines = source.splitlines()
    spans = [(n.lineno, n.end_lineno or n.lineno) for n in ast.parse(source).body
             if isinstance(n, (ast.Import, ast.ImportFrom))]
    taken = {i for start, end in spans for i in range(start - 1, end)}
    imports = ["\n".join(lines[a - 1:b]) for a, b in spans]
    rest = "\n".join(line for i, line in enumerate(lines) if i not in taken)
    return imports, rest.strip() + "\n"


def composer_file(block: str, task_source: str) -> str:
    """Return an LLM composer's file completed with the task's constants and input functions."""
    defined = {n for node in ast.parse(block).body for n in bound_names(node)}
    body = statements(block, drop=("Model", "get_inputs", "get_init_inputs"))
    return f"{body}\n\n# --- from the task ---\n{task_tail(task_source, defined)}"


def compose_model(scope: TaskScope, fused_path: Path, kernels: list[Kernel]) -> ComposeResult:
    """Build, check and write ``ModelNew.py``; ask the LLM composer only when the mechanical file fails."""
    task_source = scope.task.path.read_text(encoding="utf-8")
    source = compose_source(fused_path.read_text(encoding="utf-8"), task_source, kernels)
    candidate = scope.dir / "compose" / "mechanical.py"
    atomic_write_text(candidate, source)
    verdict = checked(scope, "compose", scope.ctx.checker, candidate, 0)
    if verdict.passed:
        return _accept(scope, candidate, verdict, 0, "mechanical")
    return _llm_compose(scope, task_source, source, verdict)


def _accept(scope: TaskScope, candidate: Path, verdict: Verdict, rounds: int, how: str) -> ComposeResult:
    target = scope.dir / "ModelNew.py"
    atomic_write_text(target, candidate.read_text(encoding="utf-8"))
    return ComposeResult(True, target, rounds, verdict, how=how)


def _llm_compose(scope: TaskScope, task_source: str, mechanical: str, verdict: Verdict) -> ComposeResult:
    rounds = scope.ctx.config.compose_rounds
    category, detail = verdict_text(verdict)
    if rounds < 1:
        return ComposeResult(False, None, 0, verdict, category, detail)
    conv = Conversation(scope, "compose", "", 0, scope.ctx.config.temperature(0))
    prompt = scope.ctx.prompts.render("compose", task_id=scope.task.id, category=category, detail=detail,
                                      task_source=task_source, composed_source=mechanical)
    spec = Rounds("ModelNew", ("compose",), rounds, lambda code: composer_file(code, task_source),
                  scope.ctx.checker)
    end = check_rounds(scope, conv, spec, prompt)
    if end.passed and end.candidate is not None and end.verdict is not None:
        return _accept(scope, end.candidate, end.verdict, end.rounds, "llm")
    return ComposeResult(False, None, rounds, end.verdict or verdict, end.category, end.detail, how="llm")
