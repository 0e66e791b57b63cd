"""What the installed Triton has: the names of its modules (read from them, never listed here), the nearest
ones to a name it lacks, and how common ops that Triton spells otherwise are written in it.

``COMMON_OPS`` holds expressions only; a test runs each of them in a real kernel against torch, so an
entry naming something the installed Triton lacks fails there, not in a user's feedback.
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass

# op name as a model writes it (tl.relu, F.gelu, torch.sigmoid) -> the Triton expression for it, of x
COMMON_OPS: dict[str, str] = {
    "relu": "tl.maximum(x, 0.0)",
    "sigmoid": "1.0 / (1.0 + tl.exp(-x))",
    "gelu": "0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476))",
    "silu": "x / (1.0 + tl.exp(-x))",
    "tanh": "2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0",
    "softplus": "tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(x)))",
    "leaky_relu": "tl.where(x >= 0, x, x * negative_slope)",
}
MISSING = re.compile(r"module '(triton(?:\.\w+)*)' has no attribute '(\w+)'")
ALIASES = {"triton.language": "tl"}


@dataclass(frozen=True)
class MissingName:
    """A name a candidate used that the installed Triton module does not have."""

    module: str
    name: str


def missing_names(detail: str) -> list[MissingName]:
    """Return each ``module 'triton...' has no attribute 'x'`` the error text ``detail`` names, once."""
    found = dict.fromkeys(MissingName(m, n) for m, n in MISSING.findall(detail))
    return list(found)


def public_names(module: str) -> list[str]:
    """Return the public names of the installed Triton module ``module`` (empty if it is not importable)."""
    if module != "triton" and not module.startswith("triton."):
        return []
    try:
        loaded = importlib.import_module(module)
    except ImportError:
        return []
    return sorted(n for n in dir(loaded) if not n.startswith("_"))


def nearest(name: str, names: list[str], n: int = 4) -> list[str]:
    """Return up to ``n`` of ``names`` closest to ``name`` (spelling first, then names that contain it)."""
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    close += [other for other in names if name in other and other not in close]
    return close[:n]


def installed_version() -> str:
    """Return the installed Triton's version (``?`` when it cannot be read)."""
    try:
        return str(importlib.import_module("triton").__version__)
    except (ImportError, AttributeError):
        return "?"


def missing_hint(missing: MissingName) -> str:
    """Return the lines that say ``missing`` is not in the installed Triton, what is near it, what to write."""
    prefix = ALIASES.get(missing.module, missing.module)
    names = public_names(missing.module)
    lines = [f"`{prefix}.{missing.name}` does not exist in the installed Triton ({installed_version()}, "
             f"module `{missing.module}`)."]
    close = nearest(missing.name, names)
    if close:
        lines.append("Nearest names that exist there: " + ", ".join(f"`{prefix}.{c}`" for c in close) + ".")
    expression = COMMON_OPS.get(missing.name)
    if expression is not None:
        lines.append(f"For {missing.name} of a block `x`, write `{expression}`.")
    return "\n".join(lines)


def common_ops_line() -> str:
    """Return the prompt's line on ops that Triton spells otherwise (from ``COMMON_OPS``)."""
    return "; ".join(f"{name}: `{expr}`" for name, expr in COMMON_OPS.items())
