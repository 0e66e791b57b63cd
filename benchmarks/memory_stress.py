"""Many checks on one GPU at once (issue 22): no hang, no candidate blamed for memory that others held.

Judges, N at once (``-j``, 4 by default; separate ``kernelfalcon verify --json`` processes, the
default profile, each with the default deadline), two sets whose verdict alone is known to be a pass:

- every correct kernel of ``benchmarks/candidates/`` against its KernelBench task;
- the own ``Model`` of the ``--largest`` (24) level-1 tasks with the largest estimated peak memory
  (``--entry Model --no-audit``: the task judged against itself, as the self-test does). The
  estimate is the bytes of the official inputs, parameters and outputs, measured on the meta
  device here (no GPU needed): the heaviest tasks, which need tens of GiB each.

A row records the verdict, its category, the seconds, and whether a memory retry or a deadline
was involved. Wrong here: a row that is not a pass, above all ``crash`` / ``reference_error`` /
``out_of_memory`` or a hang (no verdict before the process's own timeout). The JSON (``--json``)
is rewritten after every row; with ``--budget`` no row starts after that many seconds (recorded
as not run). The table comes last on stdout.

    PYTHONPATH=$PWD KERNELBENCH_DIR=... python benchmarks/memory_stress.py [--device cuda] [-j 4]
        [--largest 24] [--budget 420] [--json OUT] [--list]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CANDIDATES = REPO / "benchmarks" / "candidates"
MEMORY_WORDS = ("out of memory", "OutOfMemoryError", "CUDA error")


@dataclass
class Row:
    """One judged item."""

    kind: str  # "candidate" | "own Model"
    task: str
    estimate_gib: float | None
    status: str  # pass | fail | hang | error | not_run
    category: str | None = None
    detail: str = ""
    wall_s: float = 0.0
    memory_retry: bool = False


def kb_root() -> Path:
    return Path(os.environ.get("KERNELBENCH_DIR", REPO.parent / "shared" / "kernelbench"))


def estimate_bytes(task: Path) -> int | None:
    """Bytes of the task's official inputs, parameters and outputs, on the meta device (None if it fails)."""
    import importlib.util

    import torch

    try:
        spec = importlib.util.spec_from_file_location(f"kf_mem_{abs(hash(task))}", task)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        with torch.device("meta"):
            inputs = list(module.get_inputs())
            model = module.Model(*module.get_init_inputs())
            out = model(*inputs)
    except Exception:
        return None
    outs = out if isinstance(out, tuple | list) else [out]
    tensors = [*inputs, *model.parameters(), *model.buffers(), *outs]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def largest_tasks(count: int) -> list[tuple[Path, int]]:
    """The ``count`` level-1 tasks with the largest estimate, largest first."""
    found = [(p, estimate_bytes(p)) for p in sorted((kb_root() / "level1").glob("*.py"))]
    sized = [(p, b) for p, b in found if b is not None]
    return sorted(sized, key=lambda pair: -pair[1])[:count]


def items(largest: int) -> list[tuple[str, Path, Path, float | None, list[str]]]:
    """(kind, task, candidate, estimate GiB, extra verify arguments) of every row to judge."""
    rows = []
    for cand in sorted(CANDIDATES.glob("level*/*.py")):
        task = kb_root() / cand.parent.name / cand.name
        size = estimate_bytes(task)
        rows.append(("candidate", task, cand, None if size is None else size / 2**30, []))
    for task, size in largest_tasks(largest):
        rows.append(("own Model", task, task, size / 2**30, ["--entry", "Model", "--no-audit"]))
    return rows


