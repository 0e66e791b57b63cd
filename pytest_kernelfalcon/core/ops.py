"""Aten op names: the base name of a logged op, and which ops a named hybrid policy accepts.

The run-time audit logs ops as the dispatcher names them (``aten.convolution.default``,
``aten._softmax.default``, ``aten.relu_.default``). A hybrid policy (``--allow-torch
convolution,softmax``) names aten ops by their base name; a name accepts its own op, its
in-place form (``relu`` -> ``relu_``) and the aten implementation op that a composite lowers to
(``softmax`` -> ``_softmax``). Names are checked against ``torch.ops.aten``: an unknown one is
a usage error, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable


def op_base_name(name: str) -> str:
    """Return ``relu`` for ``aten::relu``, ``aten.relu.default`` or ``relu`` (other namespaces keep theirs)."""
    name = name.strip()
    for prefix in ("aten::", "aten."):
        if name.startswith(prefix):
            return name[len(prefix):].split(".")[0]
    return name if "::" in name else name.split(".")[0]


def accepted_names(allowed: str) -> frozenset[str]:
    """The base names a policy entry accepts: itself, its in-place form, its ``_`` implementation op."""
    base = op_base_name(allowed)
    return frozenset({base, f"{base}_", f"_{base}", f"_{base}_"})


def is_accepted(op: str, allowed: Iterable[str]) -> bool:
    """Whether a logged op is one the hybrid policy ``allowed`` names."""
    base = op_base_name(op)
    return any(base in accepted_names(name) for name in allowed)


def parse_allowed(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """The policy's op names from ``"convolution, addmm"`` (or a list), base names, in order, each once.

    Raises ``ValueError`` naming an op that ``torch.ops.aten`` does not have.
    """
    if text is None:
        return ()
    items = [item.strip() for item in (text.split(",") if isinstance(text, str) else list(text))]
    unknown = [item for item in items if item and not _is_aten_op(op_base_name(item))]
    if unknown:
        raise ValueError(f"unknown aten op {unknown[0]!r} (a name of torch.ops.aten, e.g. convolution, addmm)")
    return tuple(dict.fromkeys(op_base_name(item) for item in items if item))


def _is_aten_op(name: str) -> bool:
    import torch

    if not name.isidentifier():
        return False
    try:
        return getattr(torch.ops.aten, name) is not None
    except (AttributeError, RuntimeError):
        return False
