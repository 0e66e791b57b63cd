"""``kernelfalcon selftest DIR...``: judge every task of a task set with candidates of known verdict."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.checker.options import SHAPE_PROFILES

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.options import CheckOptions
    from pytest_kernelfalcon.checker.selftest import SelftestRow

EXIT_CODES = """For every task: its Model judged as its own candidate (audit off) must pass, and a torch copy
renamed ModelNew must be rejected by the full audit (torch_compute or no_triton_launch).
Anything else is a harness defect. Tasks that cannot run here are listed apart.

exit codes:
  0  no defect (tasks that cannot run here do not count)
  1  at least one defect
  2  bad usage: an option, a path with no task files, an impossible device"""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Print usage and the message, then raise instead of exiting."""
        self.print_usage(sys.stderr)
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``kernelfalcon selftest``."""
    p = _Parser(prog="kernelfalcon selftest", description="Self-test the checker on a task set.",
                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="task files or directories of them")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="cpu runs Triton through TRITON_INTERPRET=1; auto: cuda if available (default auto)")
    p.add_argument("--shapes", choices=("auto", *SHAPE_PROFILES), default="auto",
                   help="check profile (auto: default - the task's plan plus drawn sizes and values)")
    p.add_argument("--seeds", type=int, default=2, help="trials per shape plan (default 2)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per child process (default 300)")
    p.add_argument("-k", dest="match", default="", help="only tasks whose id contains this text")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="only every N-th task from the I-th (1-based; in natural task order), e.g. 1/2 and 2/2")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="start no task after this many seconds; tasks left are listed as not run (with --json, "
                        "rows are written as they finish)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="tasks judged at once (default 1)")
    p.add_argument("--executor", choices=("warm", "cold"), default="warm",
                   help="warm: forked warm workers, as the pytest plugin runs jobs; cold: a fresh process per "
                        "job (default warm)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows and counts to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return p


def _options(args: argparse.Namespace) -> CheckOptions:
    from pytest_kernelfalcon.checker.checker import CheckOptions, resolve_device

    device = resolve_device(args.device)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise _UsageError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    if args.seeds < 1 or args.timeout <= 0 or args.jobs < 1:
        raise _UsageError("--seeds and --jobs must be >= 1 and --timeout > 0")
    shapes = "default" if args.shapes == "auto" else args.shapes
    return CheckOptions(device=device, shapes=shapes, seeds=args.seeds, timeout_s=args.timeout)


def brief(detail: str, width: int = 160) -> str:
    """The start of a detail and, when it runs over, its last non-empty line (the exception, not mid-traceback)."""
    lines = [line.strip() for line in detail.strip().splitlines() if line.strip()]
    if len(detail) <= width or not lines:
        return " ".join(lines)
    return f"{lines[0][:width // 2]} ... {lines[-1][-width:]}"


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise _UsageError(f"--shard {text!r}: expected I/N, e.g. 1/2") from None
    if not 1 <= i <= n:
        raise _UsageError(f"--shard {text!r}: I must be between 1 and N")
    return i, n


def _progress(done: int, total: int, row: SelftestRow) -> None:
    extra = f" {brief(row.detail)}" if row.status != "ok" else ""
    print(f"[{done}/{total}] {row.task}: {row.status} ({row.wall_s:.1f} s){extra}", file=sys.stderr, flush=True)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def facts_table(rows: list[SelftestRow]) -> list[str]:
    """One line per task with facts: reference time and peak memory, input kinds, low-signal, degenerate, nondet."""
    lines = ["facts (reference forward ms, peak MiB, input kinds, init input kinds, outputs; "
             "L low-signal, D degenerate, N nondeterministic):"]
    for r in rows:
        f = r.facts
        if f is None:
            continue
        flags = "".join(c for c, on in (("L", f.low_signal), ("D", f.degenerate), ("N", f.nondeterministic)) if on)
        ms = "-" if f.reference_s is None else f"{f.reference_s * 1e3:.1f}"
        why = "; ".join(f.degenerate + f.nondeterministic + ([", ".join(f.low_signal)] if f.low_signal else []))
        lines.append(f"  {flags:3} {r.task}: {ms} ms, {_mib(f.peak_bytes)} MiB, {'/'.join(f.input_kinds)}, "
                     f"init {'/'.join(f.init_kinds) or '-'}, {f.output_count} out"
                     + (f": {why}" if why else ""))
    return lines


def render(rows: list[SelftestRow], counts: dict[str, int]) -> str:
    """Return the end-of-run text: the facts table, defects and cannot-run tasks with their reasons, the counts."""
    lines = facts_table(rows)
    for status, title in (("defect", "defects"), ("cannot_run", "cannot run here"),
                          ("not_run", "not run (time budget spent)")):
        listed = [r for r in rows if r.status == status]
        if listed:
            lines.append(f"{title} ({len(listed)}):")
            lines += [f"  {r.task}: own {r.own or '-'}, torch copy {r.torch_copy or '-'}: {r.detail}" for r in listed]
    lines.append(f"{counts['tasks']} tasks: {counts['ok']} ok, {counts['defect']} defects, "
                 f"{counts['cannot_run']} cannot run here, {counts['not_run']} not run; own candidate passed {counts['own_passed']}, "
                 f"torch copy rejected {counts['copy_rejected']}; low-signal {counts['low_signal']}, "
                 f"degenerate {counts['degenerate']}, nondeterministic {counts['nondeterministic']}, "
                 f"int/bool inputs {counts['int_or_bool_inputs']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``kernelfalcon selftest``; return 0 no defect, 1 defects, 2 bad usage."""
    from pytest_kernelfalcon.checker.selftest import run_selftest, tally
    from pytest_kernelfalcon.core.tasks import discover_tasks

    try:
        args = build_parser().parse_args(argv)
        options = _options(args)
        missing = [str(p) for p in args.paths if not Path(p).exists()]
        if missing:  # a mistyped task name is not silently left out of the run
            raise _UsageError(f"no such file or directory: {' '.join(missing)}")
        tasks = [t for t in discover_tasks(args.paths) if args.match in t.id]
        shard = _shard(args.shard)
        if shard is not None:
            tasks = tasks[shard[0] - 1::shard[1]]
        if args.budget is not None and args.budget <= 0:
            raise _UsageError("--budget must be > 0 seconds")
        if not tasks:
            raise _UsageError(f"no task files under {' '.join(map(str, args.paths))}"
                              + (f" matching -k {args.match!r}" if args.match else ""))
    except _UsageError as exc:
        print(f"kernelfalcon selftest: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    meta = {"device": options.device, "shapes": options.shapes, "seeds": args.seeds, "executor": args.executor, "shard": args.shard,
            "budget_s": args.budget, "tasks_asked": len(tasks)}
    done: list[SelftestRow] = []

    def progress(index: int, total: int, row: SelftestRow) -> None:
        done.append(row)
        if not args.quiet:
            _progress(index, total, row)
        if args.json is not None:  # rewritten after every task: a run cut short still leaves its rows
            _write_json(args.json, meta, done, complete=False)

    rows = run_selftest(tasks, options, args.jobs, progress, args.executor, args.budget)
    counts = tally(rows)
    print(render(rows, counts))
    if args.json is not None:
        _write_json(args.json, meta, rows, complete=True)
    return 1 if counts["defect"] else 0


def _write_json(path: Path, meta: dict[str, object], rows: list[SelftestRow], complete: bool) -> None:
    from pytest_kernelfalcon.checker.selftest import tally

    body = {"meta": {**meta, "complete": complete}, "counts": tally(rows), "tasks": [r.to_json() for r in rows]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    tmp.replace(path)