def judge(kind: str, task: Path, cand: Path, gib: float | None, extra: list[str], device: str,
          timeout_s: float) -> Row:
    """Run one ``kernelfalcon verify --json`` and return its row."""
    name = f"{task.parent.name}/{task.stem}"
    cmd = [sys.executable, "-m", "pytest_kernelfalcon.cli", "verify", str(task), str(cand), "--json",
           "--device", device, *extra]
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Row(kind, name, gib, "hang", None, f"no verdict in {timeout_s:g} s", time.monotonic() - start)
    wall = time.monotonic() - start
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return Row(kind, name, gib, "error", None, f"rc {done.returncode}: {done.stderr[-300:]}", wall)
    verdict = json.loads(lines[-1])
    notes = " ".join((verdict.get("audit") or {}).get("harness_notes") or [])
    status = "pass" if verdict["passed"] else "fail"
    if verdict.get("category") == "harness_error" and str(verdict.get("detail")).startswith("cannot run here"):
        status = "cannot_run"  # out of memory even alone: what it gets alone
    return Row(kind, name, gib, status, verdict.get("category"),
               "" if verdict["passed"] else str(verdict.get("detail"))[:400], wall, "run again alone" in notes)


def table(rows: list[Row]) -> str:
    """The rows, then the counts."""
    lines = ["| kind | task | est. GiB | verdict | category | s | memory retry |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        gib = "-" if r.estimate_gib is None else f"{r.estimate_gib:.1f}"
        lines.append(f"| {r.kind} | {r.task} | {gib} | {r.status} | {r.category or '-'} | {r.wall_s:.1f} | "
                     f"{'yes' if r.memory_retry else ''} |")
    judged = [r for r in rows if r.status != "not_run"]
    memory = [r for r in judged if r.status != "pass" and any(w in r.detail for w in MEMORY_WORDS)]
    lines += ["", f"judged {len(judged)} of {len(rows)}: passed {sum(r.status == 'pass' for r in judged)}, "
              f"cannot run here (out of memory even alone) {sum(r.status == 'cannot_run' for r in judged)}, "
              f"hung {sum(r.status == 'hang' for r in judged)}, crash {sum(r.category == 'crash' for r in judged)}, "
              f"reference_error {sum(r.category == 'reference_error' for r in judged)}, "
              f"failures naming memory {len(memory)}, memory retries {sum(r.memory_retry for r in judged)}"]
    for r in judged:
        if r.status != "pass":
            lines.append(f"- {r.task} ({r.kind}): {r.status} {r.category}: {r.detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("-j", "--jobs", type=int, default=4)
    p.add_argument("--largest", type=int, default=24)
    p.add_argument("--budget", type=float, default=420.0, help="no row starts after this many seconds")
    p.add_argument("--timeout", type=float, default=660.0, help="seconds per verify process (a hang past its deadline)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--list", action="store_true", help="print the rows that would be judged and stop")
    args = p.parse_args(argv)
    todo = items(args.largest)
    if args.list:
        for kind, task, cand, gib, _ in todo:
            print(f"{kind:10} {task.parent.name}/{task.stem} {'-' if gib is None else f'{gib:.1f}'} GiB {cand.name}")
        return 0
    rows: list[Row | None] = [None] * len(todo)
    lock, start = threading.Lock(), time.monotonic()
    meta = {"device": args.device, "jobs": args.jobs, "card": _card(), "command": " ".join(sys.argv)}

    def one(index: int) -> None:
        kind, task, cand, gib, extra = todo[index]
        if time.monotonic() - start > args.budget:
            row = Row(kind, f"{task.parent.name}/{task.stem}", gib, "not_run", None, "budget spent")
        else:
            row = judge(kind, task, cand, gib, extra, args.device, args.timeout)
        with lock:
            rows[index] = row
            print(f"[{time.monotonic() - start:6.1f}s] {row.task} ({row.kind}): {row.status} {row.category or ''} "
                  f"{row.wall_s:.1f}s", file=sys.stderr, flush=True)
            if args.json:
                found = [asdict(r) for r in rows if r is not None]
                args.json.write_text(json.dumps({"meta": meta, "elapsed_s": time.monotonic() - start,
                                                 "rows": found}, indent=1))

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, range(len(todo))))
    done = [r for r in rows if r is not None]
    print(f"{meta['card']}; {args.jobs} at once; {time.monotonic() - start:.0f} s")
    print(table(done))
    return 0 if all(r.status in ("pass", "not_run", "cannot_run") for r in done) else 1


def _card() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip() or "no GPU"
    except OSError:
        return "no GPU (nvidia-smi missing)"


if __name__ == "__main__":
    sys.exit(main())
