"""Find KernelBench-format task files and read or rewrite their size constants, by AST only.

A task file defines a top-level ``Model`` (class or assignment) and the
functions ``get_inputs`` and ``get_init_inputs``. Nothing here imports or runs
a task file: discovery and constant rewriting parse the source only.
Task files are executed only in child processes (``child.exec_file``).

Size constants are top-level assignments whose value is an integer expression
made of literals (``batch_size = 16``, ``M = 1024 * 2``, ``n: int = 4``), also
through chained (``height = width = 128``) and tuple-unpacking targets
(``depth, height, width = (16, 32, 32)``). An integer inside a top-level tuple
or list literal is reported as ``name[i]`` (``input_shape[0]`` in
``input_shape = (32768,)``). Booleans are never size constants.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LEVEL_DIR = re.compile(r"level\d+")
_INT_OPS: dict[type, Any] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}


@dataclass(frozen=True)
class TaskFile:
    """One task file found on disk, with the packages it imports that are not installed."""

    path: Path
    level: str
    name: str
    id: str
    missing: tuple[str, ...] = ()


def is_task_source(source: str) -> bool:
    """Return whether ``source`` defines top-level ``Model``, ``get_inputs`` and ``get_init_inputs``."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return _is_task_tree(tree)


def _is_task_tree(tree: ast.Module) -> bool:
    """Return whether a parsed module binds the three names a task needs at top level."""
    return {"Model", "get_inputs", "get_init_inputs"} <= _top_level_names(tree)


def _top_level_names(tree: ast.Module) -> set[str]:
    """Return the names bound by top-level defs, classes, assignments and imports."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def discover_tasks(paths: Iterable[Path]) -> list[TaskFile]:
    """Return the task files under ``paths`` (files or directories), in natural order, no duplicates."""
    seen: set[Path] = set()
    found: list[TaskFile] = []
    for path in paths:
        for candidate in _python_files(Path(path)):
            resolved = candidate.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            task = _read_task(candidate)
            if task is not None:
                found.append(task)
    return found


def _python_files(path: Path) -> list[Path]:
    """Return ``path`` itself or the task-candidate ``.py`` files below it, naturally sorted."""
    if path.is_file():
        return [path] if path.suffix == ".py" else []
    if not path.is_dir():
        return []
    files = [p for p in path.rglob("*.py") if _wanted(p.relative_to(path))]
    return sorted(files, key=lambda p: natural_key(str(p.relative_to(path))))


def _wanted(relative: Path) -> bool:
    """Return whether a file below a searched directory may be a task file."""
    if any(part.startswith(".") or part == "__pycache__" for part in relative.parts[:-1]):
        return False
    name = relative.name
    return not (name.startswith(".") or name == "conftest.py" or name.startswith("test_"))


def natural_key(text: str) -> list[Any]:
    """Return a sort key that orders ``2_x`` before ``10_x``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def _read_task(path: Path) -> TaskFile | None:
    """Return the ``TaskFile`` for ``path``, or ``None`` when it is unreadable or not a task."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    if not _is_task_tree(tree):
        return None
    level = task_level(path)
    return TaskFile(path, level, path.stem, f"{level}/{path.stem}", _missing_packages(tree))


TASK_NAMES = ("Model", "get_inputs", "get_init_inputs")
_LOOKS_LIKE_TASK = re.compile(r"^(class\s+Model\b|def\s+get_inputs\b|def\s+get_init_inputs\b)", re.M)


def task_problem(path: Path) -> str | None:
    """Return in one line why ``path`` is not a usable task file (empty, syntax, missing names), else None."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read task file {path}: {exc}"
    if not source.strip():
        return f"task file {path} is empty (a task defines {', '.join(TASK_NAMES)})"
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        return f"task file {path}{f':{line}' if line else ''}: syntax error: {getattr(exc, 'msg', exc)}"
    missing = [n for n in TASK_NAMES if n not in _top_level_names(tree)]
    if missing:
        return f"task file {path} defines no {', '.join(missing)} (a task defines {', '.join(TASK_NAMES)})"
    return None


