"""Kernel timing inside the child (job mode ``bench``): CUDA events, L2 flushed, rotated input sets.

The parent half (locks, options, plausibility) is ``checker/timing.py``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child.candidate import copy_state
from pytest_kernelfalcon.child.runtime import draw_inputs, exec_file, torch_dtype
from pytest_kernelfalcon.core.protocol import TIMING_REFUSED, BenchJob

COPY_BYTES = 256 << 20


def stats_ms(times: Sequence[float]) -> dict[str, Any]:
    """Return the median, 20th/80th percentiles, min, max and count of ``times`` (ms)."""
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"median_ms": statistics.median(ordered), "p20_ms": pick(0.2), "p80_ms": pick(0.8),
            "min_ms": ordered[0], "max_ms": ordered[-1], "runs": len(ordered)}


def l2_flush_buffer() -> Any:
    """Return a CUDA buffer of twice the L2 size, at least 256 MiB: zeroing it evicts L2.

    The floor also keeps the GPU busy long enough (tens of microseconds) for the
    CPU to queue the timed call before its start event fires, so a short kernel's
    time does not include the Python launch overhead.
    """
    import torch

    l2 = int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 0)
    return torch.empty(max(2 * l2, 256 << 20) // 4, dtype=torch.int32, device="cuda")


def _timed_calls(fn: Callable[..., Any], input_sets: Sequence[Sequence[Any]], count: int, flush: Any) -> list[float]:
    """Return the CUDA-event times (ms) of ``count`` calls, L2 flushed before each."""
    import torch

    starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    for i in range(count):
        if flush is not None:
            flush.zero_()
        starts[i].record()
        fn(*input_sets[i % len(input_sets)])
        ends[i].record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]


def measure(fn: Callable[..., Any], input_sets: Sequence[Sequence[Any]], *, warmup_ms: float = 25.0,
            rep_ms: float = 100.0, min_reps: int = 20, max_reps: int = 1000, flush: Any = None) -> dict[str, Any]:
    """Time ``fn`` on rotating ``input_sets``: warm-up by time, then the stats of many flushed calls."""
    import torch

    with torch.no_grad():
        fn(*input_sets[0])
        torch.cuda.synchronize()
        estimate = max(statistics.median(_timed_calls(fn, input_sets, 5, flush)), 1e-3)
        _timed_calls(fn, input_sets, max(1, int(warmup_ms / estimate)), flush)
        reps = max(min_reps, min(max_reps, int(rep_ms / estimate)))
        return stats_ms(_timed_calls(fn, input_sets, reps, flush))


def copy_bandwidth_gbps(nbytes: int = COPY_BYTES) -> float:
    """Return the device's measured device-to-device copy bandwidth in GB/s (read + write)."""
    import torch

    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    stats = measure(lambda s: dst.copy_(s), [[src]], warmup_ms=10, rep_ms=50, min_reps=10)
    return 2 * nbytes / (stats["median_ms"] * 1e-3) / 1e9


def tensor_bytes(values: Any) -> int:
    """Return the bytes of every tensor in ``values`` (nested lists/tuples/dicts included)."""
    import torch

    if isinstance(values, torch.Tensor):
        return values.numel() * values.element_size()
    if isinstance(values, (list, tuple)):
        return sum(tensor_bytes(v) for v in values)
    if isinstance(values, dict):
        return sum(tensor_bytes(v) for v in values.values())
    return 0


def _build(cls: type, init_inputs: list[Any], seed: int, dtype: Any) -> Any:
    """Return ``cls(*init_inputs)`` built under ``seed`` on CUDA in ``dtype``."""
    import torch

    torch.manual_seed(seed)
    return cls(*init_inputs).to("cuda").to(dtype).eval()


def _load_models(job: BenchJob) -> tuple[Any, Any, Any, list[list[Any]]]:
    """Return (task module, reference model, ModelNew with the reference's state, input sets)."""
    import torch

    dtype = torch_dtype(job.dtype)
    task = exec_file(Path(job.task_path), "kernelfalcon_bench_task")
    candidate = exec_file(Path(job.model_new_path), "kernelfalcon_bench_candidate")
    torch.manual_seed(job.seed)
    init_inputs = list(task.get_init_inputs())
    reference = _build(task.Model, init_inputs, job.seed, dtype)
    model_new = _build(candidate.ModelNew, init_inputs, job.seed, dtype)
    copy_state(model_new, {k: v.detach() for k, v in reference.state_dict().items()})
    sets = [draw_inputs(task.get_inputs, job.seed + i, "cuda", dtype, (1.0, 0.0))
            for i in range(job.input_sets)]
    return task, reference, model_new, sets


def run_bench_job(jobdir: Path, job: BenchJob) -> dict[str, Any]:
    """Child side of job mode ``"bench"``: time eager, compiled and new models; return a JSON-like dict."""
    import torch

    if not torch.cuda.is_available():
        return {"error": {"category": "timing_refused", "message": TIMING_REFUSED, "traceback": ""}}
    try:
        return _bench(job)
    except Exception as exc:  # the candidate's own failure, reported as data
        import traceback

        return {"error": {"category": "runtime_error", "message": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc()}}


def _bench(job: BenchJob) -> dict[str, Any]:
    """Return the raw timings of one bench job (CUDA present)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    task, reference, model_new, sets = _load_models(job)
    flush = l2_flush_buffer()
    knobs = {k: getattr(job, k) for k in ("warmup_ms", "rep_ms", "min_reps", "max_reps")}
    result: dict[str, Any] = {"error": None, "gpu_name": torch.cuda.get_device_name(0), "notes": []}
    result["new"] = measure(model_new, sets, flush=flush, **knobs)
    result["eager"] = measure(reference, sets, flush=flush, **knobs)
    result["compiled"] = _measure_compiled(task, job, sets, flush, knobs, result["notes"])
    with torch.no_grad():
        result["bytes_moved"] = tensor_bytes(sets[0]) + tensor_bytes(model_new(*sets[0]))
    result["bandwidth_gbps"] = job.bandwidth_gbps or copy_bandwidth_gbps()
    return result


def _measure_compiled(task: Any, job: BenchJob, sets: list[list[Any]], flush: Any,
                      knobs: dict[str, Any], notes: list[str]) -> dict[str, Any] | None:
    """Return the stats of ``torch.compile(Model)``, or ``None`` (with a note) when it fails or is off."""
    import torch

    if not job.compile:
        return None
    torch.manual_seed(job.seed)
    model = _build(task.Model, list(task.get_init_inputs()), job.seed, torch_dtype(job.dtype))
    try:
        return measure(torch.compile(model), sets, flush=flush, **knobs)
    except Exception as exc:  # a compile failure must not lose the eager timing
        notes.append(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:300]}")
        return None
