"""Cold vs warm candidate execution: overhead per candidate, throughput, and a fault stream.

Both paths in one run, on one device:

* **overhead**: a realistic mix of test-corpus candidates (correct and failing, not the
  timeouts), each verified with the task's reference already cached; overhead = verify
  wall time - the candidate's own import + construction + trials (``Verdict.timings``).
  Median per path and the cold/warm ratio.
* **throughput**: the same mix verified by 4 threads sharing one device (one checker
  per task): candidates per minute, per path.
* **faults**: a stream of inline ReLU candidates with segfault / ``os._exit`` / hang /
  exception / fork spam (and on CUDA an illegal address and an OOM) among correct ones,
  4 threads on the warm pool: verdicts against expectations, zombies, processes left
  under the job uids, GPU memory before / after (``nvidia-smi``).
* **relu** (``--relu``, CUDA): a full official-shape check of level1/19_ReLU (all seeds,
  probes and the audit; the inputs are 6.4 GB, so the checker takes the resident data
  path) on both executors, and the plain way beside them: one fresh process that draws
  KernelBench's inputs on the CPU, moves them to the GPU and compares there, 5 seeds.

    PYTHONPATH=$PWD python benchmarks/executor.py [--device cpu|cuda] [--quick|--full] [--relu]
        [--parts overhead,throughput,faults,relu] [--candidates N] [--faults N] [--shapes official|scaled]
        [--out FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"
sys.path.insert(0, str(REPO / "tests" / "executor"))
WORKERS = 4
CUDA_FAULTS = {
    "illegal_address": ("y = torch.empty_like(x)\n        relu_kernel[(1 << 22,)](x, y, 1 << 40, BLOCK=256)\n"
                        "        torch.cuda.synchronize()", ("runtime_error", "crash")),
    "oom": ("torch.empty((1 << 42,), device=x.device)", ("runtime_error",)),
}


def kernelbench_root() -> Path:
    """Return ``KERNELBENCH_DIR`` or ``../shared/kernelbench`` beside the repo."""
    return Path(os.environ.get("KERNELBENCH_DIR", REPO.parent / "shared" / "kernelbench"))


def corpus_mix(device: str, limit: int) -> list[tuple[str, Path]]:
    """Return up to ``limit`` (candidate key, task path) of the corpus, spread over tasks, no timeouts."""
    data: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())
    by_task: dict[str, list[tuple[str, Path]]] = {}
    for key, entry in sorted(data.items()):
        kind, rel = entry["task"].split(":", 1)
        task = (CORPUS if kind == "corpus" else kernelbench_root()) / rel
        if entry["expected"] != "timeout" and device in entry["devices"] and task.is_file():
            by_task.setdefault(entry["task"], []).append((key, task))
    mix: list[tuple[str, Path]] = []
    while len(mix) < limit and any(by_task.values()):
        for items in by_task.values():  # round robin: every task in the mix
            if items and len(mix) < limit:
                mix.append(items.pop(0))
    return mix


SHAPES = {"cpu": "scaled", "cuda": "official"}  # --shapes overrides


def make_checkers(device: str, executor: Any, tasks: set[Path], timeout_s: float) -> dict[Path, Any]:
    """Return one checker per task on ``executor`` with its reference computed (cached)."""
    from pytest_kernelfalcon.checker.checker import Checker, CheckOptions

    shapes = SHAPES[device]
    checkers = {}
    for task in tasks:
        checker = Checker(CheckOptions(device=device, shapes=shapes, timeout_s=timeout_s), executor)
        checker.reference(task.read_text())
        checkers[task] = checker
    return checkers


def overhead(verdict: Any, wall: float) -> float | None:
    """Return the verify wall time not spent in the candidate's own work (None: no candidate job ran)."""
    t = verdict.timings
    if "candidate_s" not in t:
        return None
    return wall - sum(t.get(f"candidate_{k}", 0.0) for k in ("import_s", "construct_s", "run_s"))


def verify_timed(checker: Any, task: Path, candidate: Path) -> tuple[Any, float]:
    """Verify and return (verdict, wall seconds)."""
    start = time.perf_counter()
    verdict = checker.verify(task, candidate)
    return verdict, time.perf_counter() - start


def shared_checkers(device: str, mix: list[tuple[str, Path]], timeout_s: float,
                    size: int) -> tuple[dict[str, Any], dict[Path, Any]]:
    """Both paths' executors (``size`` workers) and one checker per task, its reference computed on the warm one."""
    executors = {"warm": make_executor("warm", device, size), "cold": make_executor("cold", device, size)}
    return executors, make_checkers(device, executors["warm"], {t for _, t in mix}, timeout_s)


