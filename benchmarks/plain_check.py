"""A plain KernelBench-style correctness check of one candidate, the baseline of judge_speed.py.

Runs in a fresh process, as KernelBench's own eval does for one kernel: import the task and
the candidate, build ``Model`` and ``ModelNew`` from the same seed (then copy the reference's
state into the candidate, by name or else by order), and for each trial seed draw fresh inputs
with ``get_inputs()``, move them to the device, run both models and compare with
``torch.allclose``. No isolation, no audit, no reference cache: the cheapest honest check.

    python benchmarks/plain_check.py TASK.py CANDIDATE.py [--device cuda|cpu] [--trials 5]
        [--atol 1e-4] [--rtol 1e-4] [--override NAME=VALUE ...]

``--override`` rewrites a module-level size constant of the task before it runs (``dim=256``,
or one list item: ``layer_sizes[0]=2048``), so the baseline runs the sizes the checker chose
for ``--shapes scaled``. TF32 is off for both models (as the checker sets it for the
reference). Prints one JSON line: ``passed``, ``detail``, the phase seconds and the absolute
time (``time.time()``) at which imports and device start-up were done, so the caller can add
the process start it measured.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import sys
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

_TORCH_IMPORTED_AT = time.time()


@dataclass
class Phases:
    """Seconds spent in each phase of the check (all trials together)."""

    device_init_s: float = 0.0
    reference_s: float = 0.0
    inputs_s: float = 0.0
    candidate_s: float = 0.0
    compare_s: float = 0.0


@dataclass
class PlainResult:
    """What the check prints: the outcome, the phases, and when start-up ended."""

    passed: bool
    detail: str
    state_copy: str
    trials: int
    phases: Phases = field(default_factory=Phases)
    imports_done_at: float = 0.0
    ready_at: float = 0.0


def parse_overrides(items: list[str]) -> dict[str, dict[int | None, int]]:
    """Return ``{name: {index or None: value}}`` from ``NAME=VALUE`` / ``NAME[I]=VALUE`` items."""
    out: dict[str, dict[int | None, int]] = {}
    for item in items:
        key, _, value = item.partition("=")
        name, _, rest = key.partition("[")
        index = int(rest.rstrip("]")) if rest else None
        out.setdefault(name.strip(), {})[index] = int(value)
    return out


def _rewrite(node: ast.Assign, changes: dict[int | None, int]) -> None:
    if None in changes:
        node.value = ast.Constant(changes[None])
        return
    if not isinstance(node.value, ast.List | ast.Tuple):
        raise ValueError(f"cannot override items of a non-literal list at line {node.lineno}")
    for index, value in changes.items():
        node.value.elts[index] = ast.Constant(value)


def load_task(path: Path, overrides: dict[str, dict[int | None, int]]) -> types.ModuleType:
    """Import a task file with its module-level size constants rewritten in the source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    seen = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in overrides:
                _rewrite(node, overrides[target.id])
                seen.add(target.id)
    missing = set(overrides) - seen
    if missing:
        raise ValueError(f"no module-level assignment for {sorted(missing)} in {path}")
    ast.fix_missing_locations(tree)
    module = types.ModuleType("plain_task")
    module.__file__ = str(path)
    sys.modules["plain_task"] = module
    exec(compile(tree, str(path), "exec"), module.__dict__)
    return module


