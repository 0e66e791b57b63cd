"""Output comparison for the trusted checker: tolerances, flattening, first-mismatch detail.

Pure functions on tensors and numbers; runs in the trusted parent. Tensors are
compared in float64 in chunks so very large official outputs stay bounded in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_kernelfalcon.core.verdict import Tolerance

CHUNK = 1 << 22
DEVICE_CHUNK = 1 << 25  # on a GPU: fewer, bigger chunks (each costs a few host syncs), ~1.5 GB of temporaries
_TOLERANCES = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 1e-2}


def _chunk_for(value: Any) -> int:
    return DEVICE_CHUNK if getattr(value, "is_cuda", False) else CHUNK


@dataclass(frozen=True)
class Mismatch:
    """Why a candidate's outputs differ from the reference's (one trial)."""

    kind: str  # "count" | "type" | "shape" | "numeric"
    output: int
    detail: str


@dataclass(frozen=True)
class ErrorStats:
    """Element-wise error summary of one candidate tensor against its reference."""

    bad: int
    first_bad: int | None
    max_abs: float
    max_rel: float
    max_ref: float
    nonfinite: int


def tolerance_for(dtype: str) -> Tolerance:
    """Return KernelBench's tolerance policy for a run dtype (fp32 1e-4, fp16/bf16 1e-2)."""
    if dtype not in _TOLERANCES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(_TOLERANCES)}")
    tol = _TOLERANCES[dtype]
    return Tolerance(policy=f"kernelbench-{dtype}", atol=tol, rtol=tol)


def flatten_outputs(value: Any) -> list[Any]:
    """Flatten a forward() result into a list of tensors / numbers / None (tuples and lists recursed)."""
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in flatten_outputs(item)]
    return [value]


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    if _is_tensor(value) or isinstance(value, (bool, int, float)):
        return "value"
    return "unsupported"


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if _is_tensor(value) else ()


def _describe(value: Any) -> str:
    if _is_tensor(value):
        return f"tensor{list(value.shape)}"
    return str(value) if isinstance(value, str) else type(value).__name__


def shape_mismatch(ref: Sequence[Any], cand: Sequence[Any]) -> Mismatch | None:
    """Return the first count/type/shape difference between two flattened outputs, or None.

    Numbers and 0-d tensors are interchangeable; dtypes and strides never matter.
    """
    if len(ref) != len(cand):
        return Mismatch("count", -1, f"expected {len(ref)} output(s), got {len(cand)}")
    for i, (r, c) in enumerate(zip(ref, cand, strict=False)):
        if _kind(r) != _kind(c) or _kind(c) == "unsupported":
            return Mismatch("type", i, f"output {i}: expected {_describe(r)}, got {_describe(c)}")
        if _kind(r) == "value" and _shape(r) != _shape(c):
            return Mismatch("shape", i, f"output {i}: expected shape {list(_shape(r))}, got {list(_shape(c))}")
    return None


def _as_flat64(value: Any) -> Any:
    import torch

    if _is_tensor(value):
        return value.detach().reshape(-1)
    return torch.tensor([float(value)], dtype=torch.float64)


def _chunk_stats(r: Any, c: Any, tol: Tolerance) -> tuple[int, int | None, float, float, float, int]:
    import torch

    r64, c64 = r.to(torch.float64), c.to(torch.float64)
    diff = (c64 - r64).abs()
    finite = torch.isfinite(c64)
    bad = ~finite | ~(diff <= tol.atol + tol.rtol * r64.abs())
    nbad = int(bad.sum())
    first = int(bad.nonzero()[0, 0]) if nbad else None
    diff = torch.where(finite, diff, torch.zeros_like(diff))
    rel = diff / r64.abs().clamp_min(1e-12)
    max_abs = float(diff.max()) if diff.numel() else 0.0
    max_rel = float(rel.max()) if rel.numel() else 0.0
    max_ref = float(r64.abs().max()) if r64.numel() else 0.0
    return nbad, first, max_abs, max_rel, max_ref, int((~finite).sum())


def error_stats(ref: Any, cand: Any, tol: Tolerance) -> ErrorStats:
    """Return the error summary of ``cand`` against ``ref`` (same numel) under ``tol``, chunk by chunk."""
    r, c = _as_flat64(ref), _as_flat64(cand)
    bad, first, max_abs, max_rel, max_ref, nonfinite = 0, None, 0.0, 0.0, 0.0, 0
    step = _chunk_for(r)
    for start in range(0, max(r.numel(), 1), step):
        nb, fb, ma, mr, mx, nf = _chunk_stats(r[start : start + step], c[start : start + step], tol)
        if first is None and fb is not None:
            first = start + fb
        bad, nonfinite = bad + nb, nonfinite + nf
        max_abs, max_rel, max_ref = max(max_abs, ma), max(max_rel, mr), max(max_ref, mx)
    return ErrorStats(bad, first, max_abs, max_rel, max_ref, nonfinite)