def serial_overheads(device: str, mix: list[tuple[str, Path]], timeout_s: float) -> list[dict[str, Any]]:
    """Both paths, one worker each: verify the mix one by one; median overhead and verdicts per path.

    The references are computed once (on the warm path) and shared: they are not part of
    a candidate's overhead, and the cold path would spend minutes recomputing them.
    """
    executors, checkers = shared_checkers(device, mix, timeout_s, 1)
    rows = []
    for name in ("cold", "warm"):
        serial = []
        for checker in checkers.values():
            checker.executor = executors[name]
        for k, t in mix:
            serial.append(verify_timed(checkers[t], t, CORPUS / k))
            progress(f"{name} {len(serial)}/{len(mix)} {k}: {_name(serial[-1][0])} in {serial[-1][1]:.2f}s")
        over = [o for o in (overhead(v, w) for v, w in serial) if o is not None]
        rows.append({"path": name, "candidates": len(mix), "median_overhead_s": statistics.median(over),
                     "mean_wall_s": statistics.mean(w for _, w in serial),
                     "verdicts": dict(Counter(_name(v) for v, _ in serial))})
    for executor in executors.values():
        executor.close()
    return rows


def throughputs(device: str, mix: list[tuple[str, Path]], timeout_s: float) -> list[dict[str, Any]]:
    """Both paths, 4 workers each sharing the device: candidates per minute over the mix (references shared)."""
    executors, checkers = shared_checkers(device, mix, timeout_s, WORKERS)
    rows = []
    for name in ("cold", "warm"):
        for checker in checkers.values():
            checker.executor = executors[name]
        start = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            done = list(pool.map(lambda kt: checkers[kt[1]].verify(kt[1], CORPUS / kt[0]), mix))
        elapsed = time.perf_counter() - start
        progress(f"{name} throughput: {len(done)} in {elapsed:.1f}s")
        rows.append({"path": name, "candidates": len(done), "seconds": elapsed,
                     "per_min_4_workers": 60 * len(done) / elapsed,
                     "verdicts": dict(Counter(_name(v) for v in done))})
    for executor in executors.values():
        executor.close()
    return rows


def progress(line: str) -> None:
    """One progress line on stderr."""
    print(line, file=sys.stderr, flush=True)


def make_executor(name: str, device: str, size: int) -> Any:
    """Return the executor of a path (both isolated the same way)."""
    from pytest_kernelfalcon.core.isolation import IsolationPolicy
    from pytest_kernelfalcon.executor.cold import ColdExecutor
    from pytest_kernelfalcon.executor.warm import WarmExecutor

    if name == "cold":
        return ColdExecutor(isolation=IsolationPolicy())
    executor = WarmExecutor(pool_size=size, device=device)
    for pool in executor.pools().values():  # start timing with the pool ready
        while pool.ready.qsize() < pool.size:
            time.sleep(0.1)
    return executor


def _name(verdict: Any) -> str:
    return "pass" if verdict.passed else verdict.category.value


def fault_plan(device: str, count: int) -> list[tuple[str, tuple[str, ...]]]:
    """Return ``count`` (fault, accepted verdicts), faults evenly spread among correct ones."""
    from samples import FAULTS

    kinds: dict[str, tuple[str, tuple[str, ...]]] = {k: (v[0], (v[1],)) for k, v in FAULTS.items()}
    if device == "cuda":
        kinds.update(CUDA_FAULTS)
    return [(name, kinds[name][1]) for name in (list(kinds) * count)[:count]]


def fault_source(device: str, fault: str) -> str:
    """Return the candidate source of a fault (CUDA-only faults built on the same template)."""
    from samples import FORWARD, HEADER, candidate_source

    if fault in CUDA_FAULTS:
        return HEADER + FORWARD.replace("{pre}", CUDA_FAULTS[fault][0])
    return candidate_source(fault)


