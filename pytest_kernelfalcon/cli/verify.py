"""``kernelfalcon verify TASK.py CANDIDATE.py``: judge one candidate with the trusted checker."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.core.verdict import Verdict

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.checker import CheckOptions


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Print usage and the message, then raise instead of exiting."""
        self.print_usage(sys.stderr)
        print(f"kernelfalcon verify: error: {message}", file=sys.stderr)
        raise _UsageError("")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``kernelfalcon verify``."""
    p = _Parser(prog="kernelfalcon verify", description="Judge one candidate with the trusted checker.")
    p.add_argument("task", type=Path, help="KernelBench-format task file (Model, get_inputs, get_init_inputs)")
    p.add_argument("candidate", type=Path, help="candidate file defining ModelNew")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="cpu runs Triton through TRITON_INTERPRET=1 (default: cuda if available)")
    p.add_argument("--shapes", choices=("official", "scaled", "fuzz"), default=None,
                   help="size plan (default: official on cuda, scaled on cpu)")
    p.add_argument("--seeds", type=int, default=3, help="trials (fresh inputs) per shape plan")
    p.add_argument("--seed", type=int, default=None, help="base seed (replays a fuzz run)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per child process")
    p.add_argument("--data-path", choices=("auto", "files", "resident"), default="auto",
                   help="resident: inputs, reference and comparison stay on the device (official shapes; "
                        "auto: for official inputs on cuda over 64M elements)")
    p.add_argument("--entry", default="ModelNew", help="class name in the candidate file")
    p.add_argument("--no-audit", action="store_true", help="plain equivalence check (torch allowed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def summary(verdict: Verdict, task: Path, candidate: Path) -> str:
    """Return the short human summary of a verdict."""
    head = "PASS" if verdict.passed else f"FAIL [{verdict.category.value if verdict.category else '?'}]"
    tol = verdict.tolerance
    lines = [
        f"{head} {candidate} vs {task}",
        f"  {verdict.detail}",
        f"  device {verdict.device}, dtype {verdict.dtype}, tf32 {'on' if verdict.tf32 else 'off'}, "
        f"seeds {list(verdict.seeds)}",
        f"  shapes {[dict(s) for s in verdict.shapes]}",
    ]
    if tol is not None:
        lines.append(f"  tolerance {tol.policy} (atol={tol.atol:g}, rtol={tol.rtol:g})")
    if verdict.low_signal:
        lines.append(f"  low-signal task: strengthened inputs ({verdict.audit.get('low_signal_probes')})")
    return "\n".join(lines)


def _options(args: argparse.Namespace) -> CheckOptions:
    from pytest_kernelfalcon.checker.checker import CheckOptions, resolve_device

    device = resolve_device(args.device)
    shapes = args.shapes or ("official" if device == "cuda" else "scaled")
    if args.seeds < 1 or args.timeout <= 0:
        raise _UsageError("--seeds must be >= 1 and --timeout > 0")
    if args.data_path == "resident" and shapes != "official":
        raise _UsageError("--data-path resident checks official shapes only")
    return CheckOptions(device=device, shapes=shapes, seeds=args.seeds, seed=args.seed, dtype=args.dtype,
                        timeout_s=args.timeout, entry=args.entry, audit=not args.no_audit,
                        data_path=args.data_path)


def main(argv: list[str] | None = None) -> int:
    """Run ``kernelfalcon verify``; return 0 accepted, 1 rejected, 2 bad usage or unreadable files."""
    from pytest_kernelfalcon.checker.checker import verify_candidate

    try:
        args = build_parser().parse_args(argv)
        options = _options(args)
    except _UsageError as exc:
        if str(exc):
            print(f"kernelfalcon verify: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    for path in (args.task, args.candidate):
        if not path.is_file() or not _readable(path):
            print(f"kernelfalcon verify: cannot read {path}", file=sys.stderr)
            return 2
    verdict = verify_candidate(args.task, args.candidate, options)
    if args.json:
        print(json.dumps({**verdict.to_json(), "task": str(args.task), "candidate": str(args.candidate)}))
    else:
        print(summary(verdict, args.task, args.candidate))
    return 0 if verdict.passed else 1


def _readable(path: Path) -> bool:
    try:
        path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return True
