"""Timing of a verified ``ModelNew`` against the eager ``Model`` and ``torch.compile(Model)``.

Method: CUDA events around each call, warm-up first, the L2 cache flushed
before every timed call (a buffer twice the L2 size is zeroed), inputs rotated
over several freshly drawn sets, the median of many calls. The models are
LLM-written, so the timing runs in a child process (``run_bench_job``, job
mode ``"bench"``); the parent (``bench_task``) holds an exclusive file lock per
GPU while it runs, so two timings never share a GPU. Speed-ups above
``max_plausible`` or moving more bytes (inputs + outputs) per second than the
card's measured device-to-device copy bandwidth are flagged. Without CUDA,
timing is refused: CPU or interpreter timings say nothing about kernels.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.core.gpus import visible_gpus
from pytest_kernelfalcon.core.protocol import TIMING_REFUSED as REFUSED
from pytest_kernelfalcon.core.protocol import BenchJob


class TimingRefused(RuntimeError):
    """Timing was asked for where it means nothing (no CUDA device)."""


@dataclass(frozen=True)
class BenchOptions:
    """How to time one task."""

    gpu: str | None = None  # the caller's identifier of the pinned GPU (see gpus.gpu_for_worker)
    dtype: str = "fp32"
    seed: int = 0
    input_sets: int = 4
    warmup_ms: float = 25.0
    rep_ms: float = 100.0
    min_reps: int = 20
    max_reps: int = 1000
    compile: bool = True
    timeout_s: float = 600.0
    max_plausible: float = 10.0
    lock_dir: Path | None = None  # default: <tmp>/kernelfalcon-gpu-locks (shared by every worker)


@dataclass(frozen=True)
class BenchResult:
    """Median times (ms), speed-ups and flags of one timed task; ``error`` when timing failed."""

    gpu: str | None = None
    gpu_name: str | None = None
    eager: dict[str, Any] | None = None  # timing stats: median_ms, p20_ms, p80_ms, min_ms, max_ms, runs
    compiled: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    speedup_eager: float | None = None
    speedup_compile: float | None = None
    bytes_moved: int | None = None
    achieved_gbps: float | None = None
    bandwidth_gbps: float | None = None
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    locked_from: float | None = None  # time.time() span during which this timing held the GPU
    locked_until: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (for ``TaskOutcome.extra["bench"]``)."""
        data = asdict(self)
        data["flags"], data["notes"] = list(self.flags), list(self.notes)
        return data


# ---------------------------------------------------------------- measuring (child side)




def default_lock_dir() -> Path:
    """Return the lock directory every worker of this machine shares."""
    return Path(tempfile.gettempdir()) / "kernelfalcon-gpu-locks"


@contextlib.contextmanager
def gpu_lock(gpu: str, lock_dir: Path | None = None, shared: bool = False,
             cancel: threading.Event | None = None) -> Iterator[float]:
    """Hold the file lock of ``gpu`` (exclusive for timing, shared for other work); yield the wait (s).

    The wait polls ``cancel`` (a ``Deadline`` bounds it: ``DeadlinePassed`` names the timing lock)."""
    from pytest_kernelfalcon.executor.deadline import wait_for_flock

    directory = lock_dir or default_lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in gpu)
    start = time.monotonic()
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(directory / f"gpu-{safe}.lock", "a+") as handle:
        wait_for_flock(handle.fileno(), mode, cancel, f"the timing lock of GPU {gpu} (another timing holds it)")
        try:
            yield time.monotonic() - start
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def cuda_available() -> bool:
    """Return whether this process sees a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def bench_job(task_path: Path, model_new_path: Path, options: BenchOptions, bandwidth: float | None) -> BenchJob:
    """Return the record of a bench job (plain numbers and strings only)."""
    knobs = {k: getattr(options, k) for k in ("dtype", "seed", "input_sets", "warmup_ms", "rep_ms",
                                              "min_reps", "max_reps", "compile")}
    return BenchJob(task_path=str(Path(task_path).resolve()), model_new_path=str(Path(model_new_path).resolve()),
                    bandwidth_gbps=bandwidth, **knobs)


def _bandwidth_cache(lock_dir: Path, gpu: str) -> Path:
    """Return the file caching the measured copy bandwidth of ``gpu``."""
    return lock_dir / f"bandwidth-{''.join(c if c.isalnum() else '_' for c in gpu)}.json"


def bench_task(task_path: str | Path, model_new_path: str | Path, options: BenchOptions | None = None,
               executor: Any = None, cancel: threading.Event | None = None) -> BenchResult:
    """Time ``ModelNew`` against the task's ``Model`` in a child process; raise ``TimingRefused`` without CUDA."""
    options = options or BenchOptions()
    if not cuda_available():
        raise TimingRefused(REFUSED)
    from pytest_kernelfalcon.executor.base import Job
    from pytest_kernelfalcon.executor.cold import ColdExecutor

    executor = executor or ColdExecutor()
    gpu = options.gpu or (visible_gpus(os.environ, 1) or ["0"])[0]
    lock_dir = options.lock_dir or default_lock_dir()
    cache = _bandwidth_cache(lock_dir, gpu)
    bandwidth = read_bandwidth(cache)
    with tempfile.TemporaryDirectory(prefix="kf-bench-") as tmp, gpu_lock(gpu, lock_dir, cancel=cancel):
        locked_from = time.time()
        write_job(Path(tmp), Path(task_path), Path(model_new_path), options, bandwidth)
        ended = executor.run(Job(Path(tmp), options.timeout_s, "cuda", options.gpu), cancel)
        span = (locked_from, time.time())
    result = interpret(ended, gpu, options, span)
    if bandwidth is None and result.bandwidth_gbps:
        from pytest_kernelfalcon.reports.report import atomic_write

        atomic_write(cache, json.dumps({"gbps": result.bandwidth_gbps}).encode())
    return result


