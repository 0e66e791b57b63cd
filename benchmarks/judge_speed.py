"""Seconds to judge one candidate: ``kernelfalcon verify`` against a plain KernelBench-style check.

Issue #17. The same correct Triton candidates (``benchmarks/candidates/<level>/<task>.py``,
for real KernelBench problems read from ``$KERNELBENCH_DIR``) are judged two ways:

- **verify**: ``kernelfalcon verify TASK CAND --json`` as a one-shot subprocess, timed end to
  end. Phases: ``start`` (spawn to the CLI's ``main``), then from the verdict's ``timings``:
  ``reference`` (run, or read from the reference cache: marked ``ref cached``), ``inputs``
  (the candidate's job written), ``candidate`` (its child process), ``handover`` (its result
  loaded; with a pre-started executor also any wait for the worker), ``compare``; ``other`` is
  the rest (the parent's own imports, the audit, exit). Every verify of a part shares one
  ``--reference-cache`` directory, new and empty at the start of the part
  (``--reference-cache fresh``; ``off`` or a directory instead): a task's first verify runs
  its reference, later ones read it. ``--verify-args`` adds arguments (``--executor cold``).
- **plain**: ``benchmarks/plain_check.py``, one fresh Python process per candidate, as
  KernelBench's own eval: seeded ``Model`` / ``ModelNew`` (state copied), 5 trials of
  ``get_inputs()`` on the device, ``torch.allclose``. Split into start (process start and
  imports), device start-up, reference, inputs, candidate, compare. Its tolerance is the
  checker's (fp32 atol = rtol = 1e-4, KernelBench's current fp32 value; KernelBench's
  original eval used 1e-2): ``--plain-tol``.

Parts (``--parts``, all by default, run in this order):

- ``alone`` (``--parallel 1``): each candidate, one process at a time, verify then plain
  (``--repeat`` times; odd repeats run plain first).
- ``second``: the same candidate verified again right after its first verify, in a new
  process: the cost of a second candidate of a task (its reference read from the cache).
  With ``alone`` selected the second verify follows the alone verify directly, on the first
  ``--second-tasks`` tasks (0, the default: all).
- ``plugin``: ``pytest --falcon TMP/tasks --falcon-candidates TMP/candidates``, folders of
  links to the chosen task files and their candidates, each task twice (``<stem>__again``:
  the cost of one more candidate of a task already judged in the session; ``--no-plugin-again``
  for once); total wall time and per-item time (JUnit XML).
- ``parallel4`` (last: the longest): the whole set, 4 subprocesses at once (``--parallel N``):
  the plain set, first candidates (empty cache), then the same again (second candidates,
  cache filled); wall time of each set and the ratios.

Every subprocess has a timeout (``--timeout``; a timed-out run is recorded, not fatal), the
whole run a budget (``--budget``: a part or measurement that would start after it, or that
the times seen so far say would end after it, is recorded as skipped). The JSON (``--json``)
is rewritten after each measurement; progress lines go to stderr; the tables to stdout, ending
with the issue's targets (first and second candidate against plain, the plugin's extra
candidate, N at once). SIGTERM or SIGINT (an outer ``timeout``) kills the running subprocess
groups, writes the JSON and prints the tables of what was measured.

    PYTHONPATH=$PWD python benchmarks/judge_speed.py [--device cuda|cpu] [--shapes official|scaled]
        [--tasks SUBSTR ...] [--parts alone,second,parallel4,plugin] [--repeat 1] [--trials 5]
        [--seeds 3] [--timeout 120] [--budget 480] [--json OUT] [--estimate]

``--estimate`` prints the planned subprocess count and a rough duration, runs nothing.
The package need not be installed: the ``kernelfalcon`` command is the console script that
``setup.cfg`` declares, started as ``python -c`` with the repo on ``PYTHONPATH`` (or
``--kernelfalcon "CMD"``); the pytest plugin is loaded with ``-p`` from ``setup.cfg``'s
``pytest11`` entry when it is not installed.

Expected time of the default run on one H200 (the 6 tasks of DEFAULT_TASKS, official
shapes, all parts): 12 alone + 2 second + 12 parallel4 subprocesses and one pytest session of
12 items (each task twice). At the issue's ~25 s per one-shot verify and ~8 s per plain check
that is about 7.5 minutes (``--estimate`` prints the plan and this guess); the 480 s budget
skips what would not fit, recorded as skipped, if the card is slower than that, so one
9-minute call is enough. ``--tasks level`` takes all 7 candidates (adds level1/1).
On a loaded 2-core CPU at scaled shapes (TRITON_INTERPRET=1) all parts of all 7 take ~12
minutes (pass ``--budget 1500``).
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CANDIDATES = REPO / "benchmarks" / "candidates"
PLAIN_CHECK = REPO / "benchmarks" / "plain_check.py"
PARTS = ("alone", "second", "plugin", "parallel4")
DEFAULT_TASKS = (
    "level1/88_MinGPTNewGelu",
    "level1/12_Matmul_with_diagonal_matrices_",
    "level1/95_CrossEntropyLoss",
    "level1/54_conv_standard_3D__square_input__square_kernel",
    "level2/12_Gemm_Multiply_LeakyReLU",
    "level3/3_DeepNarrowMLP",
)
# rough seconds per subprocess, for --estimate and the budget before anything was measured
GUESS_S = {"cuda": {"verify": 25.0, "plain": 8.0, "plugin_task": 10.0},
           "cpu": {"verify": 12.0, "plain": 5.0, "plugin_task": 8.0}}
PARALLEL_SLOWDOWN = 1.5  # guess: a subprocess among 4 at once takes this many times longer


@dataclass
class Run:
    """One timed subprocess: which way, which part, how it ended, its wall time and phases."""

    way: str  # verify | plain
    part: str  # alone | second | parallel4
    task: str
    wall_s: float
    status: str  # pass | fail | timeout | error | skipped
    phases: dict[str, float] = field(default_factory=dict)
    detail: str = ""
    repeat: int = 0
    label: str = ""  # second part: first | again


@dataclass
class SetRun:
    """A whole set judged N at once: its wall time and its runs."""

    way: str
    parallel: int
    wall_s: float
    statuses: dict[str, str] = field(default_factory=dict)
    skipped: str = ""


@dataclass
class PluginRun:
    """One ``pytest --falcon`` session over the chosen tasks."""

    wall_s: float
    status: str
    per_task_s: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    detail: str = ""


@dataclass
class Machine:
    """What the numbers were measured on."""

    device: str
    device_name: str
    cpu: str
    cores: int
    python: str
    torch: str
    triton: str
    host: str


@dataclass
class Report:
    """Everything measured, rewritten to ``--json`` after each measurement."""

    machine: Machine
    options: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    sets: list[SetRun] = field(default_factory=list)
    plugin: list[PluginRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    overrides: dict[str, dict[str, int]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    finished: bool = False
    load_avg: dict[str, list[float]] = field(default_factory=dict)  # os.getloadavg() at start / end


@dataclass
class Timed:
    """A finished (or killed) subprocess."""

    wall_s: float
    rc: int | None
    stdout: str
    stderr: str
    spawned_at: float
    timed_out: bool


@dataclass(frozen=True)
class Task:
    """A task file and its candidate."""

    name: str  # level1/12_Matmul_with_diagonal_matrices_
    path: Path
    candidate: Path


class Budget:
    """Wall-clock budget of the whole run."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.t0 = seconds, time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def fits(self, expected_s: float) -> bool:
        return expected_s <= self.left()