def load_candidate(path: Path) -> types.ModuleType:
    """Import the candidate file as a module (Triton needs its source on disk)."""
    spec = importlib.util.spec_from_file_location("plain_candidate", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["plain_candidate"] = module
    spec.loader.exec_module(module)
    return module


def copy_state(ref: torch.nn.Module, new: torch.nn.Module) -> str:
    """Copy the reference's parameters and buffers into the candidate; say how it matched."""
    src, dst = ref.state_dict(), new.state_dict()
    if not src:
        return "none-needed"
    if set(src) == set(dst) and all(src[k].shape == dst[k].shape for k in src):
        new.load_state_dict(src)
        return "by_name"
    if len(src) == len(dst) and all(a.shape == b.shape for a, b in zip(src.values(), dst.values(), strict=True)):
        new.load_state_dict(dict(zip(dst, src.values(), strict=True)))
        return "by_order"
    return "unmatched"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _to_device(values: list[Any], device: str) -> list[Any]:
    return [v.to(device) if isinstance(v, torch.Tensor) else v for v in values]


def _as_list(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, list | tuple) else [out]


def compare(ref_out: Any, new_out: Any, atol: float, rtol: float) -> str | None:
    """Return why the outputs differ, or None when every output is allclose."""
    refs, news = _as_list(ref_out), _as_list(new_out)
    if len(refs) != len(news):
        return f"{len(news)} outputs, expected {len(refs)}"
    for i, (a, b) in enumerate(zip(refs, news, strict=True)):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape:
            return f"output {i}: shape {getattr(b, 'shape', type(b))}, expected {tuple(a.shape)}"
        if not torch.allclose(a, b.to(a.dtype), atol=atol, rtol=rtol):
            return f"output {i}: max abs diff {(a - b).abs().max().item():.3g}"
    return None


class _Clock:
    """Adds the seconds of each ``with clock.phase(name)`` block to one ``Phases`` record."""

    def __init__(self, phases: Phases, device: str) -> None:
        self.phases, self.device = phases, device

    def phase(self, name: str) -> _Clock:
        self._name = name
        return self

    def __enter__(self) -> None:
        _sync(self.device)
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        _sync(self.device)
        field_name = f"{self._name}_s"
        setattr(self.phases, field_name, getattr(self.phases, field_name) + time.perf_counter() - self._t0)


def run_check(args: argparse.Namespace) -> PlainResult:
    """Import, build, run and compare; return the result with its phase split."""
    task = load_task(args.task, parse_overrides(args.override))
    cand = load_candidate(args.candidate)
    result = PlainResult(passed=False, detail="", state_copy="", trials=args.trials,
                         imports_done_at=time.time())
    clock = _Clock(result.phases, args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with clock.phase("device_init"):
        if args.device == "cuda":
            torch.zeros(1, device="cuda")
    result.ready_at = time.time()
    with torch.no_grad():
        with clock.phase("reference"):
            init = task.get_init_inputs()
            torch.manual_seed(args.seed)
            ref = task.Model(*init).to(args.device)
        with clock.phase("candidate"):
            torch.manual_seed(args.seed)
            new = cand.ModelNew(*init).to(args.device)
            result.state_copy = copy_state(ref, new)
        for trial in range(args.trials):
            with clock.phase("inputs"):
                torch.manual_seed(args.seed + trial)
                inputs = _to_device(task.get_inputs(), args.device)
            with clock.phase("reference"):
                ref_out = ref(*inputs)
            with clock.phase("candidate"):
                new_out = new(*inputs)
            with clock.phase("compare"):
                why = compare(ref_out, new_out, args.atol, args.rtol)
            if why is not None:
                result.detail = f"trial {trial} (seed {args.seed + trial}): {why}"
                return result
    result.passed = True
    result.detail = f"passed {args.trials} trial(s), atol={args.atol:g} rtol={args.rtol:g}"
    return result


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the plain check."""
    p = argparse.ArgumentParser(description="Plain KernelBench-style check of one candidate.")
    p.add_argument("task", type=Path)
    p.add_argument("candidate", type=Path)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--override", action="append", default=[], metavar="NAME=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the check and print its JSON line; exit 0 passed, 1 failed or raised."""
    args = build_parser().parse_args(argv)
    try:
        result = run_check(args)
    except Exception as exc:  # the candidate may raise anything; report it as a failure
        result = PlainResult(passed=False, detail=f"{type(exc).__name__}: {exc}"[:500], state_copy="",
                             trials=args.trials)
    print(json.dumps({**asdict(result), "torch_imported_at": _TORCH_IMPORTED_AT}))
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
