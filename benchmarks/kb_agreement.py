"""Does our KernelBench-comparable verdict agree with KernelBench's own eval settings? One table, one call.

For every candidate of ``benchmarks/candidates/`` (task: the KernelBench problem of the same name) and
of the tests' corpus (``tests/corpus/expected.json``), run ``kernelfalcon verify --json`` (our verdict
and the KernelBench-comparable one) and ``benchmarks/plain_check.py --kernelbench`` (KernelBench's
eval settings, written apart from the checker) at the sizes the verdict's task plan ran (official on
the GPU, where both run at once; the scaled pick on the CPU, or on the GPU for tasks whose official
inputs exceed ``--max-numel``: a host-drawn eval of 6.4 GB inputs takes minutes), and say where the
two agree. Corpus rows also say whether both verdicts are the ones ``expected.json`` records there.

    python benchmarks/kb_agreement.py [--device cuda|cpu] [-j 4] [--budget 300] [--json out.json]
        [--only SUBSTRING ...] [--timeout 120] [--max-numel 67108864] [--reference-cache DIR]

Each task's first candidate goes first, then round robin: its reference is computed once and shared
through ``--reference-cache`` (a private folder of this run unless given). ``--budget`` stops starting
candidates past that many seconds (those left are listed as not run); ``--json`` is rewritten after
each row. A row where ``verify`` itself failed (exit 2 or 3, no JSON) is a harness error, apart from
the agreement count. Exit 0 when every row that ran agrees, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"
CANDIDATES = REPO / "benchmarks" / "candidates"
PLAIN = REPO / "benchmarks" / "plain_check.py"
RESIDENT_NUMEL = 1 << 26  # official inputs above this go resident in our checker; too slow for a host-drawn eval


@dataclass(frozen=True)
class Case:
    """One candidate and its task."""

    name: str  # "corpus/kb_relu/fallback.py" or "candidates/level1/19_ReLU.py"
    task: Path
    candidate: Path
    timeout_s: float | None = None
    expected: dict[str, Any] = field(default_factory=dict)  # the corpus entry (expected verdicts per device)


@dataclass
class Row:
    """What both checks said of one candidate."""

    name: str
    sizes: str = ""
    ours: str = ""
    kernelbench: str = ""  # our KernelBench-comparable verdict: pass, fail, ?
    source: str = ""
    why: str = ""
    reason: str = ""
    plain: str = ""  # plain_check --kernelbench: pass or fail
    plain_detail: str = ""
    agree: bool | None = None  # None: not comparable (a harness error, not judged, not run)
    as_expected: bool | None = None  # corpus rows: ours and the comparable verdict as expected.json has them here
    note: str = ""
    verify_s: float = 0.0
    plain_s: float = 0.0


@dataclass
class Report:
    """The JSON written after each row."""

    device: str
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def summary(self) -> dict[str, Any]:
        """Counts: rows, agreeing, differing, not comparable; elapsed seconds."""
        ran = [r for r in self.rows if r.agree is not None]
        return {"rows": len(self.rows), "compared": len(ran), "agree": sum(bool(r.agree) for r in ran),
                "differ": [r.name for r in ran if not r.agree],
                "not_compared": [f"{r.name}: {r.note}" for r in self.rows if r.agree is None],
                "unexpected": [r.name for r in self.rows if r.as_expected is False],
                "elapsed_s": round(time.time() - self.started, 1)}


def kernelbench_root(given: str | None) -> Path:
    """The KernelBench problems: ``--kernelbench``, ``KERNELBENCH_DIR``, ``.kb`` in the repo, ``../shared``."""
    for found in (given, os.environ.get("KERNELBENCH_DIR"), REPO / ".kb", REPO.parent / "shared" / "kernelbench"):
        if found and (Path(found) / "level1").is_dir():
            return Path(found)
    raise SystemExit("kb_agreement: KernelBench problems not found (--kernelbench DIR or KERNELBENCH_DIR)")


def cases(kb: Path) -> list[Case]:
    """Every candidate of benchmarks/candidates/ and of the tests' corpus, with its task."""
    found = [Case(f"candidates/{p.parent.name}/{p.name}", kb / p.parent.name / p.name, p)
             for p in sorted(CANDIDATES.glob("level*/*.py"))]
    for key, entry in sorted(json.loads((CORPUS / "expected.json").read_text()).items()):
        kind, rel = entry["task"].split(":", 1)
        task = CORPUS / rel if kind == "corpus" else kb / rel
        found.append(Case(f"corpus/{key}", task, CORPUS / key, entry.get("timeout_s"), entry))
    return found


