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


TRUNCATED = ("length", "max_tokens")  # stop reasons of an answer cut off at the output token limit


def extract_code(text: str, required: tuple[str, ...] = (), stop_reason: str | None = None) -> CodeBlock:
    """Return the answer's python block, parsed and holding the ``required`` top-level names.

    Several python blocks are fine when exactly one of them defines every ``required`` name
    (small models add a usage example); an answer without any fence is taken as code when it
    parses and defines them. ``stop_reason`` is the provider's: an answer cut off at the token
    limit inside its block is named as such, so the feedback asks for shorter code.
    """
    code = _pick_block(text, required, stop_reason)
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        raise FormatError(f"the python block does not parse: {err.msg} (line {err.lineno})") from err
    missing = [name for name in required if name not in top_level_names(tree)]
    if missing:
        raise FormatError(f"the python block does not define {', '.join(missing)} at top level")
    return CodeBlock(code=code, digest=code_digest(code))


def _pick_block(text: str, required: tuple[str, ...], stop_reason: str | None) -> str:
    blocks = [m.group("body") for m in FENCE.finditer(text) if m.group("lang").lower() in PYTHON_TAGS]
    if not blocks:
        blocks = [m.group("body") for m in FENCE.finditer(text) if not m.group("lang")]
    if len(blocks) == 1:
        return blocks[0]
    if len(blocks) > 1:
        defining = [b for b in blocks if required and _defines(b, required)]
        if len(defining) == 1:
            return defining[0]
        raise FormatError(f"the answer has {len(blocks)} ```python blocks; exactly one is wanted")
    if stop_reason in TRUNCATED and "```" in text:
        raise FormatError("the answer was cut off at the output token limit before its code block ended; "
                          "write shorter code (no comments, no explanations, no example usage)")
    if "```" not in text and required and _defines(text, required):
        return text
    raise FormatError("the answer has no ```python fenced code block")


def _defines(code: str, required: tuple[str, ...]) -> bool:
    try:
        return set(required) <= top_level_names(ast.parse(code))
    except SyntaxError:
        return False


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
