"""Seconds per verified candidate, split into process start, reference, candidate and comparison.

Runs the correct candidates of the test corpus (``tests/corpus``) through the trusted
checker on CPU (``TRITON_INTERPRET=1``, scaled shapes) and, when CUDA is available, on
the GPU (official shapes). Each candidate is verified twice with one ``Checker``: the
first run computes the reference, the second ("cached") reuses it, as a
pipeline does for many candidates of one task.

    python benchmarks/checker_overhead.py [--device cpu|cuda|all] [--shapes S] [--executor cold|warm]
        [--only NAME ...] [--out FILE] [--json]

``--executor warm`` runs the jobs on one warm worker (``warm.WarmExecutor``) instead of a fresh
process per job. A progress line per sample goes to stderr; ``--out`` rewrites the JSON after
each sample, so a run cut short keeps what it measured.

Columns (seconds, from ``Verdict.timings`` and the wall clock):
  first      wall time of the first check (reference included)
  cached     wall time of the second check (reference cached)
  reference  wall time of the reference child (first check only)
  start      candidate child's wall time not spent in import/construct/run
             (interpreter + torch start, job load, result save)
  candidate  candidate import + construction + trials inside the child
  compare    the parent's judgement of the result
  other      the rest of the verify call (job files, weights-only load)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"
DEFAULT_SHAPES = {"cpu": "scaled", "cuda": "official"}


@dataclass(frozen=True)
class Sample:
    """One benchmarked candidate on one device: the timing split of its first and cached checks."""

    device: str
    shapes: str
    executor: str
    candidate: str
    passed: bool
    first_s: float
    cached_s: float
    reference_s: float
    start_s: float
    candidate_s: float
    compare_s: float
    other_s: float


def kernelbench_root() -> Path:
    """Return ``KERNELBENCH_DIR`` or ``../shared/kernelbench`` beside the repo."""
    return Path(os.environ.get("KERNELBENCH_DIR", REPO.parent / "shared" / "kernelbench"))


def correct_candidates(only: list[str]) -> list[tuple[str, Path]]:
    """Return (candidate key, task path) of the corpus's correct candidates whose task is present."""
    data: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())
    found = []
    for key, entry in sorted(data.items()):
        if entry["expected"] != "pass" or (only and not any(o in key for o in only)):
            continue
        kind, rel = entry["task"].split(":", 1)
        task = (CORPUS if kind == "corpus" else kernelbench_root()) / rel
        if task.is_file():
            found.append((key, task))
    return found


def split(timings: dict[str, float], wall_s: float, with_reference: bool) -> dict[str, float]:
    """Split one verify call's wall time into reference / start / candidate / compare / other."""
    inside = sum(timings.get(f"candidate_{k}", 0.0) for k in ("import_s", "construct_s", "run_s"))
    child = timings.get("candidate_s", 0.0)
    reference = timings.get("reference_s", 0.0) if with_reference else 0.0
    compare = timings.get("compare_s", 0.0)
    return {"reference_s": reference, "start_s": max(child - inside, 0.0), "candidate_s": inside,
            "compare_s": compare, "other_s": max(wall_s - reference - child - compare, 0.0)}


def measure(key: str, task: Path, device: str, shapes: str, timeout_s: float, executor: Any = None) -> Sample:
    """Verify one candidate twice with one checker (reference computed, then cached); return the split."""
    from pytest_kernelfalcon.checker.checker import Checker, CheckOptions

    checker = Checker(CheckOptions(device=device, shapes=shapes, timeout_s=timeout_s), executor)
    try:
        walls, verdicts = [], []
        for _ in range(2):
            start = time.perf_counter()
            verdicts.append(checker.verify(task, CORPUS / key))
            walls.append(time.perf_counter() - start)
    finally:
        checker.close()
    first = split(verdicts[0].timings, walls[0], with_reference=True)
    cached = split(verdicts[1].timings, walls[1], with_reference=False)
    parts = {k: statistics.mean((first[k], cached[k])) for k in first if k != "reference_s"}
    executor_name = "cold" if executor is None else "warm"
    return Sample(device, shapes, executor_name, key, all(v.passed for v in verdicts), walls[0], walls[1],
                  first["reference_s"], **parts)


