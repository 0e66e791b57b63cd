"""Precision policies: ``fp32`` (the default) judges fp32 kernels by fp32 rounding; ``tf32`` accepts TF32-class error.

A TF32 kernel (``tl.dot``'s default on NVIDIA GPUs, cuBLAS or cuDNN with ``allow_tf32``) rounds
its operands to a 10-bit mantissa before multiplying: an error of another class than the
reference's own fp32 rounding, large on large or mixed-scale values. The reference job measures
that class on every trial it runs through files: ``tf32_error`` holds, per output,
max |reference - the same reference with its floating inputs and weights rounded to TF32|.

Under ``tf32`` a trial's tolerance gets ``TF32_FACTOR`` x that error added to its atol (NaN/inf
never pass). Under ``fp32`` a candidate that fails, but would pass every failing trial under
``tf32``, is rejected with a verdict that says it fails only by a TF32-class margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pytest_kernelfalcon.core.verdict import Tolerance

PRECISIONS = ("fp32", "tf32")
TF32_FACTOR = 10.0  # a TF32 kernel may round up to this many times worse than the TF32-rounded reference
_DROPPED_BITS = 13  # fp32 keeps 23 mantissa bits, TF32 10
_HALF = 1 << (_DROPPED_BITS - 1)
_KEEP = -(1 << _DROPPED_BITS)  # as an int32 mask: clears the dropped bits


def tf32_round(x: Any) -> Any:
    """``x`` with each finite fp32 element rounded to TF32 (nearest, ties away, as ``cvt.rna.tf32.f32``);
    any other tensor or value unchanged."""
    import torch

    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        return x
    bits = x.detach().contiguous().view(torch.int32)
    rounded = ((bits + _HALF) & _KEEP).view(torch.float32).reshape(x.shape)
    return torch.where(torch.isfinite(x), rounded, x)


def worst(errors: Sequence[float] | None) -> float | None:
    """The largest finite error of a per-output list (None when there is none)."""
    found = [e for e in errors or () if math.isfinite(e)]
    return max(found) if found else None


def tf32_tolerance(tol: Tolerance, tf32_error: Sequence[float] | None) -> Tolerance | None:
    """``tol`` widened by the TF32-class error measured on this trial; None where it was not measured."""
    largest = worst(tf32_error)
    if largest is None:
        return None
    atol = tol.atol + TF32_FACTOR * largest
    return Tolerance(policy=f"{tol.policy}, tf32: atol {atol:.3g} ({TF32_FACTOR:g}x the reference's own error "
                            f"with TF32-rounded inputs and weights)", atol=atol, rtol=tol.rtol)


def precision_note(max_abs: float, ref_error: Sequence[float] | None, bound: float) -> str:
    """One line: the measured error against the reference's own fp32 error, within the TF32-class bound."""
    own = worst(ref_error)
    ratio = f", {max_abs / own:.3g}x the reference's own fp32 error ({own:.3g})," if own else ""
    return (f"precision: fails only by a TF32-class margin: max abs err {max_abs:.3g}{ratio} is within atol "
            f"{bound:.3g} ({TF32_FACTOR:g}x the reference's own error with TF32-rounded inputs and weights); "
            f"--falcon-precision tf32 (kernelfalcon verify --precision tf32) accepts this class")