# ---------------------------------------------------------------- commands and environment


def _setup_cfg_entry(section_key: str, name: str) -> str | None:
    """Return the value of entry point ``name`` in setup.cfg's ``[options.entry_points]``."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    raw = cfg.get("options.entry_points", section_key, fallback="")
    for line in raw.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


def kernelfalcon_command(override: str | None) -> list[str]:
    """Return the argv prefix that runs ``kernelfalcon`` (installed or from the source tree)."""
    if override:
        return shlex.split(override)
    target = _setup_cfg_entry("console_scripts", "kernelfalcon") or "pytest_kernelfalcon.cli:main"
    module, _, func = target.partition(":")
    code = f"import sys; from {module} import {func} as m; sys.exit(m())"
    return [sys.executable, "-c", code]


def plugin_args() -> list[str]:
    """Return ``-p MODULE`` unless the plugin is installed (then pytest loads it itself)."""
    from importlib.metadata import entry_points

    if any(ep.name == "kernelfalcon" for ep in entry_points(group="pytest11")):
        return []
    module = _setup_cfg_entry("pytest11", "kernelfalcon") or "pytest_kernelfalcon.plugin"
    return ["-p", module]


def child_env(device: str) -> dict[str, str]:
    """Return the environment of every subprocess: repo on PYTHONPATH, interpreter on CPU."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    return env


def run_timed(cmd: list[str], timeout_s: float, env: dict[str, str], cwd: Path = REPO) -> Timed:
    """Run ``cmd`` in its own process group; kill the group at the timeout."""
    spawned_at = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    LIVE.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        timed_out = True
    finally:
        LIVE.discard(proc)
    return Timed(time.perf_counter() - t0, None if timed_out else proc.returncode, out, err,
                 spawned_at, timed_out)


LIVE: set[subprocess.Popen[str]] = set()  # running subprocesses, killed (by group) on SIGTERM / SIGINT


def stop_on_signal(bench: Bench) -> None:
    """On SIGTERM or SIGINT (an outer ``timeout``): kill every running subprocess group, write the JSON
    as it stands, print the tables, exit 143."""

    def handler(signum: int, _frame: object) -> None:
        for proc in list(LIVE):
            _kill_group(proc)
        bench.report.skipped.append(f"stopped by {signal.Signals(signum).name} after {bench.budget.elapsed():.0f}s")
        bench.save()
        shutil.rmtree(bench.cache_root, ignore_errors=True)
        print_tables(bench.report, [t.name for t in bench.tasks])
        sys.stdout.flush()
        os._exit(143)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def _tail(text: str, n: int = 400) -> str:
    return " ".join(text.strip().splitlines()[-3:])[-n:]