def measure_device(device: str, args: argparse.Namespace, candidates: list[tuple[str, Path]],
                   done: Callable[[Sample], None]) -> None:
    """Measure every candidate on one device (on one warm worker with ``--executor warm``)."""
    executor = None
    if args.executor == "warm":
        from pytest_kernelfalcon.executor.warm import WarmExecutor

        executor = WarmExecutor(pool_size=1, device=device)
    try:
        for key, task in candidates:
            done(measure(key, task, device, args.shapes or DEFAULT_SHAPES[device], args.timeout, executor))
    finally:
        if executor is not None:
            executor.close()


def machine(devices: list[str]) -> dict[str, str]:
    """Return the host, CPU model and (where used) GPU name."""
    info = {"host": platform.node(), "cpu": cpu_model(), "cores": str(os.cpu_count())}
    if "cuda" in devices:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def cpu_model() -> str:
    """The CPU model of this machine (/proc/cpuinfo, else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def devices_for(choice: str) -> list[str]:
    """Return the devices to benchmark for ``--device`` (``all``: cpu, plus cuda when available)."""
    if choice != "all":
        return [choice]
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def table(samples: list[Sample], info: dict[str, str]) -> str:
    """Return the human-readable report: machine line, one row per sample, a mean row per device."""
    from tabulate import tabulate

    headers = ["device", "shapes", "executor", "candidate", "ok", "first", "cached", "reference", "start",
               "candidate", "compare", "other"]
    rows = [[s.device, s.shapes, s.executor, s.candidate, "yes" if s.passed else "NO", s.first_s, s.cached_s,
             s.reference_s, s.start_s, s.candidate_s, s.compare_s, s.other_s] for s in samples]
    for device in dict.fromkeys(s.device for s in samples):
        mine = [s for s in samples if s.device == device]
        means = [statistics.mean(getattr(s, f) for s in mine) for f in
                 ("first_s", "cached_s", "reference_s", "start_s", "candidate_s", "compare_s", "other_s")]
        rows.append([device, "", "", "mean", "", *means])
    title = ", ".join(f"{k}: {v}" for k, v in info.items())
    return f"{title}\n" + tabulate(rows, headers=headers, floatfmt=".2f")


def as_json(info: dict[str, str], samples: list[Sample]) -> str:
    """Return the machine and the samples as one JSON object."""
    return json.dumps({"machine": info, "samples": [asdict(s) for s in samples]}, indent=1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--shapes", choices=("scaled", "official", "fuzz"), default=None,
                        help="shape plan (default: scaled on cpu, official on cuda)")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME",
                        help="benchmark only candidates whose key contains one of these")
    parser.add_argument("--executor", choices=("cold", "warm"), default="cold",
                        help="a fresh process per job (default) or one warm worker")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here after each sample")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (or JSON); return the exit status."""
    args = parse_args(argv)
    devices = devices_for(args.device)
    candidates = correct_candidates(args.only)
    if not candidates:
        print("no correct corpus candidates found", file=sys.stderr)
        return 2
    info = machine(devices)
    samples: list[Sample] = []

    def done(sample: Sample) -> None:
        samples.append(sample)
        print(f"{sample.device} {sample.executor} {sample.candidate}: {'ok' if sample.passed else 'NOT PASSED'}, "
              f"first {sample.first_s:.2f}s, cached {sample.cached_s:.2f}s", file=sys.stderr, flush=True)
        if args.out is not None:
            args.out.write_text(as_json(info, samples))

    for device in devices:
        measure_device(device, args, candidates, done)
    if args.json:
        print(as_json(info, samples))
    else:
        print(table(samples, info))
    return 0 if all(s.passed for s in samples) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