def fault_stream(device: str, count: int, timeout_s: float) -> dict[str, Any]:
    """Run the fault stream on a 4-worker warm pool and check verdicts, zombies, leftovers, GPU memory."""
    from samples import RELU_TASK, write, zombies_of

    tmp = Path(tempfile.mkdtemp(prefix="kf-bench-"))
    task = write(tmp / "relu.py", RELU_TASK)
    plan = fault_plan(device, count)
    files = {f: write(tmp / f"{f}.py", fault_source(device, f)) for f, _ in plan}
    gpu_before = gpu_memory_mib()
    executor = make_executor("warm", device, WORKERS)
    checker = make_checkers(device, executor, {task}, timeout_s)[task]
    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        got = list(pool.map(lambda fa: _name(checker.verify(task, files[fa[0]])), plan))
    elapsed = time.perf_counter() - start
    health = pool_health(executor, zombies_of)
    executor.close()
    time.sleep(1.0)
    shutil.rmtree(tmp, ignore_errors=True)
    wrong = [(f, g) for (f, ok), g in zip(plan, got, strict=True) if g not in ok]
    return {"candidates": len(plan), "seconds": elapsed, "verdicts": dict(Counter(got)), "wrong": wrong,
            **health, "gpu_mib_before": gpu_before, "gpu_mib_after": gpu_memory_mib()}


def pool_health(executor: Any, zombies_of: Any) -> dict[str, Any]:
    """Return live workers, zombies and processes left under the job uids once replacements settle."""
    from pytest_kernelfalcon.executor.isolation import kill_uid

    pools = list(executor.pools().values())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(p.ready.qsize() < p.size for p in pools):
        time.sleep(0.2)
    workers = [w for p in pools for w in p.live if w.alive()]
    left = sum(kill_uid(w.uid) for w in workers if w.uid is not None)  # counts what was still there
    return {"workers_alive": len(workers), "workers_replaced": sum(p.replaced for p in pools),
            "zombies": len(zombies_of({w.proc.pid for w in workers} | {os.getpid()})), "leftover_procs": left}


def gpu_memory_mib() -> int | None:
    """Return used GPU memory (MiB) of the visible card from nvidia-smi, or None."""
    gpu = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                              "-i", gpu], capture_output=True, text=True, timeout=30)
        return int(out.stdout.strip().splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


PLAIN_SEEDS = 5


def relu_official(timeout_s: float) -> list[dict[str, Any]]:
    """Time a full official-shape check of level1/19_ReLU (reference included) on both paths, and the plain way."""
    from pytest_kernelfalcon.checker.checker import Checker, CheckOptions

    task = kernelbench_root() / "level1" / "19_ReLU.py"
    rows = []
    for name in ("cold", "warm"):
        executor = make_executor(name, "cuda", 1)
        checker = Checker(CheckOptions(device="cuda", shapes="official", timeout_s=timeout_s), executor)
        verdict, wall = verify_timed(checker, task, CORPUS / "kb_relu" / "correct.py")
        executor.close()
        rows.append({"path": f"{name} executor", "verdict": _name(verdict), "seconds": wall,
                     "reference_s": verdict.timings.get("reference_s"), "detail": verdict.detail[:300],
                     "trials": len(verdict.seeds), "low_signal": verdict.low_signal, "timings": verdict.timings})
        progress(f"19_ReLU {name}: {_name(verdict)} in {wall:.1f}s {verdict.timings}")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--plain", str(task)], capture_output=True, text=True,
                         timeout=timeout_s * 4, check=False)
    plain = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"verdict": out.stderr[-300:]}
    rows.append({"path": f"plain ({PLAIN_SEEDS} seeds, CPU inputs)", "verdict": plain.get("verdict"),
                 "seconds": time.perf_counter() - start, "reference_s": None, "trials": PLAIN_SEEDS})
    return rows


def plain_check(task_path: str) -> None:
    """The plain way, in this fresh process: KernelBench's CPU inputs, moved to the GPU, compared there."""
    import importlib.util

    import torch

    def load(path: Path, name: str) -> Any:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    task, cand = load(Path(task_path), "plain_task"), load(CORPUS / "kb_relu" / "correct.py", "plain_cand")
    torch.manual_seed(42)
    init = task.get_init_inputs()
    model, new = task.Model(*init).cuda(), cand.ModelNew(*init).cuda()
    ok = True
    for seed in range(PLAIN_SEEDS):
        torch.manual_seed(seed)
        inputs = [x.cuda() if isinstance(x, torch.Tensor) else x for x in task.get_inputs()]
        with torch.no_grad():
            ok = ok and torch.allclose(model(*inputs), new(*inputs), atol=1e-4, rtol=1e-4)
        del inputs
    print(json.dumps({"verdict": "pass" if ok else "numeric_mismatch"}))