# ---------------------------------------------------------------- the two ways


@dataclass(frozen=True)
class Settings:
    """What every measurement shares."""

    device: str
    shapes: str
    seeds: int
    trials: int
    tol: float
    timeout_s: float
    kernelfalcon: tuple[str, ...]
    env: dict[str, str]
    reference_cache: str = "off"  # verify --reference-cache: a directory, or off
    verify_args: tuple[str, ...] = ()  # more arguments for every verify call


def _timeout(settings: Settings, budget: Budget) -> float:
    """Per-subprocess timeout: the option, shortened so that a hang cannot outlast the budget."""
    return max(10.0, min(settings.timeout_s, budget.left() + 30.0))


def verify_run(task: Task, s: Settings, budget: Budget, part: str) -> tuple[Run, dict[str, Any] | None]:
    """Run ``kernelfalcon verify --json`` once; return the record and the verdict JSON."""
    cmd = [*s.kernelfalcon, "verify", str(task.path), str(task.candidate), "--json",
           "--device", s.device, "--shapes", s.shapes, "--seeds", str(s.seeds),
           "--timeout", str(s.timeout_s), "--reference-cache", s.reference_cache,
           *s.verify_args]
    t = run_timed(cmd, _timeout(s, budget), s.env)
    verdict = _last_json(t.stdout)
    if t.timed_out:
        return Run("verify", part, task.name, t.wall_s, "timeout", detail=_tail(t.stderr)), None
    if verdict is None:
        return Run("verify", part, task.name, t.wall_s, "error",
                   detail=f"rc {t.rc}: {_tail(t.stderr or t.stdout)}"), None
    status = "pass" if verdict.get("passed") else "fail"
    detail = "" if status == "pass" else f"{verdict.get('category')}: {str(verdict.get('detail'))[:300]}"
    return Run("verify", part, task.name, t.wall_s, status, verify_phases(verdict, t), detail), verdict


MAIN_PHASES = ("start", "reference", "inputs", "candidate", "handover", "compare")


def verify_phases(verdict: dict[str, Any], t: Timed) -> dict[str, float]:
    """Phase split of a verify call: process start (spawn to the CLI's main), the verdict's timings
    (reference: run or read from the cache; inputs: the candidate's job written; candidate: its child
    process; handover: its result loaded; compare) and the unexplained rest."""
    timings = verdict.get("timings") or {}
    phases = {k.removesuffix("_s"): float(v) for k, v in timings.items() if isinstance(v, int | float)}
    if verdict.get("cli_started_at"):
        phases["start"] = float(verdict["cli_started_at"]) - t.spawned_at
    phases["other"] = t.wall_s - sum(phases.get(k, 0.0) for k in MAIN_PHASES)
    return phases


def plain_run(task: Task, s: Settings, budget: Budget, part: str, overrides: dict[str, int]) -> Run:
    """Run the plain check once in a fresh process."""
    cmd = [sys.executable, str(PLAIN_CHECK), str(task.path), str(task.candidate), "--device", s.device,
           "--trials", str(s.trials), "--atol", str(s.tol), "--rtol", str(s.tol)]
    for name, value in overrides.items():
        cmd += ["--override", f"{name}={value}"]
    t = run_timed(cmd, _timeout(s, budget), s.env)
    if t.timed_out:
        return Run("plain", part, task.name, t.wall_s, "timeout", detail=_tail(t.stderr))
    out = _last_json(t.stdout)
    if out is None:
        return Run("plain", part, task.name, t.wall_s, "error", detail=f"rc {t.rc}: {_tail(t.stderr)}")
    status = "pass" if out["passed"] else "fail"
    return Run("plain", part, task.name, t.wall_s, status, plain_phases(out, t),
               "" if status == "pass" else out["detail"])


def plain_phases(out: dict[str, Any], t: Timed) -> dict[str, float]:
    """Phase split of a plain check: start (spawn to imports done) and the child's phases."""
    phases = {k.removesuffix("_s"): float(v) for k, v in out["phases"].items()}
    if out.get("imports_done_at"):
        phases["start"] = out["imports_done_at"] - t.spawned_at
    phases["other"] = t.wall_s - sum(phases.values())
    return phases


# ---------------------------------------------------------------- shapes for the plain check


def overrides_of(verdict: dict[str, Any] | None) -> dict[str, int] | None:
    """Return the size overrides of the verdict's first shape plan (None when unknown)."""
    if not verdict or not verdict.get("shapes"):
        return None
    return {k: int(v) for k, v in (verdict["shapes"][0].get("overrides") or {}).items()}


