"""Timing without a GPU: refusal, statistics, plausibility flags, the per-GPU lock, the job format."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_kernelfalcon.checker.timing import (
    REFUSED,
    BenchOptions,
    TimingRefused,
    bench_job,
    bench_task,
    gpu_lock,
    interpret,
    read_bandwidth,
    summarise,
    write_job,
)
from pytest_kernelfalcon.child.bench import run_bench_job, stats_ms
from pytest_kernelfalcon.core.protocol import read_job
from pytest_kernelfalcon.executor.base import JobResult

torch = pytest.importorskip("torch")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where there is no CUDA")


@no_cuda
def test_bench_task_refuses_on_cpu(tmp_path: Path) -> None:
    with pytest.raises(TimingRefused, match="needs a CUDA GPU"):
        bench_task(tmp_path / "task.py", tmp_path / "new.py", BenchOptions(lock_dir=tmp_path))


@no_cuda
def test_child_side_refuses_on_cpu(tmp_path: Path) -> None:
    job = bench_job(tmp_path / "task.py", tmp_path / "new.py", BenchOptions(), None)
    assert run_bench_job(tmp_path, job) == {
        "error": {"category": "timing_refused", "message": REFUSED, "traceback": ""}}


def test_bench_job_is_weights_only_loadable(tmp_path: Path) -> None:
    job = bench_job(tmp_path / "t.py", tmp_path / "n.py", BenchOptions(seed=3, compile=False), 2000.0)
    torch.save(job.to_wire(), tmp_path / "job.pt")
    loaded = torch.load(tmp_path / "job.pt", weights_only=True)
    assert read_job(loaded) == job and loaded["mode"] == "bench" and loaded["seed"] == 3 and loaded["compile"] is False


def test_stats_ms() -> None:
    stats = stats_ms([5.0, 1.0, 2.0, 3.0, 4.0])
    assert stats == {"median_ms": 3.0, "p20_ms": 2.0, "p80_ms": 5.0, "min_ms": 1.0, "max_ms": 5.0, "runs": 5}


def body(new_ms: float, eager_ms: float, compiled_ms: float | None, nbytes: int = 10**6) -> dict:
    """Return a child bench result with the given medians."""
    stats = lambda ms: {"median_ms": ms, "runs": 100}  # noqa: E731
    return {"error": None, "gpu_name": "Fake GPU", "new": stats(new_ms), "eager": stats(eager_ms),
            "compiled": stats(compiled_ms) if compiled_ms else None, "bytes_moved": nbytes,
            "bandwidth_gbps": 1000.0, "notes": []}


def test_speedups_and_no_flags_when_plausible() -> None:
    result = summarise(body(new_ms=0.5, eager_ms=1.0, compiled_ms=0.25), BenchOptions())
    assert result.speedup_eager == 2.0 and result.speedup_compile == 0.5
    assert result.achieved_gbps == pytest.approx(2.0)  # 1 MB in 0.5 ms
    assert result.flags == ()


def test_implausible_speedups_are_flagged() -> None:
    result = summarise(body(new_ms=0.01, eager_ms=1.0, compiled_ms=None, nbytes=10**8), BenchOptions())
    assert result.speedup_compile is None
    assert any("100.0x faster than eager" in f for f in result.flags)
    assert any("above the card's measured copy bandwidth 1000 GB/s" in f for f in result.flags)
    lenient = summarise(body(new_ms=0.01, eager_ms=1.0, compiled_ms=None), BenchOptions(max_plausible=200))
    assert lenient.flags == ()


def test_interpret_child_failures() -> None:
    span = (1.0, 2.0)
    timed_out = JobResult(None, True, False, "", 9.0, None, None)
    assert "ran past" in (interpret(timed_out, "0", BenchOptions(), span).error or "")
    crashed = JobResult(-11, False, False, "Segmentation fault", 1.0, None, "no result.pt was written")
    assert "no result.pt" in (interpret(crashed, "0", BenchOptions(), span).error or "")
    failed = JobResult(0, False, False, "", 1.0, {"error": {"category": "runtime_error", "message": "boom"}}, None)
    result = interpret(failed, "0", BenchOptions(), span)
    assert result.error == "runtime_error: boom" and result.locked_from == 1.0


HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pytest_kernelfalcon.checker.timing import gpu_lock
    with gpu_lock("3", Path(sys.argv[1]), shared=sys.argv[2] == "shared"):
        print("held", flush=True)
        time.sleep(1.0)
""")


@pytest.mark.parametrize(("holder", "mine", "blocks"), [("exclusive", False, True), ("shared", True, False),
                                                        ("shared", False, True)])
def test_gpu_lock_across_processes(tmp_path: Path, holder: str, mine: bool, blocks: bool) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        start = time.monotonic()
        with gpu_lock("3", tmp_path, shared=mine):
            waited = time.monotonic() - start
    finally:
        proc.wait(timeout=30)
    assert (waited > 0.5) is blocks
    with gpu_lock("4", tmp_path):  # another GPU never waits
        pass


def test_a_timing_lock_wait_ends_at_the_deadline(tmp_path: Path) -> None:
    from pytest_kernelfalcon.executor.deadline import Deadline, DeadlinePassed

    proc = subprocess.Popen([sys.executable, "-c", HOLD.replace("1.0", "20.0"), str(tmp_path), "exclusive"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(DeadlinePassed) as caught, gpu_lock("3", tmp_path, cancel=Deadline(0.5)):
            pass
        assert time.monotonic() - start < 5 and "timing lock of GPU 3" in caught.value.stage
    finally:
        proc.kill()
        proc.wait()


def test_write_job_copies_sources_and_bandwidth_cache_is_robust(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("# task\n")
    (tmp_path / "n.py").write_text("# new\n")
    jobdir = tmp_path / "job"
    jobdir.mkdir()
    write_job(jobdir, tmp_path / "t.py", tmp_path / "n.py", BenchOptions(), None)
    job = torch.load(jobdir / "job.pt", weights_only=True)
    assert Path(job["model_new_path"]).read_text() == "# new\n"
    assert Path(job["task_path"]).parent == jobdir.resolve()
    (tmp_path / "bw.json").write_text("{broken")
    assert read_bandwidth(tmp_path / "bw.json") is None and read_bandwidth(tmp_path / "absent.json") is None
    (tmp_path / "bw.json").write_text('{"gbps": 3000.5}')
    assert read_bandwidth(tmp_path / "bw.json") == 3000.5