def _unravel(flat: int, shape: Sequence[int]) -> tuple[int, ...]:
    index = []
    for size in reversed(list(shape)):
        index.append(flat % size if size else 0)
        flat = flat // size if size else 0
    return tuple(reversed(index))


def _value_at(value: Any, flat: int) -> float:
    return float(_as_flat64(value)[flat]) if _is_tensor(value) else float(value)


def _numeric_detail(i: int, ref: Any, cand: Any, stats: ErrorStats, tol: Tolerance) -> str:
    shape = list(ref.shape) if _is_tensor(ref) else []
    where = ""
    if stats.first_bad is not None:
        index = _unravel(stats.first_bad, shape)
        got, want = _value_at(cand, stats.first_bad), _value_at(ref, stats.first_bad)
        where = f"first mismatch at index {index}: got {got:.6g}, expected {want:.6g}; "
    nan = f"{stats.nonfinite} NaN/inf; " if stats.nonfinite else ""
    total = max(_as_flat64(ref).numel(), 1)
    return (
        f"output {i} (shape {shape}): {where}{nan}{stats.bad}/{total} elements out of tolerance; "
        f"max abs err {stats.max_abs:.3g}, max rel err {stats.max_rel:.3g} "
        f"({tol.policy}: atol={tol.atol:g} rtol={tol.rtol:g})"
    )


def _relative_detail(i: int, stats: ErrorStats, tol: Tolerance) -> str:
    return (
        f"output {i}: max abs err {stats.max_abs:.3g} exceeds rtol={tol.rtol:g} of the reference's "
        f"largest magnitude {stats.max_ref:.3g} (relative check on strengthened inputs)"
    )


def numeric_mismatch(
    ref: Sequence[Any], cand: Sequence[Any], tol: Tolerance, relative: bool = False
) -> Mismatch | None:
    """Return the first output out of tolerance (NaN/inf never pass), or None when all match.

    ``relative`` adds a scale-aware check: max abs error <= rtol * max |reference|.
    """
    for i, (r, c) in enumerate(zip(ref, cand, strict=False)):
        if r is None or c is None:
            continue
        stats = error_stats(r, c, tol)
        if stats.bad:
            return Mismatch("numeric", i, _numeric_detail(i, r, c, stats, tol))
        if relative and stats.max_abs > tol.rtol * stats.max_ref + 1e-30:
            return Mismatch("numeric", i, _relative_detail(i, stats, tol))
    return None


def all_finite(values: Sequence[Any]) -> bool:
    """Return True when every tensor / number in ``values`` is finite (no float64 copy of a tensor)."""
    import math

    import torch

    for value in values:
        if value is None:
            continue
        finite = bool(torch.isfinite(value).all()) if _is_tensor(value) else math.isfinite(float(value))
        if not finite:
            return False
    return True


def equal_tensors(a: Any, b: Any) -> bool:
    """Return True when two tensors are bitwise equal (NaNs equal), chunk by chunk (no full-size temporaries)."""
    import torch

    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    x, y = a.detach().reshape(-1), b.detach().reshape(-1)
    step = _chunk_for(x)
    for start in range(0, x.numel(), step):
        if not torch.equal(x[start : start + step].nan_to_num(), y[start : start + step].nan_to_num()):
            return False
    return True


def identical(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Return True when two flattened outputs are bitwise equal (same shapes, NaNs equal)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=False):
        if _is_tensor(x) != _is_tensor(y):
            return False
        if not _is_tensor(x):
            if x != y:
                return False
        elif not equal_tensors(x, y):
            return False
    return True


def _passes(ref: Any, guess: Any, tol: Tolerance) -> bool:
    if not _is_tensor(ref) or not _is_tensor(guess) or tuple(ref.shape) != tuple(guess.shape):
        return False
    return error_stats(ref, guess, tol).bad == 0


def _trivial_guesses(inputs: Sequence[Any], ref: Any, other: Any) -> dict[str, Any]:
    import torch

    guesses: dict[str, Any] = {"zeros": torch.zeros_like(ref)}
    for j, x in enumerate(inputs):
        if _is_tensor(x) and tuple(x.shape) == tuple(ref.shape):
            guesses[f"identity(input {j})"] = x
    if ref.numel() > 1:  # one element: the constant would be the answer itself
        guesses["constant"] = torch.full_like(ref, float(ref.to(torch.float64).mean()))
    if other is not None:
        guesses["other trial's output"] = other
    return guesses


