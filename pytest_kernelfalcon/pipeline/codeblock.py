"""Pull the one fenced python block out of an LLM answer; normalise and hash code."""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass

FENCE = re.compile(r"^[ \t]*```[ \t]*(?P<lang>[A-Za-z0-9_+-]*)[ \t]*\n(?P<body>.*?)^[ \t]*```[ \t]*$",
                   re.DOTALL | re.MULTILINE)
PYTHON_TAGS = ("python", "py", "python3")


class FormatError(ValueError):
    """The answer does not hold exactly one usable python block; the message goes back as feedback."""


@dataclass(frozen=True)
class CodeBlock:
    """The code of an answer and its hash (of the normalised source)."""

    code: str
    digest: str


def extract_code(text: str, required: tuple[str, ...] = ()) -> CodeBlock:
    """Return the answer's single python block, parsed and holding the ``required`` top-level names."""
    code = _single_block(text)
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        raise FormatError(f"the python block does not parse: {err.msg} (line {err.lineno})") from err
    missing = [name for name in required if name not in top_level_names(tree)]
    if missing:
        raise FormatError(f"the python block does not define {', '.join(missing)} at top level")
    return CodeBlock(code=code, digest=code_digest(code))


def _single_block(text: str) -> str:
    blocks = [m for m in FENCE.finditer(text) if m.group("lang").lower() in PYTHON_TAGS]
    if not blocks:
        untagged = [m for m in FENCE.finditer(text) if not m.group("lang")]
        if len(untagged) == 1:
            return untagged[0].group("body")
        raise FormatError("the answer has no ```python fenced code block")
    if len(blocks) > 1:
        raise FormatError(f"the answer has {len(blocks)} ```python blocks; exactly one is wanted")
    return blocks[0].group("body")


def top_level_names(tree: ast.Module) -> set[str]:
    """Return the names a module binds at top level (defs, classes, assignments, imports)."""
    names: set[str] = set()
    for node in tree.body:
        names.update(bound_names(node))
    return names


def bound_names(node: ast.stmt) -> list[str]:
    """Return the names one top-level statement binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def normalise(code: str) -> str:
    """Return ``code`` in canonical form (comments and layout dropped; text form if it does not parse)."""
    try:
        return ast.unparse(ast.parse(code))
    except SyntaxError:
        return "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())


def code_digest(code: str) -> str:
    """Return the sha256 hex digest of the normalised ``code``."""
    return hashlib.sha256(normalise(code).encode("utf-8")).hexdigest()
