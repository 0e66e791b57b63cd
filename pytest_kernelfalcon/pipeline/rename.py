"""AST renaming of a kernel file's top-level names (``sgN_`` prefix) so kernels never collide."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from pytest_kernelfalcon.pipeline.codeblock import bound_names

DROPPED = ("get_inputs", "get_init_inputs", "Model")


@dataclass(frozen=True)
class RenamedKernel:
    """A kernel file split into its import lines and its renamed body."""

    imports: tuple[str, ...]
    body: str
    renamed: tuple[str, ...]


class _Prefixer(ast.NodeTransformer):
    """Renames references to the given top-level names, except where a function argument shadows one."""

    def __init__(self, names: set[str], prefix: str) -> None:
        self.names, self.prefix = names, prefix
        self.shadow: list[set[str]] = [set()]

    def _new(self, name: str) -> str:
        return self.prefix + name if name in self.names and name not in self.shadow[-1] else name

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self._new(node.id)
        return node

    def visit_Global(self, node: ast.Global) -> ast.Global:
        node.names = [self._new(n) for n in node.names]
        return node

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> ast.AST:
        args = node.args
        params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        self.shadow.append(self.shadow[-1] | params)
        self.generic_visit(node)
        self.shadow.pop()
        return node

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function
    visit_Lambda = _visit_function


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def prefix_kernel(source: str, prefix: str) -> RenamedKernel:
    """Return ``source`` with every top-level name (not imports) prefixed by ``prefix``."""
    tree = ast.parse(source)
    imports = tuple(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))
    body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))
            and not _is_main_guard(n) and not set(bound_names(n)) & set(DROPPED)]
    names = {name for node in body for name in bound_names(node)}
    renamer = _Prefixer(names, prefix)
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.name = prefix + node.name
        renamer.visit(node)
    module = ast.Module(body=body, type_ignores=[])
    return RenamedKernel(imports, ast.unparse(ast.fix_missing_locations(module)), tuple(sorted(names)))
