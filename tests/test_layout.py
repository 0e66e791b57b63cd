"""The package layout, read from its imports (``ast``; imports inside functions count).

Rules (docs/ARCHITECTURE.md, "Layout rules"):
- no import cycles among the package's modules (module-level imports);
- ``child/`` imports only ``child/`` and ``core/``, and no other module imports ``child/``
  (the parent starts it with ``python -m``);
- ``core/`` imports nothing of the package outside ``core/``;
- arrows point down: cli -> plugin -> summary -> session -> config -> pipeline -> checker ->
  executor -> core; ``llm/`` and ``reports/`` are leaves (they import only themselves and ``core/``).
The package face ``pytest_kernelfalcon/__init__.py`` (lazy names, ``__version__``) may be imported by anyone.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import pytest_kernelfalcon

# the layer a module belongs to (its first name below the package) -> its height; imports point down
RANKS = {"cli": 9, "plugin": 8, "summary": 7, "session": 6, "config": 5, "pipeline": 4, "checker": 3,
         "executor": 2, "llm": 1, "reports": 1, "core": 0}
LEAVES = ("llm", "reports", "core")  # import nothing of the package but themselves and core
APART = "child"  # the untrusted side: imports child and core only; imported by nobody


@dataclass(frozen=True)
class Edge:
    """One import of a package module by another."""

    source: str
    target: str
    line: int
    top: bool  # at module level (not inside a function, not under ``if TYPE_CHECKING``)


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Return ``{dotted module name: file}`` for every module of ``package`` under ``root``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _named(node: ast.AST, here: str) -> list[str]:
    """The dotted names an import node reaches (``from a import b`` reaches ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parts = here.split(".")[: len(here.split(".")) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _walk(node: ast.AST, top: bool) -> list[tuple[ast.AST, bool]]:
    """Every node below ``node`` with whether it runs at import time."""
    out = []
    for child in ast.iter_child_nodes(node):
        deferred = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        typing_only = isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
        out.append((child, top))
        out += _walk(child, top and not deferred and not typing_only)
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """Return the imports of package modules in one module's file."""
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = []
    for node, top in _walk(ast.parse(path.read_text()), True):
        for dotted in _named(node, here):
            while dotted and dotted not in modules:
                dotted = dotted.rpartition(".")[0]
            own_init = path.name == "__init__.py" and dotted.startswith(name + ".")
            if dotted and dotted != name and not own_init:
                edges.append(Edge(name, dotted, getattr(node, "lineno", 0), top))
    return edges


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Return the strongly connected groups (more than one module) of the graph ``edges`` draws."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def layer(name: str, package: str) -> str:
    """The layer of a module: its first name below the package ('' for the package face)."""
    return name[len(package) + 1:].split(".")[0] if name != package else ""


def arrow_problem(edge: Edge, package: str) -> str | None:
    """Why one import breaks a layout rule, or None."""
    src, dst = layer(edge.source, package), layer(edge.target, package)
    if src == dst or dst == "":
        return None
    if APART in (src, dst):
        return None if src == APART and dst == "core" else f"{APART}/ is apart: only child -> core"
    if src in LEAVES and dst != "core":
        return f"{src}/ is a leaf: it imports only itself and core/"
    if src not in RANKS or dst not in RANKS:
        return f"layer {src or dst!r} has no place in the layout rules"
    return f"arrow points up ({src} -> {dst})" if RANKS[src] <= RANKS[dst] else None


def layout_problems(root: Path, package: str) -> list[str]:
    """Return one line per broken layout rule of ``package`` (a folder under ``root``)."""
    modules = modules_of(root, package)
    edges = [e for name, path in modules.items() for e in imports_of(name, path, modules)]
    found = [f"import cycle: {' <-> '.join(group)}" for group in cycles([e for e in edges if e.top])]
    for edge in edges:
        why = arrow_problem(edge, package)
        if why:
            found.append(f"{edge.source}:{edge.line} imports {edge.target}: {why}")
    return found


def test_package_keeps_the_layout_rules() -> None:
    root = Path(pytest_kernelfalcon.__file__).resolve().parents[1]
    assert len(modules_of(root, "pytest_kernelfalcon")) > 50
    assert layout_problems(root, "pytest_kernelfalcon") == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    """Write a synthetic package ``kf`` with the layers of the real one plus ``files``."""
    base = {"__init__.py": "", "core/__init__.py": "", "core/records.py": "X = 1\n",
            "child/__init__.py": "", "child/jobs.py": "from kf.core.records import X\n",
            "checker/__init__.py": "", "checker/judge.py": "from kf.executor import run\n",
            "executor/__init__.py": "from kf.core import records\nrun = 1\n",
            "session.py": "from kf.checker import judge\n", "reports/__init__.py": "",
            "reports/report.py": "from kf import core\n"}
    for rel, text in {**base, **files}.items():
        (tmp_path / "kf" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "kf" / rel).write_text(textwrap.dedent(text))
    return tmp_path


def test_synthetic_package_without_violations_is_clean(tmp_path: Path) -> None:
    assert layout_problems(_package(tmp_path, {}), "kf") == []


@pytest.mark.parametrize(("files", "expected"), [
    ({"child/jobs.py": "def run():\n    from kf.checker import judge\n"},
     "kf.child.jobs:2 imports kf.checker.judge: child/ is apart"),
    ({"child/jobs.py": "from kf import session\n"}, "kf.child.jobs:1 imports kf.session: child/ is apart"),
    ({"checker/judge.py": "from kf.child.jobs import run\n"}, "kf.checker.judge:1 imports kf.child.jobs: child/"),
    ({"core/records.py": "def f():\n    from kf.executor import run\n"},
     "kf.core.records:2 imports kf.executor: core/ is a leaf"),
    ({"executor/__init__.py": "run = 1\ndef f():\n    from kf.checker import judge\n"},
     "kf.executor:3 imports kf.checker.judge: arrow points up (executor -> checker)"),
    ({"reports/report.py": "from kf.checker import judge\n"}, "kf.reports.report:1 imports kf.checker.judge: reports/"),
    ({"executor/__init__.py": "from kf.checker.judge import x\nrun = 1\n"},
     "import cycle: kf.checker.judge <-> kf.executor"),
])
def test_a_violating_import_is_found(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = layout_problems(_package(tmp_path, files), "kf")
    assert any(line.startswith(expected) for line in found), found


@pytest.mark.parametrize("deferred", ["def f():\n    from kf.core.other import Y\n",
                                      "if TYPE_CHECKING:\n    from kf.core.other import Y\n"])
def test_deferred_imports_make_no_cycle(tmp_path: Path, deferred: str) -> None:
    files = {"core/records.py": "X = 1\n" + deferred, "core/other.py": "from kf.core.records import X\nY = 2\n"}
    assert layout_problems(_package(tmp_path, files), "kf") == []