def low_signal_probes(trials: Sequence[tuple[Sequence[Any], Sequence[Any]]], tol: Tolerance) -> list[str]:
    """Return the trivial answers that pass against the reference on every trial.

    ``trials`` holds (inputs, reference outputs) per trial. Probes per output: zeros,
    each same-shape input (identity), a constant, another trial's reference output.
    """
    found: list[str] = []
    outputs = len(trials[0][1]) if trials else 0
    for i in range(outputs):
        passing: set[str] | None = None
        for t, (inputs, outs) in enumerate(trials):
            ref = outs[i]
            if not _is_tensor(ref):
                passing = set()
                break
            other = trials[(t + 1) % len(trials)][1][i] if len(trials) > 1 else None
            ok = {name for name, g in _trivial_guesses(inputs, ref, other).items() if _passes(ref, g, tol)}
            passing = ok if passing is None else passing & ok
        found += [f"output {i}: {name}" for name in sorted(passing or ())]
    return found


_DIGEST_WEIGHTS: dict[str, Any] = {}


def _digest_weights(device: Any) -> Any:
    """Return fixed pseudo-random int64 weights (one period) on ``device`` for ``tensor_digest``."""
    import torch

    key = str(device)
    if key not in _DIGEST_WEIGHTS:
        gen = torch.Generator().manual_seed(0x5EED)
        _DIGEST_WEIGHTS[key] = torch.randint(1, 2**62, (CHUNK,), generator=gen, dtype=torch.int64).to(device)
    return _DIGEST_WEIGHTS[key]


def tensor_digest(value: Any) -> str:
    """Return a position-sensitive digest of a tensor's bytes (with dtype and shape), computed where it lives.

    Equal digests mean bitwise-equal tensors for all practical purposes (two weighted
    int64 sums over the raw bytes); used to tell a replayed output from a fresh one
    without copying device tensors to the host.
    """
    import torch

    if not _is_tensor(value):
        return f"value:{value!r}"
    flat = value.detach().contiguous().reshape(-1)
    if flat.storage_offset() * flat.element_size() % 4:  # an int32 view needs a 4-byte aligned start
        flat = flat.clone()
    raw = flat.view(torch.uint8) if flat.numel() else flat.new_empty(0, dtype=torch.uint8)
    words = raw.view(torch.int32) if raw.numel() % 4 == 0 else raw
    weights = _digest_weights(words.device)
    s1 = torch.zeros((), dtype=torch.int64, device=words.device)
    s2 = torch.zeros((), dtype=torch.int64, device=words.device)
    for start in range(0, words.numel(), CHUNK):
        part = words[start : start + CHUNK].to(torch.int64)
        s1 += (part * weights[: part.numel()]).sum()
        s2 += (part * (start + 1 + torch.arange(part.numel(), device=part.device))).sum()
    return f"{value.dtype}{list(value.shape)}:{int(s1):x}:{int(s2):x}"


def outputs_digest(values: Sequence[Any]) -> str:
    """Return one digest for a flattened output list."""
    return "|".join(tensor_digest(v) for v in values)


def trial_facts(ref: Sequence[Any], got: Sequence[Any], tol: Tolerance, strong: bool,
                kb_ref: Sequence[Any] | None = None, wider: Tolerance | None = None) -> dict[str, Any]:
    """Return what the judge needs of one trial, computed where the tensors live (host or device).

    ``shape``: the first count/type/shape difference or None; ``numeric``: the first
    mismatch (relative check too on strengthened inputs) or None; ``right_relative``:
    whether the outputs also pass the relative check; ``digest`` / ``ref_digest``: of the
    candidate's and the reference's outputs (replay detection); ``kb``: why KernelBench's eval
    rejects the outputs against ``kb_ref`` (its own reference where that differs, else ``ref``) or
    None; ``max_abs``: the largest error; ``wider_ok``: on a numeric failure, whether every output
    passes under the ``wider`` tolerance (the TF32 class, ``core/precision.py``).
    """
    from pytest_kernelfalcon.core.kernelbench import kb_mismatch

    shape = shape_mismatch(ref, got)
    facts: dict[str, Any] = {"shape": shape.detail if shape else None, "numeric": None, "right_relative": False,
                             "digest": "", "ref_digest": outputs_digest(ref), "max_abs": 0.0, "wider_ok": False}
    if shape is not None:
        facts["kb"] = kb_mismatch(kb_ref if kb_ref is not None else ref, got)
        return facts
    numeric, relative_ok, max_abs = None, True, 0.0
    for i, (r, c) in enumerate(zip(ref, got, strict=False)):
        if r is None or c is None:
            continue
        stats = error_stats(r, c, tol)
        within = stats.bad == 0 and stats.max_abs <= tol.rtol * stats.max_ref + 1e-30
        relative_ok, max_abs = relative_ok and within, max(max_abs, stats.max_abs)
        if numeric is None and stats.bad:
            numeric = _numeric_detail(i, r, c, stats, tol)
        elif numeric is None and strong and not within:
            numeric = _relative_detail(i, stats, tol)
    facts.update(numeric=numeric, right_relative=relative_ok, digest=outputs_digest(got), max_abs=max_abs,
                 kb=kb_mismatch(kb_ref if kb_ref is not None else ref, got,
                                values=numeric is not None or kb_ref is not None),
                 wider_ok=numeric is not None and not strong and wider is not None and _passes_all(ref, got, wider))
    return facts


