"""Per-candidate cost of the default check profile against the task's own plan only, side by side.

Issue 16's bound: with the warm executor and the reference cached, the default profile
(``--shapes default``: the task's plan + Hypothesis-drawn size plans + value draws + an
address-reuse trial) costs at most 1.5x the official-only check per candidate on the GPU.

For each correct candidate of the test corpus (``tests/corpus``), one warm worker serves two
checkers: the baseline (``official`` on cuda; ``scaled`` on cpu, the task's own plan there) and
``default``. Each checker verifies the candidate once to compute and cache its reference (not
timed), then ``--repeats`` times in alternation (baseline, default, baseline, ...); the median
wall time of each is kept. Printed: per candidate both medians and their ratio, then the ratio of
the summed medians and the geometric mean of the ratios.

    python benchmarks/profile_cost.py [--device cpu|cuda] [--repeats N] [--only NAME ...]
        [--budget-s S] [--out FILE] [--json]

``--budget-s`` starts no new candidate after that many seconds (what was measured is kept);
``--out`` rewrites the JSON after each candidate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checker_overhead import correct_candidates  # noqa: E402
from checker_overhead import machine as host_machine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"
BASELINE = {"cpu": "scaled", "cuda": "official"}
BOUND = 1.5


@dataclass(frozen=True)
class Row:
    """One candidate: median seconds per check under the baseline and the default profile."""

    candidate: str
    baseline: str
    baseline_s: float
    default_s: float
    ratio: float
    passed: bool
    baseline_trials: int
    default_trials: int
    coverage: str


def _trials(verdict: Any) -> int:
    return len(verdict.seeds)


def measure(key: str, task: Path, device: str, repeats: int, timeout_s: float, executor: Any) -> Row:
    """Verify ``key`` with both checkers (references computed first, untimed); return the medians."""
    from pytest_kernelfalcon.checker.checker import Checker, CheckOptions

    checkers = {name: Checker(CheckOptions(device=device, shapes=name, timeout_s=timeout_s), executor)
                for name in (BASELINE[device], "default")}
    times: dict[str, list[float]] = {name: [] for name in checkers}
    last: dict[str, Any] = {}
    try:
        for name, checker in checkers.items():  # reference computed and cached; the candidate's first run
            last[name] = checker.verify(task, CORPUS / key)
        for _ in range(repeats):
            for name, checker in checkers.items():
                start = time.perf_counter()
                last[name] = checker.verify(task, CORPUS / key)
                times[name].append(time.perf_counter() - start)
    finally:
        for checker in checkers.values():
            checker.close()
    base, default = (statistics.median(times[n]) for n in checkers)
    profile = last["default"].audit.get("profile", {})
    return Row(key, BASELINE[device], base, default, default / base, all(v.passed for v in last.values()),
               _trials(last[BASELINE[device]]), _trials(last["default"]), str(profile.get("coverage", "")))


def summary(rows: list[Row]) -> dict[str, float]:
    """Summed medians, their ratio, and the geometric mean of the per-candidate ratios."""
    if not rows:
        return {}
    base, default = sum(r.baseline_s for r in rows), sum(r.default_s for r in rows)
    geomean = math.exp(statistics.mean(math.log(r.ratio) for r in rows))
    return {"baseline_total_s": base, "default_total_s": default, "total_ratio": default / base,
            "geomean_ratio": geomean, "max_ratio": max(r.ratio for r in rows), "bound": BOUND}


def machine(device: str) -> dict[str, str]:
    """The host, CPU model, cores, Python and (on cuda) GPU name."""
    return {**host_machine([device]), "python": platform.python_version()}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", nargs="*", default=[], help="candidate keys containing any of these")
    p.add_argument("--budget-s", type=float, default=None, help="start no new candidate after this many seconds")
    p.add_argument("--timeout", type=float, default=300.0, help="checker timeout per child, seconds")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from pytest_kernelfalcon.executor.warm import WarmExecutor

    executor = WarmExecutor(pool_size=1, device=device)
    rows: list[Row] = []
    started = time.perf_counter()
    result: dict[str, Any] = {"device": device, "machine": machine(device), "repeats": args.repeats}
    try:
        for key, task in correct_candidates(args.only):
            if args.budget_s is not None and time.perf_counter() - started > args.budget_s:
                print(f"budget of {args.budget_s:g}s spent; {key} and later not measured", file=sys.stderr)
                break
            row = measure(key, task, device, args.repeats, args.timeout, executor)
            rows.append(row)
            print(f"{key}: {row.baseline} {row.baseline_s:.2f}s, default {row.default_s:.2f}s, "
                  f"x{row.ratio:.2f}{'' if row.passed else ' (NOT PASSED)'}", file=sys.stderr)
            result.update(rows=[asdict(r) for r in rows], summary=summary(rows),
                          wall_s=time.perf_counter() - started)
            if args.out is not None:
                args.out.write_text(json.dumps(result, indent=1))
    finally:
        executor.close()
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{'candidate':40} {'baseline':>9} {'default':>9} {'ratio':>6}  trials")
    for r in rows:
        print(f"{r.candidate:40} {r.baseline_s:8.2f}s {r.default_s:8.2f}s {r.ratio:6.2f}  "
              f"{r.baseline_trials}->{r.default_trials}")
    total = summary(rows)
    if total:
        print(f"{device} ({result['machine'].get('gpu') or result['machine']['cpu']}), baseline {BASELINE[device]}: "
              f"total {total['baseline_total_s']:.2f}s vs {total['default_total_s']:.2f}s = x{total['total_ratio']:.2f}; "
              f"geomean x{total['geomean_ratio']:.2f}; max x{total['max_ratio']:.2f} (bound x{BOUND})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
