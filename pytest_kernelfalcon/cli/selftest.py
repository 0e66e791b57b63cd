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
    p.add_argument("-j", "--jobs", type=int, default=1, help="tasks judged at once (default 1)")
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


def _progress(done: int, total: int, row: SelftestRow) -> None:
    extra = f" {row.detail[:160]}" if row.status != "ok" else ""
    print(f"[{done}/{total}] {row.task}: {row.status} ({row.wall_s:.1f} s){extra}", file=sys.stderr, flush=True)


def render(rows: list[SelftestRow], counts: dict[str, int]) -> str:
    """Return the end-of-run text: defects and cannot-run tasks with their reasons, then the counts."""
    lines = []
    for status, title in (("defect", "defects"), ("cannot_run", "cannot run here")):
        listed = [r for r in rows if r.status == status]
        if listed:
            lines.append(f"{title} ({len(listed)}):")
            lines += [f"  {r.task}: own {r.own or '-'}, torch copy {r.torch_copy or '-'}: {r.detail}" for r in listed]
    lines.append(f"{counts['tasks']} tasks: {counts['ok']} ok, {counts['defect']} defects, "
                 f"{counts['cannot_run']} cannot run here; own candidate passed {counts['own_passed']}, "
                 f"torch copy rejected {counts['copy_rejected']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``kernelfalcon selftest``; return 0 no defect, 1 defects, 2 bad usage."""
    from pytest_kernelfalcon.checker.selftest import run_selftest, tally
    from pytest_kernelfalcon.core.tasks import discover_tasks

    try:
        args = build_parser().parse_args(argv)
        options = _options(args)
        tasks = [t for t in discover_tasks(args.paths) if args.match in t.id]
        if not tasks:
            raise _UsageError(f"no task files under {' '.join(map(str, args.paths))}"
                              + (f" matching -k {args.match!r}" if args.match else ""))
    except _UsageError as exc:
        print(f"kernelfalcon selftest: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    rows = run_selftest(tasks, options, args.jobs, None if args.quiet else _progress)
    counts = tally(rows)
    print(render(rows, counts))
    if args.json is not None:
        meta = {"device": options.device, "shapes": options.shapes,
                "seeds": args.seeds}
        args.json.write_text(json.dumps({"meta": meta, "counts": counts,
                                         "tasks": [r.to_json() for r in rows]}, indent=1) + "\n")
    return 1 if counts["defect"] else 0
