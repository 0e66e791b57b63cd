"""The reference job's one extra forward per shape plan: determinism, RNG use, time, peak memory.

It runs after every trial of the plan (strengthened ones included), so the trials a
candidate is compared on see the same sequence of forwards as before.
"""

from __future__ import annotations

import time
from typing import Any

from pytest_kernelfalcon.child.runtime import draw_inputs, short_error, torch_dtype
from pytest_kernelfalcon.core.facts import bitwise_same, differs

OTHER_SEED_OFFSET = 7919


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


def _host(values: list[Any]) -> list[Any]:
    return [v.detach().cpu() if hasattr(v, "detach") else v for v in values]


def repeat_facts(forward: Any, model: Any, get_inputs: Any, job: dict[str, Any], transform: Any, seed: int,
                 first: list[Any]) -> dict[str, Any]:
    """Run the first trial's inputs again: same seed (``same_seed_differs``), another seed (``rng_dependent``).

    ``forward(model, inputs, seed)`` is the reference forward (outputs first); ``first`` holds the
    first trial's outputs. Failures are recorded, never raised.
    """
    device, dtype = job["device"], job["dtype"]
    try:
        inputs = draw_inputs(get_inputs, seed, device, torch_dtype(dtype), (transform[0], transform[1]))
        _sync(device)
        _peak_start(device)
        start = time.perf_counter()
        again = _host(forward(model, inputs, seed)[0])
        _sync(device)
        forward_s = time.perf_counter() - start
        peak, kind = _peak(device)
        other = _host(forward(model, inputs, seed + OTHER_SEED_OFFSET)[0])
        first = _host(first)
        same_differs = differs(first, again, dtype)
        return {"same_seed_differs": same_differs, "same_seed_bitwise": bitwise_same(first, again),
                "rng_dependent": not same_differs and differs(again, other, dtype),
                "forward_s": forward_s, "peak_bytes": peak, "peak_kind": kind}
    except Exception as exc:
        return {"error": short_error(exc)}


def case_facts(forward: Any, model: Any, get_inputs: Any, job: dict[str, Any], transform: Any,
               trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The facts of one shape plan of the files path: each ordinary trial's, then the repeat forward's."""
    from pytest_kernelfalcon.core.facts import trial_facts

    facts: dict[str, Any] = {"trials": [trial_facts(t["inputs"], t["outputs"]) for t in trials]}
    if trials:
        facts["repeat"] = repeat_facts(forward, model, get_inputs, job, transform, trials[0]["seed"],
                                       trials[0]["outputs"])
    return facts
