"""Feedback that names the fix: a verdict's detail made into what the LLM reads after a failed round.

The verdict itself is saved unchanged; only the feedback text says more: a name the installed Triton
does not have is named as such, with the nearest names that exist and the expression for common ops
(``triton_names``); the line an error points at (``candidate.py:N``) is quoted; a kernel called like a
function (no launch grid) is named with its line; a numeric mismatch is laid out in a few lines (where,
got, expected, how much, the plan that was run).
"""

from __future__ import annotations

import ast
import re

from pytest_kernelfalcon.pipeline.triton_names import missing_hint, missing_names

WHERE = re.compile(r"\bcandidate\.py:(\d+)")
MISMATCH = re.compile(r"^(?P<plan>.*?): output (?P<output>\d+) \(shape (?P<shape>\[[^\]]*\])\): "
                      r"first mismatch at index (?P<index>\([^)]*\)): got (?P<got>[^,]+), expected (?P<want>[^;]+); "
                      r"(?P<rest>.*)$", re.DOTALL)


def feedback_detail(category: str, detail: str, code: str = "") -> str:
    """Return ``detail`` as the LLM should read it for a failure of ``category`` of ``code``."""
    if category == "numeric_mismatch":
        return mismatch_lines(detail)
    hints = [missing_hint(m) for m in missing_names(detail)]
    if category in ("compile_error", "runtime_error"):
        quoted = quoted_line(detail, code)
        hints += [quoted] if quoted else []
        hints += [launch_hint(name, line) for name, line in unlaunched_kernels(code)]
    return "\n".join([detail, *hints]) if hints else detail


def quoted_line(detail: str, code: str) -> str:
    """Return the line of ``code`` that the error ``detail`` points at (``candidate.py:N``), quoted; or ""."""
    found = WHERE.search(detail)
    lines = code.splitlines()
    if found is None or not 1 <= int(found[1]) <= len(lines) or not lines[int(found[1]) - 1].strip():
        return ""
    return f"Line {found[1]} of your file is: `{lines[int(found[1]) - 1].strip()}`"


def jit_functions(tree: ast.Module) -> set[str]:
    """Return the names of the module-level functions decorated with ``@triton.jit`` (or ``@jit``)."""
    def is_jit(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return (isinstance(target, ast.Attribute) and target.attr == "jit") or \
            (isinstance(target, ast.Name) and target.id == "jit")

    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and any(map(is_jit, n.decorator_list))}


def unlaunched_kernels(code: str) -> list[tuple[str, int]]:
    """Return ``(kernel, line)`` of each call of a ``@triton.jit`` kernel outside kernels without a grid
    (``kernel(...)`` where ``kernel[grid](...)`` launches it)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    kernels = jit_functions(tree)
    outside = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name in kernels)]
    return sorted({(node.func.id, node.lineno) for top in outside for node in ast.walk(top)
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in kernels})


def launch_hint(kernel: str, line: int) -> str:
    """Return the line that says how to launch ``kernel``, called like a function at ``line``."""
    return (f"Line {line} calls the `@triton.jit` kernel `{kernel}(...)` like a Python function. A kernel is "
            f"launched over a grid and returns nothing: allocate the output first, then "
            f"`{kernel}[(triton.cdiv(n, BLOCK),)](..., BLOCK=BLOCK)`, then return the output.")


def mismatch_lines(detail: str) -> str:
    """Return a numeric mismatch's detail in a few lines (the detail as it is when its form is not known)."""
    found = MISMATCH.match(detail)
    if found is None:
        return detail
    got, want = found["got"].strip(), found["want"].strip()
    return "\n".join([
        f"- where: output {found['output']} (shape {found['shape']}), first wrong element at index "
        f"{found['index']}",
        f"- got {got}, expected {want}",
        f"- how many: {found['rest'].strip()}",
        f"- the plan that was run: {found['plan'].strip()}",
        "Check the formula in your kernel against the module's forward at that element."])