class Shapes:
    """Size overrides per task for the plain check: none at official shapes, else the checker's."""

    def __init__(self, settings: Settings, report: Report) -> None:
        self.settings, self.report = settings, report

    def note(self, task: Task, verdict: dict[str, Any] | None) -> None:
        found = overrides_of(verdict)
        if found is not None and task.name not in self.report.overrides:
            self.report.overrides[task.name] = found

    def get(self, task: Task, budget: Budget) -> dict[str, int]:
        if self.settings.shapes == "official":
            return {}
        if task.name not in self.report.overrides:
            probe = Task(task.name, task.path, task.path)
            s = self.settings
            cmd = [*s.kernelfalcon, "verify", str(task.path), str(task.path), "--json", "--entry",
                   "Model", "--no-audit", "--device", s.device, "--shapes", s.shapes, "--seeds", "1"]
            t = run_timed(cmd, _timeout(s, budget), s.env)
            self.note(probe, _last_json(t.stdout))
        return self.report.overrides.get(task.name, {})


# ---------------------------------------------------------------- parts


class Bench:
    """Runs the parts, keeps the report, writes the JSON after each measurement."""

    def __init__(self, tasks: list[Task], settings: Settings, args: argparse.Namespace,
                 report: Report) -> None:
        self.tasks, self.s, self.args, self.report = tasks, settings, args, report
        self.budget = Budget(args.budget)
        self.shapes = Shapes(settings, report)
        self.lock = threading.RLock()  # the signal handler saves from the main thread
        self.cache_root = Path(tempfile.mkdtemp(prefix="judge-speed-refcache-"))

    def use_cache(self, part: str) -> None:
        """Point the verify runs of ``part`` at a new empty reference cache (``--reference-cache fresh``)."""
        choice = self.args.reference_cache
        folder = str(self.cache_root / part) if choice == "fresh" else choice
        self.s = replace(self.s, reference_cache=folder)
        self.report.options.setdefault("reference_cache_dirs", {})[part] = folder

    def save(self) -> None:
        with self.lock:
            self.report.elapsed_s = self.budget.elapsed()
            if self.args.json:
                path = Path(self.args.json)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(asdict(self.report), indent=1))
                tmp.replace(path)

    def record(self, run: Run) -> None:
        with self.lock:
            self.report.runs.append(run)
        label = f" ({run.label})" if run.label else ""
        progress(f"{run.part:9s} {run.way:6s} {run.task}{label}: {run.status} {run.wall_s:.1f}s "
                 f"{_fmt_phases(run.phases)} {run.detail[:160]}")
        self.save()

    def skip(self, what: str) -> None:
        self.report.skipped.append(what)
        progress(f"skipped: {what}")
        self.save()

    def guess(self, way: str, typical: bool = False) -> float:
        """Seconds one subprocess of ``way`` is expected to take: the longest seen alone so far
        (the mean with ``typical``), else the guess in GUESS_S."""
        seen = [r.wall_s for r in self.report.runs if r.way == way and r.part in ("alone", "second")
                and r.status in ("pass", "fail")]
        if not seen:
            return GUESS_S[self.s.device][way]
        return statistics.fmean(seen) if typical else max(seen)

    def _second_count(self) -> int:
        return self.args.second_tasks or len(self.tasks)

    # -- alone (+ second)

    def alone(self, with_second: bool) -> None:
        for rep in range(self.args.repeat):
            self.use_cache(f"alone{rep}")
            for i, task in enumerate(self.tasks):
                second = with_second and rep == 0 and i < self._second_count()
                self._alone_task(task, rep, second)

    def _alone_task(self, task: Task, rep: int, second: bool) -> None:
        need = self.guess("verify") * (2 if second else 1) + self.guess("plain")
        if not self.budget.fits(need):
            self.skip(f"alone {task.name} repeat {rep} (needs ~{need:.0f}s, {self.budget.left():.0f}s left)")
            return
        order = ("verify", "plain") if rep % 2 == 0 else ("plain", "verify")
        for way in order:
            if way == "verify":
                run, verdict = verify_run(task, self.s, self.budget, "alone")
                run.repeat = rep
                self.shapes.note(task, verdict)
                self.record(run)
                if second:
                    self._again(task, first=run)
            else:
                run = plain_run(task, self.s, self.budget, "alone", self.shapes.get(task, self.budget))
                run.repeat = rep
                self.record(run)

    def _again(self, task: Task, first: Run) -> None:
        again, verdict = verify_run(task, self.s, self.budget, "second")
        again.label = "again"
        self.shapes.note(task, verdict)
        copy = Run(**{**asdict(first), "part": "second", "label": "first"})
        self.record(copy)
        self.record(again)

    def second(self) -> None:
        """The second part on its own: first verify, then the same one again, per task."""
        self.use_cache("second")
        for task in self.tasks[: self._second_count()]:
            if not self.budget.fits(2 * self.guess("verify")):
                self.skip(f"second {task.name}")
                continue
            first, verdict = verify_run(task, self.s, self.budget, "second")
            first.label = "first"
            self.shapes.note(task, verdict)
            self.record(first)
            again, _ = verify_run(task, self.s, self.budget, "second")
            again.label = "again"
            self.record(again)

    # -- parallel

    def parallel(self) -> None:
        n = self.args.parallel
        waves = math.ceil(len(self.tasks) / n)
        self.use_cache(f"parallel{n}")
        for way in ("plain", "verify", "verify-again"):  # plain first: without it no ratio
            need = waves * self.guess(way.split("-")[0], typical=True) * PARALLEL_SLOWDOWN
            if not self.budget.fits(need):
                self.report.sets.append(SetRun(way, n, 0.0, skipped=f"needs ~{need:.0f}s"))
                self.skip(f"parallel{n} {way} set (needs ~{need:.0f}s, {self.budget.left():.0f}s left)")
                continue
            if way == "plain":  # overrides first, so that the probes are not timed with the set
                for task in self.tasks:
                    self.shapes.get(task, self.budget)
            self._parallel_set(way, n)

    def _parallel_set(self, way: str, n: int) -> None:
        part = f"parallel{n}"

        def one(task: Task) -> Run:
            if way.startswith("verify"):
                run, verdict = verify_run(task, self.s, self.budget, part)
                run.label = "again" if way == "verify-again" else ""
                self.shapes.note(task, verdict)
            else:
                run = plain_run(task, self.s, self.budget, part, self.shapes.get(task, self.budget))
            self.record(run)
            return run

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n) as pool:
            runs = list(pool.map(one, self.tasks))
        wall = time.perf_counter() - t0
        self.report.sets.append(SetRun(way, n, wall, {r.task: r.status for r in runs}))
        progress(f"{part} {way} set: {wall:.1f}s wall for {len(runs)} candidates")
        self.save()

    # -- plugin

    def plugin(self) -> None:
        again = not self.args.no_plugin_again
        need = len(self.tasks) * GUESS_S[self.s.device]["plugin_task"] * (1.5 if again else 1) + 20
        if not self.budget.fits(need):
            self.skip(f"plugin (needs ~{need:.0f}s, {self.budget.left():.0f}s left)")
            return
        self.use_cache("plugin")
        with tempfile.TemporaryDirectory(prefix="judge-speed-") as tmp:
            limit = max(30.0, min(self.s.timeout_s * len(self.tasks), self.budget.left() + 30.0))
            run = plugin_session(self.tasks, self.s, Path(tmp), limit, again)
        self.report.plugin.append(run)
        progress(f"plugin: {run.status} {run.wall_s:.1f}s total; "
                 + ", ".join(f"{k} {v:.1f}s {run.outcomes.get(k, '?')}" for k, v in run.per_task_s.items()))
        self.save()


