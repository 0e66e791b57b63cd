"""The default check against ``--shapes official`` and the plain KernelBench-style check, side by side (issue 23).

For each candidate of ``benchmarks/candidates/`` (``--tasks`` filters), one process at a time, in one run:

- ``plain``: ``benchmarks/plain_check.py`` (KernelBench's eval: seeded models, 5 trials, allclose);
- ``official``: ``kernelfalcon verify --shapes official``, first candidate of the task (empty reference cache);
- ``default``: ``kernelfalcon verify`` at the default profile, first candidate (empty reference cache);
- ``default second``: the same again, the task's reference read from the cache (a second candidate);

each with every ``--executors`` choice of verify (``prestart`` is verify's default; ``warm`` forks each job
from one pre-imported worker), so a change of executor is measured beside the baseline. Ratios are to
``plain`` of the same task; the geometric means over the tasks come last. Built on ``judge_speed.py``'s
runners (the same subprocess timing and phase split). The JSON (``--json``) is rewritten after each row;
no task starts after ``--budget`` seconds.

    PYTHONPATH=$PWD KERNELBENCH_DIR=... python benchmarks/profile_speed.py [--device cuda] [--tasks SUBSTR ...]
        [--executors prestart,warm] [--budget 400] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import judge_speed as js  # noqa: E402

WAYS = ("official", "default", "default second")


def measure(task: js.Task, settings: js.Settings, budget: js.Budget, executors: list[str]) -> dict[str, dict]:
    """One task: plain, then each way with each executor; {label: {"wall_s", "status", "phases"}}."""
    found: dict[str, dict] = {}
    plain = js.plain_run(task, settings, budget, "plain", {})
    found["plain"] = {"wall_s": plain.wall_s, "status": plain.status, "phases": plain.phases, "detail": plain.detail}
    for executor in executors:
        cache = tempfile.mkdtemp(prefix="profile-speed-")
        for way in WAYS:
            shapes = "official" if way == "official" else "default"
            folder = cache if way != "official" else tempfile.mkdtemp(prefix="profile-speed-official-")
            s = replace(settings, shapes=shapes, reference_cache=folder, verify_args=("--executor", executor))
            run, _ = js.verify_run(task, s, budget, way)
            found[f"{way} ({executor})"] = {"wall_s": run.wall_s, "status": run.status, "phases": run.phases,
                                            "detail": run.detail}
    return found


def ratios(rows: dict[str, dict[str, dict]]) -> dict[str, float]:
    """Geometric mean over tasks of each label's wall time over the task's plain check."""
    logs: dict[str, list[float]] = {}
    for found in rows.values():
        base = found["plain"]["wall_s"]
        for label, got in found.items():
            if label != "plain" and got["status"] == "pass" and base > 0:
                logs.setdefault(label, []).append(math.log(got["wall_s"] / base))
    return {label: math.exp(sum(v) / len(v)) for label, v in logs.items() if v}


def table(rows: dict[str, dict[str, dict]]) -> str:
    labels = sorted({label for found in rows.values() for label in found}, key=lambda x: (x != "plain", x))
    lines = ["| task | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, found in rows.items():
        cells = [f"{found[label]['wall_s']:.1f}" + ("" if found[label]["status"] == "pass" else
                                                     f" ({found[label]['status']})") if label in found else "-"
                 for label in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "geometric mean, ratio to plain: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios(rows).items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tasks", nargs="*", default=None)
    p.add_argument("--executors", default="prestart,warm")
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--budget", type=float, default=400.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    tasks = js.choose_tasks(js.kernelbench_dir(None), args.tasks)
    settings = js.Settings(args.device, "default", 3, 5, 1e-4, args.timeout, tuple(js.kernelfalcon_command(None)),
                           js.child_env(args.device))
    budget, rows = js.Budget(args.budget), {}
    for task in tasks:
        if budget.left() <= 0:
            print(f"not run (budget): {task.name}", file=sys.stderr)
            continue
        rows[task.name] = measure(task, settings, budget, args.executors.split(","))
        print(f"[{budget.elapsed():.0f}s] {task.name}: " + ", ".join(f"{k} {v['wall_s']:.1f}s {v['status']}"
                                                                    for k, v in rows[task.name].items()),
              file=sys.stderr, flush=True)
        if args.json:
            args.json.write_text(json.dumps({"machine": asdict(js.machine(args.device)), "rows": rows,
                                             "ratios": ratios(rows)}, indent=1, default=str))
    print(js.machine(args.device))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
