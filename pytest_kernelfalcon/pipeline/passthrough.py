"""Fuse only where it helps: whether a task's ``forward`` is already one subgraph (AST only), and the
fused file that keeps the task's own module as that subgraph, its constructor arguments carried as they are.

A forward is one subgraph when it is straight-line code (no branches, loops, comprehensions, nested
functions, ``with`` or ``try``), the task defines no other module class, and it holds at most one
contraction (a matmul, a convolution, a linear layer or any call of one of its submodules) and no
reduction beside a contraction: one op, or a chain one kernel can take (elementwise and reduction ops,
or one contraction with an elementwise epilogue).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from pytest_kernelfalcon.pipeline.codeblock import bound_names
from pytest_kernelfalcon.pipeline.sources import HEADER, without_repeated_imports

BODY_CLASS = "TaskModule"
CONTRACTIONS = re.compile(r"^(matmul|mm|bmm|addmm|baddbmm|addbmm|einsum|linear|bilinear|tensordot|"
                          r"conv\w*|conv_transpose\w*|unfold|fold|embedding\w*|lstm|gru|rnn\w*|"
                          r"scaled_dot_product_attention|multi_head_attention_forward)$")
REDUCTIONS = re.compile(r"^(sum|mean|max|min|amax|amin|prod|norm|softmax|log_softmax|logsumexp|var|std|"
                        r"argmax|argmin|cumsum|cumprod|layer_norm|group_norm|batch_norm|instance_norm|"
                        r"normalize|topk|sort)$")
BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.Match,
            ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda, ast.FunctionDef,
            ast.AsyncFunctionDef, ast.IfExp, ast.Yield, ast.YieldFrom, ast.Await)
VIEWS = frozenset({"view", "reshape", "contiguous", "size", "dim", "numel", "flatten", "unsqueeze",
                   "squeeze", "permute", "transpose", "t", "expand", "expand_as", "view_as",
                   "reshape_as", "float", "to", "type_as", "detach"})


@dataclass(frozen=True)
class FusePlan:
    """Whether the fuse call is skipped (the task's module is already one subgraph), and why."""

    skip: bool
    reason: str


def fuse_plan(task_source: str) -> FusePlan:
    """Return whether ``task_source``'s ``Model.forward`` is one subgraph (skip the fuse call) and why."""
    tree = ast.parse(task_source)
    model = _model_class(tree)
    if model is None:
        return FusePlan(False, "the task defines no class Model")
    others = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and n is not model]
    if others:
        return FusePlan(False, f"the task defines other classes ({', '.join(others)})")
    forward = next((n for n in model.body if isinstance(n, ast.FunctionDef) and n.name == "forward"), None)
    if forward is None:
        return FusePlan(False, "Model defines no forward")
    return _plan_of(forward)


def _model_class(tree: ast.Module) -> ast.ClassDef | None:
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)


def _plan_of(forward: ast.FunctionDef) -> FusePlan:
    for stmt in forward.body:
        for node in ast.walk(stmt):
            if isinstance(node, BRANCHES):
                return FusePlan(False, f"forward has {type(node).__name__} at line {node.lineno}: control "
                                       "flow or a nested scope (the fuse stage splits it)")
    ops = [op for stmt in forward.body for op in _ops(stmt)]
    heavy = [op for op in ops if _is_contraction(op)]
    if len(heavy) > 1:
        return FusePlan(False, f"forward has {len(heavy)} contractions ({', '.join(heavy)}): one subgraph each")
    reductions = [op for op in ops if REDUCTIONS.match(op)]
    if heavy and reductions:
        return FusePlan(False, f"forward has a contraction ({heavy[0]}) and a reduction ({reductions[0]}): "
                               "one subgraph each")
    if not ops:
        return FusePlan(False, "forward computes nothing the pipeline can see")
    what = f"one op ({ops[0]})" if len(ops) == 1 else f"a chain of {len(ops)} ops ({', '.join(ops)})"
    return FusePlan(True, f"forward is straight-line code, {what}: already one subgraph")


def _ops(stmt: ast.stmt) -> list[str]:
    """Return the compute ops of one statement (calls other than views, and arithmetic), in source order."""
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(stmt):
        if isinstance(node, (ast.BinOp, ast.Call)):
            name = _op_name(node)
            if name is not None:
                found.append((node.lineno, node.col_offset, name))
    return [name for _, _, name in sorted(found)]


def _op_name(node: ast.BinOp | ast.Call) -> str | None:
    if isinstance(node, ast.BinOp):
        return "@" if isinstance(node.op, ast.MatMult) else type(node.op).__name__.lower()
    func = node.func
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id == "self":
            return f"self.{func.attr}"
        return None if func.attr in VIEWS else func.attr
    return func.id if isinstance(func, ast.Name) else "call"


def _is_contraction(op: str) -> bool:
    return op == "@" or op.startswith("self.") or bool(CONTRACTIONS.match(op))


def passthrough_fused(task_source: str) -> str:
    """Return the fused file of a one-subgraph task: the task in its own order with ``Model`` renamed to
    the subgraph class, then ``FusedModel``, which builds it from its own constructor arguments untouched."""
    tree = ast.parse(task_source)
    model = _model_class(tree)
    if model is None:
        raise ValueError("the task defines no class Model")
    taken = {n for node in tree.body for n in bound_names(node)}
    body = BODY_CLASS if BODY_CLASS not in taken else f"{BODY_CLASS}_{len(taken)}"
    renamed = _rename_model(task_source, model, body)
    return without_repeated_imports(f"{HEADER}\n{renamed.rstrip()}\n\n\n{_fused_model(body)}")


def _rename_model(source: str, model: ast.ClassDef, name: str) -> str:
    """Return ``source`` with the class ``Model`` and every ``Model`` name inside it renamed (text kept)."""
    lines = [line.encode("utf-8") for line in source.splitlines(keepends=True)]  # AST offsets are bytes
    spots = [(n.lineno, n.col_offset, n.end_col_offset or n.col_offset) for n in ast.walk(model)
             if isinstance(n, ast.Name) and n.id == "Model"]
    head = re.search(rb"\bclass\s+(Model)\b", lines[model.lineno - 1])
    if head is not None:
        spots.append((model.lineno, head.start(1), head.end(1)))
    for lineno, start, end in sorted(spots, reverse=True):
        text = lines[lineno - 1]
        lines[lineno - 1] = text[:start] + name.encode("utf-8") + text[end:]
    return b"".join(lines).decode("utf-8")


def _fused_model(body: str) -> str:
    return (f'class FusedModel(nn.Module):\n'
            f'    """The task\'s module as one subgraph (no fuse call: its forward is already one subgraph); '
            f'the\n    constructor arguments are passed on untouched."""\n\n'
            f'    def __init__(self, *args, **kwargs):\n'
            f'        super().__init__()\n'
            f'        self.body = {body}(*args, **kwargs)\n\n'
            f'    def forward(self, *inputs):\n'
            f'        return self.body(*inputs)\n')