AGAIN = "__again"  # plugin part: a second copy of each task and candidate, judged after the first


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def plugin_session(tasks: list[Task], s: Settings, tmp: Path, timeout_s: float, again: bool) -> PluginRun:
    """Run one ``pytest --falcon`` session over links to the task files; parse its JUnit XML.

    With ``again`` every task is collected twice (``<stem>.py`` and ``<stem>__again.py``, the
    same source, each with a link to the same candidate): the second item's time is what one
    more candidate of an already judged task costs in a session (the checker caches references
    by task source).
    """
    task_dir, cand_dir = tmp / "tasks", tmp / "candidates"
    for task in tasks:
        for suffix in ("", AGAIN) if again else ("",):
            _link(task_dir / f"{task.name}{suffix}.py", task.path)
            _link(cand_dir / f"{task.name}{suffix}.py", task.candidate)
    (tmp / "pytest.ini").write_text("[pytest]\n")
    junit = tmp / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", *plugin_args(), "-c", str(tmp / "pytest.ini"),
           "--rootdir", str(tmp), "-p", "no:cacheprovider", "-q", "--falcon", str(task_dir),
           "--falcon-candidates", str(cand_dir), "--falcon-device", s.device,
           "--falcon-shapes", s.shapes, "--falcon-seeds", str(s.seeds),
           "--falcon-run-dir", str(tmp / "runs"), "--junitxml", str(junit),
           "--falcon-reference-cache", s.reference_cache]
    t = run_timed(cmd, timeout_s, s.env, cwd=tmp)
    per_task, outcomes = parse_junit(junit)
    status = "timeout" if t.timed_out else "pass" if t.rc == 0 else f"rc {t.rc}"
    detail = "" if t.rc == 0 else _tail(t.stdout + t.stderr, 600)
    return PluginRun(t.wall_s, status, per_task, outcomes, detail)


