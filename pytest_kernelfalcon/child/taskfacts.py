"""The reference job's one extra forward per shape plan: determinism, RNG use, time, peak memory.

It runs after every trial of the plan (strengthened ones included), so the trials a
candidate is compared on see the same sequence of forwards as before.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.child.runtime import draw_inputs, short_error, torch_dtype
from pytest_kernelfalcon.core.facts import bitwise_same, differs

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.protocol import ReferenceJob

OTHER_SEED_OFFSET = 7919
KEEP_NUMEL = 1 << 26  # the resident path keeps the first trial's outputs on the device up to this many elements


def kept_outputs(outputs: list[Any]) -> list[Any] | None:
    """The first trial's outputs, kept for the repeat forward, or None when they are too large to hold."""
    numel = sum(int(o.numel()) for o in outputs if hasattr(o, "numel"))
    return list(outputs) if numel <= KEEP_NUMEL else None


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _peak_start(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> tuple[int, str]:
    import torch

    if device == "cuda":
        return int(torch.cuda.max_memory_allocated()), "cuda max allocated"
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process peak rss"


def _beside(values: list[Any], like: list[Any]) -> list[Any]:
    """``values`` with each tensor on the device of the matching output in ``like``."""
    return [v.to(w.device) if hasattr(v, "to") and hasattr(w, "device") else v
            for v, w in zip(values, like, strict=False)] + values[len(like):]


def repeat_facts(forward: Any, model: Any, get_inputs: Any, job: ReferenceJob, transform: Any, seed: int,
                 first: list[Any] | None, first_digest: str = "") -> dict[str, Any]:
    """Run the first trial's inputs again: same seed (``same_seed_differs``), another seed (``rng_dependent``).

    ``forward(model, inputs, seed)`` is the reference forward (outputs first). ``first`` holds the
    first trial's outputs; when they were too large to keep, ``first_digest`` stands in (then only
    a bitwise comparison is possible). Compared where the outputs live. Failures are recorded, never raised.
    """
    from pytest_kernelfalcon.core.compare import outputs_digest

    device, dtype = job.device, job.dtype
    try:
        inputs = draw_inputs(get_inputs, seed, device, torch_dtype(dtype), tuple(transform))
        _sync(device)
        _peak_start(device)
        start = time.perf_counter()
        again = forward(model, inputs, seed)[0]
        _sync(device)
        forward_s = time.perf_counter() - start
        peak, kind = _peak(device)
        if first is None:
            bitwise = outputs_digest(again) == first_digest
            same_differs = not bitwise
        else:
            first = _beside(first, again)
            bitwise, same_differs = bitwise_same(first, again), differs(first, again, dtype)
        del first
        other = forward(model, inputs, seed + OTHER_SEED_OFFSET)[0]
        return {"same_seed_differs": same_differs, "same_seed_bitwise": bitwise,
                "rng_dependent": not same_differs and differs(again, other, dtype),
                "forward_s": forward_s, "peak_bytes": peak, "peak_kind": kind}
    except Exception as exc:
        return {"error": short_error(exc)}


def case_facts(forward: Any, model: Any, get_inputs: Any, job: ReferenceJob, transform: Any,
               trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The facts of one shape plan of the files path: each ordinary trial's, then the repeat forward's."""
    from pytest_kernelfalcon.core.facts import trial_facts

    facts: dict[str, Any] = {"trials": [trial_facts(t["inputs"], t["outputs"]) for t in trials]}
    if trials:
        facts["repeat"] = repeat_facts(forward, model, get_inputs, job, transform, trials[0]["seed"],
                                       trials[0]["outputs"])
    return facts