def machine(device: str) -> dict[str, str]:
    """Return host, CPU, cores and (on CUDA) the GPU name from nvidia-smi."""
    info = {"host": platform.node(), "cpu": _cpu_model(), "cores": str(os.cpu_count()), "device": device}
    if device == "cuda":
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, check=False)
        info["gpu"] = out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"
    return info


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def report(result: dict[str, Any]) -> str:
    """Return the human-readable tables."""
    from tabulate import tabulate

    info = result["machine"]
    out = [" | ".join(f"{k}: {v}" for k, v in info.items())]
    if result.get("overhead"):
        rows = result["overhead"]
        out.append(tabulate([[p["path"], p["candidates"], p["median_overhead_s"], p["mean_wall_s"],
                              _counts(p["verdicts"])] for p in rows],
                            ["path", "n", "median overhead s", "mean wall s", "verdicts"], floatfmt=".3f"))
        out.append(f"overhead ratio cold/warm: {result.get('ratio', 0.0):.1f}x")
    if result.get("throughput"):
        rows = result["throughput"]
        out.append(tabulate([[p["path"], p["candidates"], p["seconds"], p["per_min_4_workers"],
                              _counts(p["verdicts"])] for p in rows],
                            ["path (4 workers)", "n", "s", "candidates/min", "verdicts"], floatfmt=".1f"))
    if result.get("faults"):
        f = result["faults"]
        out.append(tabulate([[f["candidates"], f["seconds"], _counts(f["verdicts"]), len(f["wrong"]),
                              f["workers_alive"], f["workers_replaced"], f["zombies"], f["leftover_procs"],
                              f["gpu_mib_before"], f["gpu_mib_after"]]],
                            ["faults n", "s", "verdicts", "wrong", "workers", "replaced", "zombies", "leftover",
                             "GPU MiB before", "after"], floatfmt=".1f"))
    if result.get("relu"):
        rows = result["relu"]
        out.append(tabulate([[r["path"], r["verdict"], r["trials"], r["seconds"], r["reference_s"]] for r in rows],
                            ["19_ReLU official", "verdict", "trials", "s", "reference s"], floatfmt=".1f"))
        out.append("plain / warm: " + f"{rows[-1]['seconds'] / max(rows[1]['seconds'], 1e-9):.1f}x")
        out += [f"{r['path']}: {r.get('detail')}" for r in rows if r["verdict"] != "pass"]
    return "\n\n".join(out)


def _counts(verdicts: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(verdicts.items()))


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the tables (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="10 candidates, 10 faults (CPU: a couple of minutes)")
    parser.add_argument("--full", action="store_true", help="50 candidates, 100 faults")
    parser.add_argument("--relu", action="store_true", help="also time 19_ReLU official (CUDA)")
    parser.add_argument("--parts", default="overhead,throughput,faults",
                        help="comma list of overhead, throughput, faults, relu (paths = overhead,throughput)")
    parser.add_argument("--shapes", choices=("official", "scaled"), default=None,
                        help="shapes of the corpus mix (default: official on cuda, scaled on cpu)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here after each part")
    parser.add_argument("--candidates", type=int, default=None, help="candidates in the mix (overrides the preset)")
    parser.add_argument("--faults", type=int, default=None, help="fault stream length (overrides the preset)")
    parser.add_argument("--timeout", type=float, default=None, help="checker timeout per job (s)")
    parser.add_argument("--plain", default=None, help=argparse.SUPPRESS)  # internal: the plain 19_ReLU check
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.plain:
        plain_check(args.plain)
        return
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    SHAPES[args.device] = args.shapes or SHAPES[args.device]
    parts = set(args.parts.replace("paths", "overhead,throughput").split(",")) | ({"relu"} if args.relu else set())
    n_mix, n_faults = (10, 10) if args.quick else (50, 100) if args.full else (30, 30)
    n_mix, n_faults = args.candidates or n_mix, args.faults or n_faults
    timeout_s = args.timeout or (10.0 if args.device == "cpu" else 60.0)
    result: dict[str, Any] = {"machine": machine(args.device), "args": vars(args) | {"out": str(args.out)}}
    mix = corpus_mix(args.device, n_mix)
    steps = [("relu", lambda: relu_official(300.0) if args.device == "cuda" else None),
             ("overhead", lambda: serial_overheads(args.device, mix, timeout_s)),
             ("throughput", lambda: throughputs(args.device, mix, timeout_s)),
             ("faults", lambda: fault_stream(args.device, n_faults, min(timeout_s, 10.0)))]
    for part, run in steps:
        if part in parts:
            result[part] = run()
            if part == "overhead":
                cold, warm = result["overhead"]
                result["ratio"] = cold["median_overhead_s"] / max(warm["median_overhead_s"], 1e-9)
            if args.out:
                args.out.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, indent=1, default=str) if args.json else report(result))


if __name__ == "__main__":
    main()