def read_bandwidth(cache: Path) -> float | None:
    """Return the cached copy bandwidth (GB/s), ``None`` when absent or unreadable."""
    try:
        return float(json.loads(cache.read_text())["gbps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_job(jobdir: Path, task_path: Path, model_new_path: Path, options: BenchOptions,
              bandwidth: float | None) -> None:
    """Copy the task and ``ModelNew`` into ``jobdir`` and write its ``job.pt``."""
    import torch

    shutil.copyfile(task_path, jobdir / "task.py")
    shutil.copyfile(model_new_path, jobdir / "candidate.py")
    job = bench_job(jobdir / "task.py", jobdir / "candidate.py", options, bandwidth)
    torch.save(job.to_wire(), jobdir / "job.pt")


def interpret(ended: Any, gpu: str, options: BenchOptions, span: tuple[float, float]) -> BenchResult:
    """Return the ``BenchResult`` of a finished bench job (an executor ``JobResult``)."""
    base: dict[str, Any] = {"gpu": gpu, "locked_from": span[0], "locked_until": span[1]}
    if ended.timed_out:
        return BenchResult(**base, error=f"timing ran past {options.timeout_s:.0f}s")
    body = ended.report
    if body is None:
        return BenchResult(**base, error=f"bench child failed: {ended.report_error}\n{ended.stderr_tail[-1500:]}")
    if body.get("error"):
        return BenchResult(**base, error=f"{body['error']['category']}: {body['error']['message']}")
    return summarise(body, options, **base)


def summarise(body: dict[str, Any], options: BenchOptions, **base: Any) -> BenchResult:
    """Return speed-ups and plausibility flags from a child's bench result ``body``."""
    new_ms = body["new"]["median_ms"]
    eager = body["eager"]["median_ms"] / new_ms
    compiled = body["compiled"]["median_ms"] / new_ms if body.get("compiled") else None
    achieved = body["bytes_moved"] / (new_ms * 1e-3) / 1e9
    flags = [f"{x:.1f}x faster than {name}, above the plausible {options.max_plausible:g}x"
             for name, x in (("eager", eager), ("torch.compile", compiled))
             if x is not None and x > options.max_plausible]
    if body.get("bandwidth_gbps") and achieved > body["bandwidth_gbps"]:
        flags.append(f"moves {achieved:.0f} GB/s of inputs+outputs, above the card's "
                     f"measured copy bandwidth {body['bandwidth_gbps']:.0f} GB/s")
    return BenchResult(gpu_name=body.get("gpu_name"), eager=body["eager"], compiled=body.get("compiled"),
                       new=body["new"], speedup_eager=eager, speedup_compile=compiled,
                       bytes_moved=body["bytes_moved"], achieved_gbps=achieved,
                       bandwidth_gbps=body.get("bandwidth_gbps"), flags=tuple(flags),
                       notes=tuple(body.get("notes") or ()), **base)