def official_numel(task: Path) -> int:
    """The official inputs' element count (``get_inputs()`` on the meta device, in a subprocess)."""
    code = ("import runpy, sys, torch\nns = runpy.run_path(sys.argv[1])\nwith torch.device('meta'):\n"
            "    xs = ns['get_inputs']()\nprint(sum(x.numel() for x in xs if isinstance(x, torch.Tensor)))")
    done = subprocess.run([sys.executable, "-c", code, str(task)], capture_output=True, text=True, timeout=120)
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except json.JSONDecodeError:
                return None
            return found if isinstance(found, dict) else None
    return None


def _env(device: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    return env


def run_verify(case: Case, args: argparse.Namespace, scaled: bool) -> tuple[dict[str, Any] | None, str, float]:
    """``kernelfalcon verify --json``: (its JSON or None, why none, seconds)."""
    timeout = case.timeout_s or args.timeout
    cmd = [sys.executable, "-m", "pytest_kernelfalcon.cli", "verify", str(case.task), str(case.candidate), "--json",
           "--device", args.device, "--timeout", str(timeout), "--reference-cache", str(args.reference_cache)]
    cmd += ["--shapes", "scaled"] if scaled else []
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=_env(args.device), timeout=8 * timeout + 120)
    except subprocess.TimeoutExpired:
        return None, "verify did not finish", time.monotonic() - start
    found = _last_json(done.stdout)
    why = "" if found else f"verify exit {done.returncode}: {done.stderr.strip()[-300:]}"
    return found, why, time.monotonic() - start


def run_plain(case: Case, args: argparse.Namespace, overrides: dict[str, int]) -> tuple[bool, str, float]:
    """``plain_check.py --kernelbench`` at the verdict's sizes: (passed, detail, seconds); a process that dies
    or hangs failed, as it would in KernelBench's eval."""
    cmd = [sys.executable, str(PLAIN), str(case.task), str(case.candidate), "--device", args.device, "--kernelbench"]
    for name, value in overrides.items():
        cmd += ["--override", f"{name}={value}"]
    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="kb-plain-")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=_env(args.device), cwd=workdir,
                              timeout=case.timeout_s or args.timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        return False, "timed out", time.monotonic() - start
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    found = _last_json(done.stdout)
    if found is None:
        return False, f"no result (exit {done.returncode}): {done.stderr.strip()[-200:]}", time.monotonic() - start
    return bool(found.get("passed")), str(found.get("detail", ""))[:300], time.monotonic() - start


def judge(case: Case, args: argparse.Namespace, scaled: bool) -> Row:
    """One row: our verdicts, and the plain check at the same sizes (on the GPU at official sizes both at once:
    the sizes are known before the verdict says them)."""
    row = Row(case.name)
    with ThreadPoolExecutor(max_workers=1) as beside:
        early = beside.submit(run_plain, case, args, {}) if args.device == "cuda" and not scaled else None
        verdict, why, row.verify_s = run_verify(case, args, scaled)
        plain = early.result() if early is not None else None
    if verdict is None:
        row.note = f"harness: {why}"
        return row
    kb = verdict.get("kernelbench") or {}
    row.ours = "pass" if verdict["passed"] else str(verdict.get("category"))
    row.kernelbench = {True: "pass", False: "fail"}.get(kb.get("passed"), "?")
    overrides = {str(k): int(v) for k, v in (kb.get("sizes") or {}).items()}  # the task plan KernelBench's ran at
    row.source, row.why, row.reason = kb.get("source", ""), kb.get("why", ""), kb.get("reason", "")
    row.sizes = ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "official"
    if row.kernelbench == "?":
        row.note = f"not judged: {kb.get('reason') or verdict.get('detail', '')[:200]}"
        return row
    passed, row.plain_detail, row.plain_s = plain if plain is not None and not overrides else \
        run_plain(case, args, overrides)
    row.plain = "pass" if passed else "fail"
    row.agree = row.plain == row.kernelbench
    row.as_expected = as_expected(case, row, args.device, scaled)
    return row


def as_expected(case: Case, row: Row, device: str, scaled: bool) -> bool | None:
    """Whether a corpus row's verdicts are the ones ``expected.json`` records for this device (None: it records
    none here, or the sizes are not the default profile's)."""
    entry = case.expected
    if not entry or device not in entry.get("devices", ()) or scaled:
        return None
    kb = entry.get("kernelbench")
    kb = kb.get(device) if isinstance(kb, dict) else kb
    return row.ours == entry["expected"] and row.kernelbench == kb