def looks_like_task(path: Path) -> bool:
    """Whether a file means to be a task (defines ``Model``, ``get_inputs`` or ``get_init_inputs``)."""
    try:
        return bool(_LOOKS_LIKE_TASK.search(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return False


def task_level(path: Path) -> str:
    """Return the nearest ancestor directory named like ``level<digits>``, else the parent's name."""
    for parent in path.parents:
        if _LEVEL_DIR.fullmatch(parent.name):
            return parent.name
    return path.parent.name


def _missing_packages(tree: ast.Module) -> tuple[str, ...]:
    """Return the top-level packages imported anywhere in ``tree`` that cannot be found."""
    roots: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.extend(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.append(node.module.split(".")[0])
    return tuple(name for name in dict.fromkeys(roots) if not _installed(name))


def cannot_run_here(source: str) -> str | None:
    """Return why a task cannot run on this machine (a package it imports is missing), else ``None``."""
    try:
        missing = _missing_packages(ast.parse(source))
    except SyntaxError:
        return None
    if not missing:
        return None
    names = ", ".join(missing)
    hub = "; it also downloads pretrained models from the Hugging Face hub (from_pretrained), which needs " \
          "network access" if HUB_CALL.search(source) else ""
    return f"cannot run here: the task imports {names}, not installed on this machine (pip install {names}; " \
           f"pip install -e '.[kernelbench]' has what KernelBench's level 1-3 tasks import){hub}"


HUB_CALL = re.compile(r"\.from_pretrained\s*\(")


def _installed(name: str) -> bool:
    """Return whether a top-level module can be imported, without importing it."""
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# --- size constants ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Binding:
    """One name bound to one integer expression node of a top-level statement."""

    key: str
    value: int
    node: ast.expr
    stmt: ast.stmt


def int_value(node: ast.expr) -> int | None:
    """Return the value of an integer expression made only of literals, else ``None``."""
    if isinstance(node, ast.Constant):
        value = node.value
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = int_value(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.BinOp) and type(node.op) in _INT_OPS:
        return _int_binop(node)
    return None


def _int_binop(node: ast.BinOp) -> int | None:
    """Return the value of a literal integer binary operation, refusing huge or invalid ones."""
    left, right = int_value(node.left), int_value(node.right)
    if left is None or right is None:
        return None
    if isinstance(node.op, ast.Pow) and not 0 <= right <= 64:
        return None
    if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and right == 0:
        return None
    result = _INT_OPS[type(node.op)](left, right)
    return result if abs(result) < 2**63 else None


def _bindings(tree: ast.Module) -> Iterator[_Binding]:
    """Yield every size-constant binding of the module's top-level statements."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            yield from _assign_bindings(stmt, stmt.targets, stmt.value)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and stmt.simple:
            yield from _assign_bindings(stmt, [stmt.target], stmt.value)


def _assign_bindings(stmt: ast.stmt, targets: list[ast.expr], value: ast.expr) -> Iterator[_Binding]:
    """Yield the bindings of one assignment; sequences shared by chained targets are skipped."""
    plain = [t for t in targets if isinstance(t, ast.Name)]
    number = int_value(value)
    if number is not None:
        yield from (_Binding(t.id, number, value, stmt) for t in plain)
    elif isinstance(value, (ast.Tuple, ast.List)) and len(targets) == 1:
        target = targets[0]
        if isinstance(target, ast.Name):
            yield from _element_bindings(stmt, target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)) and len(target.elts) == len(value.elts):
            yield from _unpack_bindings(stmt, target, value)


def _element_bindings(stmt: ast.stmt, name: str, value: ast.Tuple | ast.List) -> Iterator[_Binding]:
    """Yield ``name[i]`` bindings for the integer elements of a tuple or list literal."""
    for index, element in enumerate(value.elts):
        number = int_value(element)
        if number is not None:
            yield _Binding(f"{name}[{index}]", number, element, stmt)


def _unpack_bindings(stmt: ast.stmt, target: ast.Tuple | ast.List, value: ast.Tuple | ast.List) -> Iterator[_Binding]:
    """Yield the bindings of ``a, b = (1, 2)`` for each name paired with an integer expression."""
    for name, element in zip(target.elts, value.elts, strict=True):
        number = int_value(element)
        if isinstance(name, ast.Name) and number is not None:
            yield _Binding(name.id, number, element, stmt)


def size_constants(source: str) -> dict[str, int]:
    """Return the top-level integer size constants of a task source (last assignment wins)."""
    return {b.key: b.value for b in _bindings(ast.parse(source))}


def rewrite_constants(source: str, overrides: Mapping[str, int]) -> str:
    """Return ``source`` with the named size constants set to new values; unknown names raise ``ValueError``."""
    bindings = list(_bindings(ast.parse(source)))
    unknown = sorted(set(overrides) - {b.key for b in bindings})
    if unknown:
        raise ValueError(f"not size constants of this task: {', '.join(unknown)}")
    for key, value in overrides.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"size constant {key} must be an int, got {value!r}")
    edits = _edits(bindings, overrides)
    return _apply_edits(source, edits)


def follow_plan(candidate_source: str, overrides: Mapping[str, int]) -> str:
    """Return a candidate's source with its own size constants that share a name with the plan's set as the plan sets them.

    A candidate that copies the task's ``batch_size = 16`` and reads it (state built in
    ``__init__``) then sees the sizes its inputs have; other names are left alone.
    """
    try:
        mine = size_constants(candidate_source)
    except (SyntaxError, ValueError):
        return candidate_source  # the candidate's own compile error is reported when it runs
    shared = {k: v for k, v in overrides.items() if k in mine}
    return rewrite_constants(candidate_source, shared) if shared else candidate_source


def _edits(bindings: list[_Binding], overrides: Mapping[str, int]) -> list[tuple[ast.AST, str]]:
    """Return (node, new text) replacements; a chained statement whose names now differ is split."""
    by_node: dict[int, list[_Binding]] = {}
    for binding in bindings:
        by_node.setdefault(id(binding.node), []).append(binding)
    edits: list[tuple[ast.AST, str]] = []
    for group in by_node.values():
        wanted = {b.key: overrides.get(b.key, b.value) for b in group}
        if len(set(wanted.values())) == 1:
            if any(b.key in overrides for b in group):
                edits.append((group[0].node, _int_text(next(iter(wanted.values())))))
        else:
            edits.append((group[0].stmt, "; ".join(f"{k} = {_int_text(v)}" for k, v in wanted.items())))
    return edits


def _int_text(value: int) -> str:
    """Return source text for an integer literal (negative values parenthesised)."""
    return f"({value})" if value < 0 else str(value)


def _apply_edits(source: str, edits: list[tuple[ast.AST, str]]) -> str:
    """Return ``source`` with each node's text replaced (AST offsets are UTF-8 byte columns)."""
    data = source.encode("utf-8")
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    spans = []
    for node, text in edits:
        begin = starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]
        end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]
        spans.append((begin, end, text.encode("utf-8")))
    for begin, end, new in sorted(spans, reverse=True):
        data = data[:begin] + new + data[end:]
    return data.decode("utf-8")
