"""``kernelfalcon verify TASK.py CANDIDATE.py``: judge one candidate with the trusted checker."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kernelfalcon.checker.options import SHAPE_PROFILES
from pytest_kernelfalcon.core.verdict import Category, Verdict

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.checker import CheckOptions
    from pytest_kernelfalcon.executor.base import Executor
    from pytest_kernelfalcon.executor.deadline import Deadline


EXIT_CODES = """exit codes:
  0  the candidate was accepted
  1  the candidate was rejected (the verdict's category says why)
  2  bad usage: an option, an unreadable or malformed task or candidate file, an impossible device
  3  harness error: the harness or the machine failed (e.g. a missing package, the command's --deadline
     passed while it waited for a lock, a worker or a job), not the candidate"""

DEADLINE_JOBS = 5  # the default deadline: this many jobs' --timeout (the default profile runs up to five)
WATCHDOG_GRACE_S = 10.0  # past the deadline, a command still running after this is ended from outside


class _UsageError(Exception):
    pass


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help; the exit codes kept as written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Print usage and the message, then raise instead of exiting."""
        self.print_usage(sys.stderr)
        print(f"kernelfalcon verify: error: {message}", file=sys.stderr)
        raise _UsageError("")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``kernelfalcon verify``."""
    p = _Parser(prog="kernelfalcon verify", description="Judge one candidate with the trusted checker.",
                epilog=EXIT_CODES, formatter_class=_HelpFormatter)
    p.add_argument("task", type=Path, help="KernelBench-format task file (Model, get_inputs, get_init_inputs)")
    p.add_argument("candidate", type=Path, help="candidate file defining ModelNew")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="cpu runs Triton through TRITON_INTERPRET=1; auto: cuda if available")
    p.add_argument("--shapes", choices=("auto", *SHAPE_PROFILES), default="auto",
                   help="check profile: default (= auto: the task's plan, official on cuda and scaled on cpu, "
                        "plus Hypothesis-drawn sizes and values and an address-reuse trial), official "
                        "(exactly KernelBench's check), scaled, fuzz")
    p.add_argument("--seeds", type=int, default=3, help="trials (fresh inputs) per shape plan")
    p.add_argument("--seed", type=int, default=None, help="base seed (replays a fuzz run)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="dtype of inputs, weights and outputs (tolerance fp32 1e-4, bf16/fp16 1e-2)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per child process")
    p.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                   help=f"seconds for the whole command, every wait included (locks, GPU memory, workers' start, "
                        f"jobs); past it the verdict is harness_error naming what was waiting, exit 3, every child "
                        f"process killed (default: {DEADLINE_JOBS} x --timeout)")
    p.add_argument("--data-path", choices=("auto", "files", "resident"), default="auto",
                   help="resident: inputs, reference and comparison stay on the device (official shapes; "
                        "auto: for official inputs and outputs on cuda over 64M elements)")
    p.add_argument("--entry", default="ModelNew", help="class name in the candidate file")
    p.add_argument("--no-audit", action="store_true", help="plain equivalence check (torch allowed)")
    p.add_argument("--allow-torch", default="", metavar="OP[,OP...]",
                   help="hybrid policy: accept these aten ops inside forward (e.g. convolution for a Triton "
                        "epilogue), every other rule unchanged; the verdict lists what it allowed")
    p.add_argument("--precision", choices=("fp32", "tf32"), default="fp32",
                   help="tf32: accept TF32-class error (10x the reference's own error with TF32-rounded inputs "
                        "and weights); fp32 rejects it with a verdict that says so")
    # warm is the default: on an H100 it judged a first candidate at the default profile in 0.57x the time of
    # prestart (geometric mean of 3 tasks, benchmarks/results/2026-12-07-h100-session8/profile_speed.md)
    p.add_argument("--executor", choices=("cold", "warm", "prestart"), default="warm",
                   help="cold: a fresh Python per job; warm: one pre-imported worker forks each job (each job "
                        "skips the imports of torch and triton; CUDA starts in the job); prestart: two "
                        "single-use workers start importing torch at once, in the background")
    p.add_argument("--reference-cache", default="auto", metavar="DIR|auto|off",
                   help="keep reference runs in DIR for later checks of the same task (content-addressed; "
                        "auto: ~/.cache/kernelfalcon/references, only where candidates run as another uid, "
                        "i.e. as root; a DIR given is used even where a candidate could read it)")
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
    if verdict.precision != "fp32":
        lines.append(f"  precision {verdict.precision} (TF32-class error accepted)")
    if verdict.allowed_torch:
        lines.append(f"  hybrid: torch allowed for {'; '.join(verdict.allowed_torch)}")
    lines += kernelbench_lines(verdict)
    return "\n".join(lines)


def kernelbench_lines(verdict: Verdict) -> list[str]:
    """The KernelBench-comparable verdict, and why it differs from ours (one line each)."""
    kb = verdict.kernelbench
    if kb is None:
        return []
    lines = [f"  KernelBench's eval would say: {kb.label().upper()} ({kb.detail}; {kb.source}, sizes {kb.sizes_text()})"]
    if kb.reason:
        lines.append(f"  why ours differs: {kb.reason}" if kb.passed is not None else f"  {kb.reason}")
    return lines


def _options(args: argparse.Namespace) -> CheckOptions:
    from pytest_kernelfalcon.checker.checker import CheckOptions, resolve_device
    from pytest_kernelfalcon.checker.options import resident_fits

    device = resolve_device(args.device)
    if device == "cuda" and not _cuda_available():
        raise _UsageError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    shapes = "default" if args.shapes == "auto" else args.shapes
    if args.seeds < 1 or args.timeout <= 0 or (args.deadline is not None and args.deadline <= 0):
        raise _UsageError("--seeds must be >= 1, --timeout and --deadline > 0")
    if args.data_path == "resident" and not resident_fits(shapes, device):
        raise _UsageError("--data-path resident checks official shapes only")
    from pytest_kernelfalcon.core.ops import parse_allowed

    try:
        allowed = parse_allowed(args.allow_torch)
    except ValueError as exc:
        raise _UsageError(f"--allow-torch: {exc}") from None
    return CheckOptions(device=device, shapes=shapes, seeds=args.seeds, seed=args.seed, dtype=args.dtype,
                        timeout_s=args.timeout, entry=args.entry, audit=not args.no_audit,
                        data_path=args.data_path, reference_cache=args.reference_cache or "off",
                        precision=args.precision, allow_torch=allowed)


def main(argv: list[str] | None = None) -> int:
    """Run ``kernelfalcon verify``; return 0 accepted, 1 rejected, 2 bad usage, 3 harness error."""
    import time

    from pytest_kernelfalcon.checker.checker import verify_candidate

    started_at = time.time()  # the benchmark's process start ends here
    try:
        args = build_parser().parse_args(argv)
        _check_files(args.task, args.candidate)
        options = _options(args)
    except _UsageError as exc:
        if str(exc):
            print(f"kernelfalcon verify: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    deadline = _deadline(args)
    done = _watchdog(deadline, args, options, started_at)
    with deadline.waiting("the executor's start"):
        executor = _executor(args.executor, options)  # first: its workers import torch while this process does
    try:
        with deadline.waiting("this command's share of the cores (the harness registry)"):
            _bound_own_threads()
        verdict = verify_candidate(args.task, args.candidate, options, executor, cancel=deadline)
        verdict = verdict.naming(str(args.candidate))
    finally:
        with deadline.waiting("the executor's workers to end"):
            executor.close()
    done.set()
    return _report(verdict, args, started_at)


def _report(verdict: Verdict, args: argparse.Namespace, started_at: float) -> int:
    """Print the verdict (JSON or the summary); return the exit code."""
    if args.json:
        print(json.dumps({**verdict.to_json(), "task": str(args.task), "candidate": str(args.candidate),
                          "cli_started_at": started_at}), flush=True)
    else:
        print(summary(verdict, args.task, args.candidate), flush=True)
    if verdict.category is not None and verdict.category.value == "harness_error":
        return 3
    return 0 if verdict.passed else 1


def _deadline(args: argparse.Namespace) -> Deadline:
    from pytest_kernelfalcon.executor.deadline import Deadline

    seconds = args.deadline if args.deadline is not None else DEADLINE_JOBS * args.timeout
    return Deadline(seconds, what="kernelfalcon verify")


def _watchdog(deadline: Deadline, args: argparse.Namespace, options: CheckOptions,
              started_at: float) -> threading.Event:
    """Start the thread that ends the command from outside if it still runs ``WATCHDOG_GRACE_S`` past its
    deadline (a wait nobody bounded): the verdict names the stage, every child is killed, exit 3."""
    done = threading.Event()
    main_thread = threading.get_ident()

    def watch() -> None:
        if done.wait((deadline.remaining() or 0.0) + WATCHDOG_GRACE_S):
            return
        from pytest_kernelfalcon.executor.base import kill_descendants
        from pytest_kernelfalcon.executor.deadline import DeadlinePassed

        passed = DeadlinePassed(deadline.passed_in or deadline.stage(main_thread), deadline.seconds, deadline.what)
        verdict = Verdict.failed(Category.HARNESS_ERROR, str(passed), device=options.device, dtype=options.dtype,
                                 audit={"deadline": {"stage": passed.stage, "seconds": passed.seconds}})
        kill_descendants()
        code = _report(verdict, args, started_at)
        os._exit(code)

    threading.Thread(target=watch, name="kf-watchdog", daemon=True).start()
    return done


def _bound_own_threads() -> None:
    """The comparison runs here: take this command's share of the cores, as its children do."""
    import torch

    from pytest_kernelfalcon.executor.threads import thread_share

    torch.set_num_threads(thread_share())


def _executor(kind: str, options: CheckOptions) -> Executor:
    """The jobs' executor; as root each job runs as its own uid (as the plugin's warm workers do), which
    also keeps the reference cache out of a candidate's reach."""
    from pytest_kernelfalcon.core.isolation import DEFAULT_POLICY, is_root

    if kind in ("warm", "prestart"):
        from pytest_kernelfalcon.executor.warm import WarmExecutor

        if kind == "prestart":
            return WarmExecutor(pool_size=1, device=options.device, gpu=options.gpu, mode="once", spares=1)
        return WarmExecutor(pool_size=1, device=options.device, gpu=options.gpu)
    from pytest_kernelfalcon.executor.cold import ColdExecutor

    return ColdExecutor(isolation=DEFAULT_POLICY if is_root() else None)


def _check_files(task: Path, candidate: Path) -> None:
    """Raise ``_UsageError`` (one line) for an unreadable candidate or a task file that is no task."""
    from pytest_kernelfalcon.core.tasks import task_problem

    if not candidate.is_file() or not _readable(candidate):
        raise _UsageError(f"cannot read candidate {candidate}")
    problem = task_problem(task) if task.is_file() else f"cannot read task file {task}"
    if problem is not None:
        raise _UsageError(problem)



def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _readable(path: Path) -> bool:
    try:
        path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return True
