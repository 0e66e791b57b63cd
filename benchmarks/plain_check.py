"""A plain KernelBench-style correctness check of one candidate, the baseline of judge_speed.py and kb_agreement.py.

Runs in a fresh process, as KernelBench's own eval does for one kernel: import the task and
the candidate, build ``Model`` and ``ModelNew`` from the same seed (then copy the reference's
state into the candidate, by name or else by order), and for each trial seed draw fresh inputs
with ``get_inputs()``, move them to the device, run both models and compare with
``torch.allclose``. No isolation, no audit, no reference cache: the cheapest honest check.

    python benchmarks/plain_check.py TASK.py CANDIDATE.py [--device cuda|cpu] [--trials 5]
        [--atol 1e-4] [--rtol 1e-4] [--override NAME=VALUE ...] [--kernelbench]

``--override`` rewrites a module-level size constant of the task before it runs (``dim=256``,
or one list item: ``layer_sizes[0]=2048``), so the baseline runs the sizes the checker chose
for ``--shapes scaled``; the candidate's own constants of those names follow, as the checker's
do. TF32 is off for both models (as the checker sets it for the reference). Prints one JSON line:
``passed``, ``detail``, the phase seconds and the absolute time (``time.time()``) at which imports
and device start-up were done, so the caller can add the process start it measured.

``--kernelbench`` is KernelBench's own eval settings (``eval_kernel_against_ref`` of v0/v0.1):
atol = rtol = 1e-2 and 5 trials unless given, trial seeds drawn from ``torch.randint(0, 2**32 - 1)``
after seeding 42, both seeds set before each draw (CPU and CUDA), the seed set before
``get_init_inputs()`` and before building each model, no state copied, TF32 as torch starts
(the reference's cuDNN convolutions in TF32), outputs compared as they are (a dtype that differs
makes ``torch.allclose`` raise: a failure). Its own code, written apart from the checker's
KernelBench-comparable verdict, so that ``kb_agreement.py`` can hold one against the other.
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


def load_candidate(path: Path, overrides: dict[str, dict[int | None, int]] | None = None) -> types.ModuleType:
    """Import the candidate file as a module (Triton needs its source on disk); its own int constants named
    by ``overrides`` follow them (a copy beside the file, so that Triton still reads a source file)."""
    if overrides:
        path = _following(path, overrides)
    spec = importlib.util.spec_from_file_location("plain_candidate", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["plain_candidate"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        if path.name.startswith("plain_candidate_"):  # the rewritten copy: Triton has read its kernels' source
            path.unlink(missing_ok=True)
    return module


def _following(path: Path, overrides: dict[str, dict[int | None, int]]) -> Path:
    """A copy of the candidate with its module-level int constants of the overridden names rewritten."""
    import tempfile

    tree = ast.parse(path.read_text(), filename=str(path))
    changed = False
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
            if None in overrides.get(name, {}) and isinstance(value, ast.Constant) and type(value.value) is int:
                node.value, changed = ast.Constant(overrides[name][None]), True
    if not changed:
        return path
    ast.fix_missing_locations(tree)
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="plain_candidate_", delete=False) as handle:
        handle.write(ast.unparse(tree))
    return Path(handle.name)


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


def compare(ref_out: Any, new_out: Any, atol: float, rtol: float, cast: bool = True) -> str | None:
    """Return why the outputs differ, or None when every output is allclose (``cast``: the candidate's
    outputs in the reference's dtype first; without it a dtype that differs makes allclose raise)."""
    refs, news = _as_list(ref_out), _as_list(new_out)
    if len(refs) != len(news):
        return f"{len(news)} outputs, expected {len(refs)}"
    for i, (a, b) in enumerate(zip(refs, news, strict=True)):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape:
            return f"output {i}: shape {getattr(b, 'shape', type(b))}, expected {tuple(a.shape)}"
        if not torch.allclose(a, b.to(a.dtype) if cast else b, atol=atol, rtol=rtol):
            return f"output {i}: max abs diff {(a - b).abs().max().item():.3g}"
    return None


KB_SEED, KB_TRIALS, KB_TOLERANCE = 42, 5, 1e-2  # KernelBench's eval_kernel_against_ref (v0, v0.1)


def kb_seeds(seed: int, trials: int) -> list[int]:
    """KernelBench's trial seeds: ``torch.randint(0, 2**32 - 1)`` after seeding ``seed``."""
    torch.manual_seed(seed)
    return [int(torch.randint(0, 2**32 - 1, (1,)).item()) for _ in range(trials)]


def set_seed(seed: int) -> None:
    """KernelBench's ``set_seed``: the CPU generator and the current CUDA device's."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed(seed)


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


def _reference_model(task: Any, args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """Model from the seed, and the init inputs (KernelBench's settings: seeded too, on the device)."""
    if not args.kernelbench:
        init = list(task.get_init_inputs())
        torch.manual_seed(args.seed)
        return task.Model(*init).to(args.device), init
    set_seed(args.seed)
    init = _to_device(list(task.get_init_inputs()), args.device)
    set_seed(args.seed)
    return task.Model(*init).to(args.device), init


def _candidate_model(cand: Any, init: list[Any], ref: Any, args: argparse.Namespace, result: PlainResult) -> Any:
    """ModelNew from the same seed; the reference's state copied unless KernelBench's settings say not."""
    (set_seed if args.kernelbench else torch.manual_seed)(args.seed)
    new = cand.ModelNew(*init).to(args.device)
    result.state_copy = "none (KernelBench copies no state)" if args.kernelbench else copy_state(ref, new)
    return new


def run_check(args: argparse.Namespace) -> PlainResult:
    """Import, build, run and compare; return the result with its phase split."""
    overrides = parse_overrides(args.override)
    task = load_task(args.task, overrides)
    cand = load_candidate(args.candidate, overrides)
    result = PlainResult(passed=False, detail="", state_copy="", trials=args.trials,
                         imports_done_at=time.time())
    clock = _Clock(result.phases, args.device)
    if not args.kernelbench:  # KernelBench's eval keeps torch's defaults (cuDNN convolutions in TF32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    with clock.phase("device_init"):
        if args.device == "cuda":
            torch.zeros(1, device="cuda")
    result.ready_at = time.time()
    seeds = kb_seeds(args.seed, args.trials) if args.kernelbench else [args.seed + t for t in range(args.trials)]
    with torch.no_grad():
        with clock.phase("reference"):
            ref, init = _reference_model(task, args)
        with clock.phase("candidate"):
            new = _candidate_model(cand, init, ref, args, result)
        for trial, seed in enumerate(seeds):
            with clock.phase("inputs"):
                (set_seed if args.kernelbench else torch.manual_seed)(seed)
                inputs = _to_device(task.get_inputs(), args.device)
            # named as KernelBench's eval names them: a candidate reading its caller's frames finds what it
            # would find there
            with clock.phase("reference"):
                output = ref(*inputs)
            with clock.phase("candidate"):
                output_new = new(*inputs)
            with clock.phase("compare"):
                why = compare(output, output_new, args.atol, args.rtol, cast=not args.kernelbench)
            if why is not None:
                result.detail = f"trial {trial} (seed {seed}): {why}"
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
    p.add_argument("--trials", type=int, default=None, help="default 5")
    p.add_argument("--seed", type=int, default=KB_SEED)
    p.add_argument("--atol", type=float, default=None, help="default 1e-4 (--kernelbench: 1e-2)")
    p.add_argument("--rtol", type=float, default=None, help="default 1e-4 (--kernelbench: 1e-2)")
    p.add_argument("--override", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--kernelbench", action="store_true",
                   help="KernelBench's eval settings: its tolerance, trial count and seeding, no state copy, "
                        "torch's TF32 defaults, outputs compared as they are")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The arguments, with the defaults of the mode asked for filled in."""
    args = build_parser().parse_args(argv)
    tol = KB_TOLERANCE if args.kernelbench else 1e-4
    args.trials = KB_TRIALS if args.trials is None else args.trials
    args.atol = tol if args.atol is None else args.atol
    args.rtol = tol if args.rtol is None else args.rtol
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the check and print its JSON line; exit 0 passed, 1 failed or raised."""
    args = parse_args(argv)
    try:
        result = run_check(args)
    except Exception as exc:  # the candidate may raise anything; report it as a failure
        result = PlainResult(passed=False, detail=f"{type(exc).__name__}: {exc}"[:500], state_copy="",
                             trials=args.trials)
    print(json.dumps({**asdict(result), "torch_imported_at": _TORCH_IMPORTED_AT}))
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
