"""Facts about a task's reference, measured where its tensors already are.

The reference job records, per trial, what its inputs and outputs are like (``trial_facts``)
and, once per shape plan, one more forward of the first trial's inputs (``repeat_facts`` in
the child): with the same seed (does the reference differ from itself?), with another seed
(does it draw random numbers?), timed, with the peak memory. The parent folds them into
``TaskFacts`` (``summarize``) for the self-test's table and JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.core.compare import error_stats, identical, tensor_digest, tolerance_for

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.protocol import ReferenceCase

RNG_NOTE = "reference and candidate ran with the same RNG stream: torch.manual_seed(trial seed) before each forward"


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def input_kind(value: Any) -> str:
    """``bool``, ``int`` or ``float`` for a tensor input (by dtype), else the value's type name."""
    import torch

    if not _is_tensor(value):
        return type(value).__name__
    if value.dtype == torch.bool:
        return "bool"
    return "float" if value.is_floating_point() or value.is_complex() else "int"


def output_facts(value: Any) -> dict[str, Any]:
    """Whether an output tensor is all zero or constant (over two or more elements), and its digest.

    Computed where the tensor lives. A one-element output is never "constant" (only zero or not).
    """
    if not _is_tensor(value) or value.numel() == 0:
        return {"zero": False, "constant": False, "digest": tensor_digest(value)}
    flat = value.detach().reshape(-1)
    first = flat[:1]
    same = bool((flat == first).all())
    zero = same and bool((first == 0).all())
    constant = same and flat.numel() > 1
    return {"zero": zero, "constant": constant, "digest": tensor_digest(value)}


def trial_facts(inputs: Sequence[Any], outputs: Sequence[Any]) -> dict[str, Any]:
    """What one trial's inputs and outputs are like (kinds, digests, zero/constant outputs)."""
    return {"inputs": [input_kind(x) for x in inputs], "input_digest": "|".join(tensor_digest(x) for x in inputs),
            "outputs": [output_facts(o) for o in outputs]}


def differs(a: Sequence[Any], b: Sequence[Any], dtype: str) -> bool:
    """Whether two flattened outputs differ beyond the run dtype's tolerance (a candidate would fail)."""
    if len(a) != len(b):
        return True
    tol = tolerance_for(dtype)
    for x, y in zip(a, b, strict=True):
        if _is_tensor(x) != _is_tensor(y):
            return True
        if not _is_tensor(x):
            if x != y:
                return True
        elif x.shape != y.shape or error_stats(x, y, tol).bad:
            return True
    return False


def bitwise_same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether two flattened outputs are bitwise equal."""
    return identical(list(a), list(b))


@dataclass(frozen=True)
class TaskFacts:
    """What the self-test reports about one task at the shapes it used."""

    low_signal: list[str] = field(default_factory=list)  # trivial answers that pass (the checker's probes)
    degenerate: list[str] = field(default_factory=list)  # e.g. "output 0 all zero"
    nondeterministic: list[str] = field(default_factory=list)  # why; empty when deterministic
    input_kinds: list[str] = field(default_factory=list)  # sorted distinct kinds of get_inputs() values
    init_kinds: list[str] = field(default_factory=list)  # sorted distinct kinds of get_init_inputs() values
    output_count: int = 0  # values the forward returns, flattened (more than 1: a tuple or list output)
    reference_s: float | None = None  # one reference forward, after the trials (warm)
    peak_bytes: int | None = None
    peak_kind: str = ""  # "cuda max allocated" | "process peak rss"

    def to_json(self) -> dict[str, Any]:
        """Return the facts as a JSON-ready dict."""
        return asdict(self)


def _trials(case: ReferenceCase) -> list[dict[str, Any]]:
    """The per-trial facts of a case (none when its reference job recorded no facts)."""
    return list(case.facts.get("trials") or [])


def _repeat(case: ReferenceCase) -> dict[str, Any]:
    """The repeat forward's facts of a case (empty when not recorded)."""
    return dict(case.facts.get("repeat") or {})


def _same_across_inputs(cases: Sequence[ReferenceCase], i: int) -> bool:
    """Whether output ``i`` is bitwise the same on every trial of each plan while the inputs differ."""
    per_case = [_trials(c) for c in cases]
    compared = [ts for ts in per_case if len(ts) > 1 and len({t["input_digest"] for t in ts}) > 1]
    return bool(compared) and all(len({t["outputs"][i]["digest"] for t in ts}) == 1 for ts in compared)


def _degenerate(cases: Sequence[ReferenceCase]) -> list[str]:
    found: list[str] = []
    trials = [t for c in cases for t in _trials(c)]
    for i in range(min((len(t["outputs"]) for t in trials), default=0)):
        outs = [t["outputs"][i] for t in trials]
        if all(o["zero"] for o in outs):
            found.append(f"output {i} all zero")
        elif all(o["constant"] for o in outs):
            found.append(f"output {i} constant")
        elif _same_across_inputs(cases, i):
            found.append(f"output {i} independent of the inputs")
    return found


def _nondeterministic(cases: Sequence[ReferenceCase]) -> list[str]:
    found: list[str] = []
    repeats = [_repeat(c) for c in cases]
    if any(r.get("same_seed_differs") for r in repeats):
        found.append("differs from itself with the same seed and inputs (state kept across calls, or a "
                     "nondeterministic kernel)")
    if any(r.get("rng_dependent") for r in repeats):
        found.append("draws random numbers (dropout / training mode): " + RNG_NOTE)
    return found


def summarize(cases: Sequence[ReferenceCase], probes: Sequence[str]) -> TaskFacts:
    """Fold the reference job's per-case facts (``case.facts``) and the low-signal probes into ``TaskFacts``."""
    trials = [t for c in cases for t in _trials(c)]
    kinds = sorted({k for t in trials for k in t["inputs"]})
    init = sorted({input_kind(v) for c in cases for v in c.init_inputs})
    repeats = [_repeat(c) for c in cases]
    times = [r["forward_s"] for r in repeats if r.get("forward_s") is not None]
    peaks = [r for r in repeats if r.get("peak_bytes") is not None]
    return TaskFacts(low_signal=list(probes), degenerate=_degenerate(cases), nondeterministic=_nondeterministic(cases),
                     input_kinds=kinds, init_kinds=init,
                     output_count=max((len(t["outputs"]) for t in trials), default=0), reference_s=max(times) if times else None,
                     peak_bytes=max(r["peak_bytes"] for r in peaks) if peaks else None,
                     peak_kind=peaks[0]["peak_kind"] if peaks else "")


def rng_dependent(cases: Sequence[ReferenceCase]) -> bool:
    """Whether the reference drew random numbers on any shape plan."""
    return any(_repeat(c).get("rng_dependent") for c in cases)