def write(path: Path | None, report: Report) -> None:
    """Rewrite the JSON report (through a temporary file)."""
    if path is None:
        return
    data = {"device": report.device, "settings": report.settings, "summary": report.summary(),
            "rows": [asdict(r) for r in report.rows]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def table(report: Report) -> str:
    """The agreement table (tabulate when installed)."""
    mark = {True: "yes", False: "NO", None: "-"}
    rows = [(r.name, r.sizes[:30], r.ours, r.kernelbench, r.plain or "-", mark[r.agree], mark[r.as_expected],
             (r.reason or r.note)[:90]) for r in report.rows]
    headers = ["candidate", "sizes", "ours", "kernelbench-comparable", "plain --kernelbench", "agree", "as expected",
               "why ours differs"]
    try:
        from tabulate import tabulate
    except ImportError:
        return "\n".join(" | ".join(map(str, r)) for r in [tuple(headers), *rows])
    return str(tabulate(rows, headers=headers))


def scaled_tasks(todo: list[Case], args: argparse.Namespace) -> set[Path]:
    """Tasks judged at their scaled plan on the GPU: official inputs over ``--max-numel`` elements."""
    if args.device != "cuda" or args.max_numel <= 0:
        return set()
    tasks = sorted({c.task for c in todo})
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        sizes = dict(zip(tasks, pool.map(official_numel, tasks), strict=True))
    return {t for t, n in sizes.items() if n > args.max_numel}


def run(args: argparse.Namespace) -> Report:
    """Judge every selected case, ``-j`` at a time, until the budget runs out."""
    todo = [c for c in cases(kernelbench_root(args.kernelbench)) if not args.only or any(s in c.name for s in args.only)]
    scaled = scaled_tasks(todo, args)
    report = Report(args.device, {k: str(v) for k, v in vars(args).items()})
    lock, deadline = threading.Lock(), time.monotonic() + args.budget

    def one(case: Case) -> None:
        if time.monotonic() > deadline:
            row = Row(case.name, note="not run: budget")
        else:
            row = judge(case, args, case.task in scaled)
            row.note = row.note or ("scaled: official inputs over --max-numel" if case.task in scaled else "")
        with lock:
            report.rows.append(row)
            write(args.json, report)
            print(f"[{len(report.rows)}/{len(todo)}] {row.name}: ours {row.ours or '-'}, kernelbench-comparable "
                  f"{row.kernelbench or '-'}, plain {row.plain or '-'} -> {row.agree} {row.note}", flush=True)

    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        list(pool.map(one, interleaved(todo)))
    return report


def interleaved(todo: list[Case]) -> list[Case]:
    """Each task's first candidate first (its reference is computed once, then cached), then round robin:
    the slots never all wait on one task's reference."""
    groups: dict[Path, list[Case]] = {}
    for case in sorted(todo, key=lambda c: c.name):
        groups.setdefault(case.task, []).append(case)
    depth = max((len(g) for g in groups.values()), default=0)
    return [g[i] for i in range(depth) for g in groups.values() if i < len(g)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description="Agreement of the KernelBench-comparable verdict with KernelBench's eval.")
    p.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when available")
    p.add_argument("-j", "--jobs", type=int, default=4, help="candidates at once")
    p.add_argument("--budget", type=float, default=300.0, help="seconds after which no candidate starts")
    p.add_argument("--json", type=Path, default=None, help="rewritten after each row")
    p.add_argument("--only", action="append", default=[], metavar="SUBSTRING", help="candidates whose name has it")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per child process (verify) / plain check")
    p.add_argument("--max-numel", type=int, default=RESIDENT_NUMEL,
                   help="on the GPU, tasks whose official inputs have more elements run at their scaled plan "
                        "(0: every task at official sizes)")
    p.add_argument("--reference-cache", type=Path, default=None, help="default: a private folder of this run")
    p.add_argument("--kernelbench", default=None, help="KernelBench problems (default: KERNELBENCH_DIR)")
    args = p.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def main(argv: list[str] | None = None) -> int:
    """Run, print the table and the summary; 0 when every compared row agrees."""
    args = parse_args(argv)
    own_cache = args.reference_cache is None
    if own_cache:
        args.reference_cache = Path(tempfile.mkdtemp(prefix="kb-agreement-refs-"))
    try:
        report = run(args)
    finally:
        if own_cache:
            shutil.rmtree(args.reference_cache, ignore_errors=True)
    write(args.json, report)
    print(table(report))
    summary = report.summary()
    print(json.dumps(summary, indent=1))
    return 0 if not summary["differ"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