def _passes_all(ref: Sequence[Any], got: Sequence[Any], tol: Tolerance) -> bool:
    return all(error_stats(r, c, tol).bad == 0 for r, c in zip(ref, got, strict=False) if r is not None and c is not None)


class ProbeTracker:
    """``low_signal_probes`` one trial at a time (only the previous trial's outputs are kept).

    The "other trial's output" probe compares each trial with the one before it.
    """

    def __init__(self, tol: Tolerance) -> None:
        self.tol = tol
        self.passing: dict[int, set[str]] = {}
        self.previous: Sequence[Any] | None = None
        self.trials = 0

    def add(self, inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
        """Intersect the passing trivial answers with this trial's."""
        for i, ref in enumerate(outputs):
            ok: set[str] = set()
            if _is_tensor(ref):
                prev: Any = self.previous[i] if self.previous is not None and i < len(self.previous) else None
                other = prev if prev is not None and _is_tensor(prev) and prev.shape == ref.shape else None
                ok = {name for name, g in _trivial_guesses(inputs, ref, other).items() if _passes(ref, g, self.tol)}
                if self.previous is None:  # the first trial has no earlier one to be replayed
                    ok.add("other trial's output")
            self.passing[i] = ok if self.trials == 0 else self.passing.get(i, set()) & ok
        self.previous, self.trials = outputs, self.trials + 1

    def found(self) -> list[str]:
        """Return the trivial answers that passed every trial added."""
        out = []
        for i, names in sorted(self.passing.items()):
            if self.trials < 2:
                names = names - {"other trial's output"}
            out += [f"output {i}: {name}" for name in sorted(names)]
        return out


def shapes_of(values: Sequence[Any]) -> list[Any]:
    """The shape of each tensor (other values as they are)."""
    return [list(v.shape) if hasattr(v, "shape") else v for v in values]


def trial_context(seed: int, strong: bool, plan: dict[str, Any], inputs: Sequence[Any], values: str = "task",
                  reuse: bool = False) -> str:
    """Where a trial's failure happened: seed, strengthened or not, value draw, address reuse, sizes, input shapes."""
    more = ", strengthened inputs" if strong else ""
    if values != "task":
        more += f", values {values}"
    if reuse:
        more += ", inputs written into the previous trial's input storage (address reuse)"
    role = f" ({plan['role']} plan)" if plan.get("role") not in (None, "task") else ""
    return (f"seed {seed}{more}, sizes {plan.get('overrides') or 'official'}{role}, "
            f"input shapes {shapes_of(inputs)}")


REF_ERROR_FACTOR = 10.0  # a candidate may round up to this many times worse than the reference itself


def value_draw_tolerance(tol: Tolerance, ref: Sequence[Any], ref_error: Sequence[float] | None = None) -> Tolerance:
    """The tolerance on drawn values (large, mixed scales: ill-conditioned where the task's are not).

    With ``ref_error`` (per output, max |reference - float64 reference|, measured by the reference
    job): atol + ``REF_ERROR_FACTOR`` x the reference's own largest rounding error. Without it: atol
    scaled by the reference's largest magnitude (at least 1). NaN/inf never pass either way.
    """
    import math

    if ref_error is not None:
        worst = max((e for e in ref_error if math.isfinite(e)), default=0.0)
        if worst <= 0.0:
            return tol
        atol = tol.atol + REF_ERROR_FACTOR * worst
        return Tolerance(policy=f"{tol.policy}, atol {atol:.3g} (value draw: {REF_ERROR_FACTOR:g}x the "
                                f"reference's own float64 error)", atol=atol, rtol=tol.rtol)
    largest = max((float(r.detach().abs().max()) for r in ref
                   if _is_tensor(r) and r.numel() and r.is_floating_point()), default=1.0)
    scale = max(1.0, largest)
    if scale == 1.0 or not math.isfinite(scale):
        return tol
    return Tolerance(policy=f"{tol.policy}, atol x{scale:.3g} (value draw)", atol=tol.atol * scale, rtol=tol.rtol)
