"""Source assembly by AST: the fused file, a subgraph's task file, the task's tail."""

from __future__ import annotations

import ast
import re
from typing import Any

from pytest_kernelfalcon.pipeline.codeblock import bound_names

TASK_FUNCTIONS = ("get_inputs", "get_init_inputs")
FIXED_NAME = re.compile(r"kernel|stride|pad|dilation", re.IGNORECASE)
HEADER = "import torch\nimport torch.nn as nn\n"


def statements(source: str, *, drop: tuple[str, ...] = (), keep_only: tuple[str, ...] = ()) -> str:
    """Return the top-level statements of ``source`` that bind none of ``drop`` (or only ``keep_only``)."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    for node in ast.parse(source).body:
        names = set(bound_names(node))
        if names & set(drop) or (keep_only and not names & set(keep_only)):
            continue
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        out.append("".join(lines[start - 1:node.end_lineno]))
    return "\n".join(out) + "\n"


def without_repeated_imports(source: str) -> str:
    """Return ``source`` without the top-level imports that repeat an earlier one exactly."""
    lines = source.splitlines(keepends=True)
    seen: set[str] = set()
    drop: set[int] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            key = ast.unparse(node)
            if key in seen:
                drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
            seen.add(key)
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def task_tail(task_source: str, defined: set[str]) -> str:
    """Return the task without its ``Model`` and without what the fused block already defines."""
    drop = tuple(sorted(defined - set(TASK_FUNCTIONS))) + ("Model",)
    return statements(task_source, drop=drop)


def fused_file(block: str, task_source: str) -> str:
    """Return the checkable fused file: the LLM block plus the task's constants and input functions."""
    defined = {n for node in ast.parse(block).body for n in bound_names(node)}
    tail = task_tail(task_source, defined)
    block = statements(block, drop=TASK_FUNCTIONS + ("Model",))
    return without_repeated_imports(f"{HEADER}\n{block}\n\n# --- from the task: constants, helpers, inputs ---\n{tail}")


def fused_core(fused_source: str) -> str:
    """Return the fused file without ``get_inputs`` / ``get_init_inputs`` (and any ``Model``)."""
    return statements(fused_source, drop=TASK_FUNCTIONS + ("Model",))


def input_functions(task_source: str) -> str:
    """Return the task's ``get_inputs`` and ``get_init_inputs`` definitions."""
    return statements(task_source, keep_only=TASK_FUNCTIONS)


class Constants:
    """Names for the integer sizes of a subgraph task; one name per distinct value."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def ref(self, value: Any, param: str = "") -> str:
        """Return the source text for ``value``: a shared constant for sizes (also inside a tuple or list of
        them, such as a shape argument), a literal otherwise."""
        if FIXED_NAME.search(param):
            return repr(value)
        if isinstance(value, (tuple, list)):
            items = ", ".join(self.ref(v, param) for v in value)
            return f"({items},)" if isinstance(value, tuple) and len(value) == 1 else \
                (f"({items})" if isinstance(value, tuple) else f"[{items}]")
        if type(value) is not int or value < 2:
            return repr(value)
        return self.names.setdefault(value, f"size_{value}")

    def block(self) -> str:
        """Return the constant assignments, in order of first use."""
        return "".join(f"{name} = {value}\n" for value, name in self.names.items())


def tensor_expr(desc: dict[str, Any], consts: Constants) -> str:
    """Return a ``torch`` expression drawing a random tensor like ``desc`` (shape, dtype, range)."""
    shape = ", ".join(consts.ref(d) for d in desc["shape"])
    shape = f"({shape},)" if len(desc["shape"]) == 1 else f"({shape})"
    dtype = desc["dtype"]
    if dtype == "bool":
        return f"torch.randint(0, 2, {shape}).bool()"
    if dtype.startswith(("int", "uint")):
        low, high = desc.get("low", 0), desc.get("high", 1)
        return f"torch.randint({low}, {high + 1}, {shape}, dtype=torch.{dtype})"
    draw = "torch.rand" if desc.get("nonneg") else "torch.randn"
    suffix = "" if dtype == "float32" else f", dtype=torch.{dtype}"
    return f"{draw}({shape}{suffix})"


def spec_task_source(spec: dict[str, Any], fused_source: str) -> str:
    """Return a KernelBench-format task file for one subgraph spec (``Model`` = its class; ``FusedModel``,
    which holds the subgraphs, left out)."""
    consts = Constants()
    args = ast.literal_eval(spec["init_args_py"])
    names = list(spec.get("init_names") or [])
    init = [consts.ref(v, names[i] if i < len(names) else "") for i, v in enumerate(args)]
    inputs = [tensor_expr(d, consts) if d["kind"] == "tensor" else d["py"] for d in spec["inputs"]]
    return without_repeated_imports(
        f"{HEADER}\n{statements(fused_core(fused_source), drop=('FusedModel',))}\n\n"
        f"# --- subgraph {spec['id']}: {spec['class_name']}, recorded from a forward of FusedModel ---\n"
        f"Model = {spec['class_name']}\n\n{consts.block()}\n\n"
        f"def get_inputs():\n    return [{', '.join(inputs)}]\n\n\n"
        f"def get_init_inputs():\n    return [{', '.join(init)}]\n")