def parse_junit(path: Path) -> tuple[dict[str, float], dict[str, str]]:
    """Return per-test seconds and outcomes from a JUnit XML file (empty when absent)."""
    if not path.is_file():
        return {}, {}
    times, outcomes = {}, {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        times[name] = float(case.get("time", "0"))
        bad = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        outcomes[name] = bad[0] if bad else "passed"
    return times, outcomes


# ---------------------------------------------------------------- tables


def _fmt_phases(phases: dict[str, float]) -> str:
    keys = ("start", "device_init", "reference", "inputs", "candidate", "handover", "compare", "other")
    text = " ".join(f"{k[:5]}={phases[k]:.1f}" for k in keys if k in phases)
    return text + (" (ref cached)" if phases.get("reference_cached") else "")


def geomean(values: list[float]) -> float | None:
    """Geometric mean of positive values (None for none)."""
    vals = [v for v in values if v > 0]
    return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else None


def _median_run(runs: list[Run], way: str, task: str, part: str = "alone") -> Run | None:
    found = sorted((r for r in runs if r.way == way and r.task == task and r.part == part),
                   key=lambda r: r.wall_s)
    return found[len(found) // 2] if found else None


def alone_rows(report: Report, tasks: list[str]) -> tuple[list[list[Any]], list[float]]:
    """Rows of the alone table (medians over repeats) and the verify/plain ratios."""
    rows, ratios = [], []
    for task in tasks:
        v, p = _median_run(report.runs, "verify", task), _median_run(report.runs, "plain", task)
        if v is None and p is None:
            continue
        ratio = v.wall_s / p.wall_s if v and p and v.status == p.status == "pass" else None
        if ratio:
            ratios.append(ratio)
        rows.append([task, _cell(v), _cell(p), f"{ratio:.2f}" if ratio else "-",
                     _fmt_phases(v.phases) if v else "", _fmt_phases(p.phases) if p else ""])
    return rows, ratios


def _cell(run: Run | None) -> str:
    if run is None:
        return "-"
    return f"{run.wall_s:.1f}" + ("" if run.status == "pass" else f" {run.status}")


def second_rows(report: Report) -> list[list[Any]]:
    """Rows of the second-candidate table: first and again per task."""
    rows = []
    for task in dict.fromkeys(r.task for r in report.runs if r.part == "second"):
        pair = {r.label: r for r in report.runs if r.part == "second" and r.task == task}
        first, again = pair.get("first"), pair.get("again")
        ratio = again.wall_s / first.wall_s if first and again and first.wall_s else None
        rows.append([task, _cell(first), _cell(again), f"{ratio:.2f}" if ratio else "-",
                     f"{first.phases.get('reference', 0):.1f} / {again.phases.get('reference', 0):.1f}"
                     if first and again else ""])
    return rows


def set_rows(report: Report) -> list[list[Any]]:
    """Rows of the N-at-once table, with the verify/plain ratio of the set wall times."""
    by_way = {s.way: s for s in report.sets}
    rows = []
    for way in ("verify", "verify-again", "plain"):
        s = by_way.get(way)
        if s:
            bad = sum(st != "pass" for st in s.statuses.values())
            label = "again" if way == "verify-again" else ""
            each = [r.wall_s for r in report.runs if r.way == way.split("-")[0] and r.label == label
                    and r.part == f"parallel{s.parallel}"]
            rows.append([way, s.parallel, s.skipped or f"{s.wall_s:.1f}", len(s.statuses), bad,
                         f"{min(each):.1f}-{max(each):.1f}" if each else "-"])
    p = by_way.get("plain")
    for way in ("verify", "verify-again"):
        v = by_way.get(way)
        if v and p and v.wall_s and p.wall_s:
            rows.append([f"ratio {way}/plain", "", f"{v.wall_s / p.wall_s:.2f}", "", "", ""])
    return rows


def plugin_rows(run: PluginRun) -> list[list[Any]]:
    """Rows of the plugin table: each task's item and, when collected, its second copy."""
    rows = []
    for name, secs in run.per_task_s.items():
        if name.endswith(AGAIN):
            continue
        again = run.per_task_s.get(name + AGAIN)
        outcomes = [run.outcomes.get(n, "") for n in (name, name + AGAIN) if n in run.outcomes]
        rows.append([name, f"{secs:.1f}", f"{again:.1f}" if again is not None else "-", "/".join(outcomes)])
    return rows


def _plugin_vs_alone(report: Report, run: PluginRun) -> str:
    """One line: the plugin session against the alone verify and plain sums of its tasks."""
    sums = {}
    for way in ("verify", "plain"):
        found = [_median_run(report.runs, way, t) for t in run.per_task_s if not t.endswith(AGAIN)]
        sums[way] = sum(r.wall_s for r in found if r) if all(found) and found else None
    parts = [f"{way} one at a time {v:.1f}s (plugin/{way} {run.wall_s / v:.2f})"
             for way, v in sums.items() if v]
    return "  same tasks: " + ("; ".join(parts) if parts else "no alone runs to compare")


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    try:
        from tabulate import tabulate
    except ImportError:
        return "\n".join(" | ".join(map(str, r)) for r in [headers, *rows])
    return tabulate(rows, headers=headers)


def print_tables(report: Report, tasks: list[str]) -> None:
    """Print the tables of everything measured."""
    m = report.machine
    print(f"\nmachine: {m.device_name} ({m.device}); CPU {m.cpu}, {m.cores} cores; python {m.python}, "
          f"torch {m.torch}, triton {m.triton}; shapes {report.options['shapes']}; "
          f"load average (1/5/15 min) at start {report.load_avg.get('start')}, end {report.load_avg.get('end')}")
    rows, ratios = alone_rows(report, tasks)
    if rows:
        print("\none at a time (seconds, end to end; median of repeats)")
        print(_table(rows, ["task", "verify", "plain", "verify/plain", "verify phases", "plain phases"]))
        gm = geomean(ratios)
        print(f"geometric mean verify/plain: {gm:.2f} over {len(ratios)} tasks" if gm else "no ratio")
    if second_rows(report):
        print("\nsame candidate verified again right after (seconds; reference first / again)")
        print(_table(second_rows(report), ["task", "first", "again", "again/first", "reference"]))
    if report.sets:
        print(f"\n{report.sets[0].parallel} at once (seconds of wall time for the whole set)")
        print(_table(set_rows(report), ["way", "at once", "set wall", "candidates", "not pass", "each"]))
    for run in report.plugin:
        print(f"\nplugin session: {run.status}, {run.wall_s:.1f}s total, "
              f"{sum(run.per_task_s.values()):.1f}s in items, "
              f"{run.wall_s - sum(run.per_task_s.values()):.1f}s session start/end")
        print(_table(plugin_rows(run), ["item", "seconds", f"{AGAIN} copy", "outcomes"]))
        if run.detail:
            print(f"  {run.detail}")
        print(_plugin_vs_alone(report, run))
    for what in report.skipped:
        print(f"skipped: {what}")
    print("\ntargets (issue #17)")
    for line in target_lines(report, tasks):
        print("  " + line)


def _ratio_line(name: str, ratios: list[float], target: float) -> str:
    gm = geomean(ratios)
    if gm is None:
        return f"{name}: not measured"
    verdict = "met" if gm <= target else "NOT met"
    return f"{name}: {gm:.2f}x (geomean of {len(ratios)}; target <= {target}) {verdict}"


def target_lines(report: Report, tasks: list[str]) -> list[str]:
    """The issue's targets against what was measured: first and second candidate, plugin, 4 at once."""
    plain = {t: r.wall_s for t in tasks if (r := _median_run(report.runs, "plain", t)) and r.status == "pass"}
    first, again = [], []
    for t in plain:
        v = _median_run(report.runs, "verify", t)
        if v and v.status == "pass":
            first.append(v.wall_s / plain[t])
        a = [r for r in report.runs if r.part == "second" and r.label == "again" and r.task == t and r.status == "pass"]
        if a:
            again.append(a[0].wall_s / plain[t])
    lines = [_ratio_line("one-shot verify, first candidate / plain", first, 1.0),
             _ratio_line("one-shot verify, second candidate / plain", again, 0.5)]
    extra = []
    for run in report.plugin:
        for name, secs in run.per_task_s.items():
            task = next((t for t in plain if name == t + AGAIN), None)
            if task and run.outcomes.get(name) == "passed":
                extra.append(secs / plain[task])
    lines.append(_ratio_line("plugin, per extra candidate / plain", extra, 0.25))
    sets = {s.way: s for s in report.sets if not s.skipped}
    for way in ("verify", "verify-again"):
        v, p = sets.get(way), sets.get("plain")
        if v and p:
            bad = [t for t, st in {**v.statuses, **p.statuses}.items() if st == "timeout"]
            ok = v.wall_s <= p.wall_s and not bad
            lines.append(f"{v.parallel} at once, {way} set / plain set: {v.wall_s / p.wall_s:.2f}x, "
                         f"timeouts {bad or 'none'} (target <= 1.0, none) {'met' if ok else 'NOT met'}")
        else:
            lines.append(f"{way} set {4} at once: not measured")
    return lines


# ---------------------------------------------------------------- setup


def progress(line: str) -> None:
    print(f"[judge_speed {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def kernelbench_dir(explicit: str | None) -> Path:
    """Return the KernelBench problems folder: option, $KERNELBENCH_DIR, ./shared, ../shared."""
    candidates = [explicit, os.environ.get("KERNELBENCH_DIR"), REPO / "shared" / "kernelbench",
                  REPO.parent / "shared" / "kernelbench"]
    for c in candidates:
        if c and (Path(c) / "level1").is_dir():
            return Path(c).resolve()
    raise SystemExit(f"judge_speed: no KernelBench problems found (tried {[str(c) for c in candidates if c]}); "
                     "set KERNELBENCH_DIR or --kernelbench")


def choose_tasks(kb: Path, filters: list[str] | None) -> list[Task]:
    """Return the default tasks (or every candidate matching a filter) that have a task file."""
    names = [str(p.relative_to(CANDIDATES).with_suffix("")) for p in sorted(CANDIDATES.glob("level*/*.py"))]
    chosen = [n for n in names if any(f in n for f in filters)] if filters else list(DEFAULT_TASKS)
    tasks = []
    for name in chosen:
        path = kb / f"{name}.py"
        if not path.is_file():
            progress(f"no task file {path}; {name} left out")
            continue
        tasks.append(Task(name, path, CANDIDATES / f"{name}.py"))
    if not tasks:
        raise SystemExit("judge_speed: no tasks chosen")
    return tasks


def machine(device: str) -> Machine:
    """Describe the machine: GPU name, CPU model, versions."""
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "absent"
    gpu = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else "CPU only"
    return Machine(device, gpu, cpu_model(), os.cpu_count() or 0, platform.python_version(),
                   torch.__version__, triton_version, platform.node())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def estimate(tasks: list[Task], args: argparse.Namespace) -> tuple[dict[str, int], float]:
    """Planned subprocess counts per part and a rough total in seconds (from GUESS_S)."""
    g = GUESS_S[args.device]
    n = len(tasks)
    parts = args.parts
    counts: dict[str, int] = {}
    secs = 0.0
    if "alone" in parts:
        counts["alone"] = 2 * n * args.repeat
        secs += n * args.repeat * (g["verify"] + g["plain"])
    if "second" in parts:
        k = min(args.second_tasks or n, n)
        counts["second"] = k if "alone" in parts else 2 * k
        secs += counts["second"] * g["verify"]
    if "parallel4" in parts:
        counts[f"parallel{args.parallel}"] = 3 * n
        waves = math.ceil(n / args.parallel)
        secs += waves * PARALLEL_SLOWDOWN * (2 * g["verify"] + g["plain"])
    if "plugin" in parts:
        counts["plugin"] = 1
        secs += n * g["plugin_task"] * (1 if args.no_plugin_again else 1.5) + 20
    if args.shapes == "scaled" and "alone" not in parts and "parallel4" in parts:
        counts["shape probes"] = n
        secs += n * g["plain"]
    return counts, secs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda if available")
    p.add_argument("--shapes", choices=("default", "official", "scaled"), default=None,
                   help="default: official on cuda, scaled on cpu")
    p.add_argument("--tasks", nargs="*", default=None,
                   help="substrings of candidate names (default: the 7 default tasks)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    p.add_argument("--repeat", type=int, default=1, help="repeats of the alone part")
    p.add_argument("--parallel", type=int, default=4, help="subprocesses at once in parallel4")
    p.add_argument("--second-tasks", type=int, default=0, help="tasks in the second part (0: all)")
    p.add_argument("--verify-args", default="", help="more arguments for every verify call (shell words), "
                   "e.g. '--executor warm'")
    p.add_argument("--reference-cache", default="fresh",
                   help="verify --reference-cache: fresh (a new empty directory per part, so first candidates "
                        "run their reference and later ones may read it), off, or a directory")
    p.add_argument("--trials", type=int, default=5, help="plain check trials")
    p.add_argument("--seeds", type=int, default=3, help="verify --seeds (and --falcon-seeds)")
    p.add_argument("--plain-tol", type=float, default=1e-4, help="plain check atol = rtol")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per subprocess")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for the whole run")
    p.add_argument("--json", default=None, help="write the report here after each measurement")
    p.add_argument("--kernelbench", default=None, help="KernelBench problems folder")
    p.add_argument("--kernelfalcon", default=None, help="command that runs kernelfalcon (shell words)")
    p.add_argument("--no-plugin-again", action="store_true",
                   help="plugin part: collect each task once (default: twice, the copy judged after)")
    p.add_argument("--estimate", action="store_true", help="print the plan and a rough time; run nothing")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.shapes = args.shapes or ("official" if args.device == "cuda" else "scaled")
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"judge_speed: unknown parts {sorted(unknown)}; choose from {PARTS}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tasks = choose_tasks(kernelbench_dir(args.kernelbench), args.tasks)
    counts, secs = estimate(tasks, args)
    progress(f"{len(tasks)} tasks, parts {args.parts}, {args.device}/{args.shapes}: planned subprocesses "
             f"{counts} (total {sum(counts.values())}), rough time {secs:.0f}s (budget {args.budget:.0f}s)")
    if args.estimate:
        for task in tasks:
            print(task.name)
        print(json.dumps({"subprocesses": counts, "total": sum(counts.values()), "rough_s": round(secs)}))
        return 0
    settings = Settings(args.device, args.shapes, args.seeds, args.trials, args.plain_tol, args.timeout,
                        tuple(kernelfalcon_command(args.kernelfalcon)), child_env(args.device),
                        verify_args=tuple(shlex.split(args.verify_args)))
    options = {k: v for k, v in vars(args).items() if k != "estimate"}
    options["kernelfalcon_cmd"] = list(settings.kernelfalcon)
    options["plan"] = {"subprocesses": counts, "rough_s": secs}
    report = Report(machine(args.device), options, load_avg={"start": list(os.getloadavg())})
    bench = Bench(tasks, settings, args, report)
    stop_on_signal(bench)
    bench.save()
    if "alone" in args.parts:
        bench.alone(with_second="second" in args.parts)
    elif "second" in args.parts:
        bench.second()
    if "plugin" in args.parts:  # before the N-at-once sets, the longest part
        bench.plugin()
    if "parallel4" in args.parts:
        bench.parallel()
    report.finished = True
    report.load_avg["end"] = list(os.getloadavg())
    bench.save()
    shutil.rmtree(bench.cache_root, ignore_errors=True)
    print_tables(report, [t.name for t in tasks])
    progress(f"done in {bench.budget.elapsed():.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
