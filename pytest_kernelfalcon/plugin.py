"""pytest hooks: ``--falcon`` options, task collection, items, terminal summary, gating."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_kernelfalcon.config import OPTIONS, FalconConfig, default_of, ini_type
from pytest_kernelfalcon.core.outcome import TaskOutcome
from pytest_kernelfalcon.session import FalconSession

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.tasks import TaskFile

SESSION_KEY = pytest.StashKey[FalconSession]()
OUTCOME_PROPERTY = "falcon_outcome"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``--falcon*`` option group and the mirroring ``falcon_*`` ini keys."""
    group = parser.getgroup("falcon", "kernelfalcon: LLM-generated Triton kernels, trusted checker")
    for flag, dest, kind, help_text in OPTIONS:
        default = default_of(dest)
        shown = f"{help_text} (default: {default})" if default not in (None, False) else help_text
        if kind == "bool":
            group.addoption(flag, action="store_true", dest=dest, default=None, help=shown)
        else:
            group.addoption(flag, dest=dest, default=None, metavar=dest.split("_", 1)[1].upper(), help=shown)
        parser.addini(dest, help=shown, type=ini_type(kind), default=None)  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    """Read the configuration once and create the session object (controller and workers)."""
    cfg = FalconConfig.from_pytest(config)
    if not cfg.falcon:
        return
    cfg.check_device()
    workerinput = getattr(config, "workerinput", None)
    run_id = workerinput["falcon_run_id"] if workerinput else _run_id(cfg)
    worker_id = workerinput.get("workerid") if workerinput else None
    session = FalconSession(cfg, Path(str(config.rootpath)), run_id, worker_id)
    if session.mode == "pipeline" and workerinput is None and not config.option.collectonly:
        _check_provider(session)
    config.stash[SESSION_KEY] = session
    if workerinput is None:
        config.pluginmanager.register(FalconController(session), "falcon-controller")
        if config.option.verbose >= 0 and not getattr(config.option, "numprocesses", None):
            session.on_event = Progress(config)


def _run_id(cfg: FalconConfig) -> str:
    """A new run id, or the one to resume (which must exist: resuming nothing is a usage error)."""
    from pytest_kernelfalcon.pipeline.rundir import new_run_id

    if cfg.falcon_resume is None:
        return new_run_id()
    if not (cfg.falcon_run_dir / cfg.falcon_resume).is_dir():
        raise pytest.UsageError(f"--falcon-resume {cfg.falcon_resume}: no such run in {cfg.falcon_run_dir}")
    return cfg.falcon_resume


def _check_provider(session: FalconSession) -> None:
    """Fail at start, loudly, on a provider that cannot work (no key, unknown name, no transcripts)."""
    try:
        session.validate_provider()
    except Exception as exc:  # the provider's own config error, whatever its class
        raise pytest.UsageError(f"falcon: {exc}") from exc


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Hand the controller's run id to each xdist worker so all share one run directory."""
    session = node.config.stash.get(SESSION_KEY, None)
    if session is not None:
        node.workerinput["falcon_run_id"] = session.run_id


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` under ``--falcon`` on CUDA: one worker per visible GPU (runs before configure)."""
    cfg = FalconConfig.from_pytest(config)
    if not cfg.falcon or cfg.device != "cuda":
        return None
    import os

    from pytest_kernelfalcon.core.gpus import auto_workers, cuda_device_count

    return auto_workers(dict(os.environ), cuda_device_count())


def pytest_report_header(config: pytest.Config) -> str | None:
    """One line at the top saying what is judged and where answers come from."""
    session = config.stash.get(SESSION_KEY, None)
    return session.header_line() if session else None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect a ``.py`` file defining ``Model``, ``get_inputs`` and ``get_init_inputs`` as a task."""
    if file_path.suffix != ".py" or SESSION_KEY not in parent.config.stash:
        return None
    from pytest_kernelfalcon.core.tasks import discover_tasks, looks_like_task, task_problem

    tasks = discover_tasks([file_path])
    if tasks:
        return TaskFileCollector.from_parent(parent, path=file_path, task=tasks[0])
    problem = task_problem(file_path) if looks_like_task(file_path) else None
    return BadTaskFile.from_parent(parent, path=file_path, problem=problem) if problem else None


class BadTaskFile(pytest.File):
    """A file that means to be a task but cannot be one: a collection error with the one-line reason."""

    def __init__(self, *, problem: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem

    def collect(self) -> list[pytest.Item]:
        """Raise the collection error."""
        raise self.CollectError(f"falcon: {self.problem}")


class TaskFileCollector(pytest.File):
    """A KernelBench-format task file: yields one item."""

    def __init__(self, *, task: TaskFile, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task

    def collect(self) -> list[pytest.Item]:
        """Return the single item for this task."""
        return [TaskItem.from_parent(self, name=self.task.id, task=self.task)]


class TaskFailed(Exception):
    """Raised by a task item whose outcome is a failure; carries the outcome."""

    def __init__(self, outcome: TaskOutcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


class TaskItem(pytest.Item):
    """One KernelBench task: runs the pipeline (or judges a candidate) and records the outcome."""

    def __init__(self, *, task: TaskFile, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task
        if task.missing:
            self.add_marker(pytest.mark.skip(reason=f"needs {', '.join(task.missing)} (not installed)"))

    def runtest(self) -> None:
        """Run the task; skip when the reference cannot run here; xfail a known failure; else fail."""
        session = self.config.stash[SESSION_KEY]
        outcome = session.run_task(self.task)
        self.user_properties.append((OUTCOME_PROPERTY, json.dumps(outcome.to_json())))
        if outcome.category == "reference_error":
            pytest.skip(f"reference cannot run here: {outcome.detail.splitlines()[0][:300]}")
        if outcome.category == "harness_error":
            self.session.shouldstop = f"falcon: harness error (not the candidate's): {outcome.detail}"
        elif not outcome.passed and (known := session.known_failure(self.task.id)) is not None:
            pytest.xfail(f"known failure (baseline: {known}; now: {outcome.category})")
        if not outcome.passed:
            raise TaskFailed(outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """Show the failing stage, category and the concrete detail, not a traceback."""
        if isinstance(excinfo.value, TaskFailed):
            out = excinfo.value.outcome
            if out.category == "harness_error":
                return f"{out.task_id}: harness error at {out.stage or 'check'} (not the candidate's): {out.detail}"
            return f"{out.task_id}: failed at {out.stage or 'check'}: {out.category}\n{out.detail}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        """Locate the item by its task file (line 0: skip reports need a line)."""
        return self.path, 0, self.task.id


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order tasks naturally (``8_`` before ``89_``); keep only this shard's under ``--falcon-shard I/N``."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    from pytest_kernelfalcon.core.tasks import natural_key

    slots = [i for i, item in enumerate(items) if isinstance(item, TaskItem)]
    ordered = sorted((items[i] for i in slots), key=lambda item: natural_key(item.nodeid))
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item
    if session.cfg.falcon_shard is None:
        return
    from pytest_kernelfalcon.reports.shard import select_shard

    index, count = session.cfg.falcon_shard
    tasks = [item for item in items if isinstance(item, TaskItem)]
    keep = set(select_shard([item.task.id for item in tasks], index, count))
    deselected = [item for item in tasks if item.task.id not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


class Progress:
    """Live progress of the pipeline on the terminal: stage, subgraph, worker, round, verdicts."""

    SHOWN = ("stage_start", "round", "verdict", "cancelled", "task_end")

    def __init__(self, config: pytest.Config) -> None:
        import threading

        self.config = config
        self.verbose = config.option.verbose
        self.lock = threading.Lock()  # generate workers report from several threads

    def __call__(self, event: dict[str, Any]) -> None:
        """Print one line for the events worth seeing (every event is in events.jsonl)."""
        kind = event.get("type")
        if kind not in self.SHOWN or (kind == "round" and self.verbose < 1):
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        with self.lock, (capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()):
            reporter.write_line(f"  [falcon] {describe_event(event)}")


def describe_event(event: dict[str, Any]) -> str:
    """Return a one-line human description of a pipeline event."""
    where = " ".join(str(event[k]) for k in ("stage", "subgraph") if event.get(k))
    who = f"w{event['worker']} r{event['round']}" if "worker" in event and "round" in event else ""
    what = event.get("category") or event.get("outcome") or ""
    if event.get("passed"):
        what = "verified" if event.get("type") == "verdict" else "passed"
    return " ".join(x for x in (event.get("task", ""), event["type"], where, who, str(what)) if x)


class FalconController:
    """Controller-side hooks (registered only where the run is steered): outcomes, report, gate."""

    def __init__(self, session: FalconSession) -> None:
        self.session = session
        self.interrupted = False

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Under ``-q`` (no header) still say in one line what is judged and where answers come from."""
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and (not reporter.showheader or reporter.no_header):
            reporter.write_line(self.session.header_line())

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Remember the interrupt: the summary prints the command that resumes the run."""
        self.interrupted = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """An xdist worker died running a task: record it as failed with category ``worker_crash``."""
        task_id = crashitem.split("::", 1)[-1]
        outcome = TaskOutcome(task_id, task_id.split("/", 1)[0], False, stage="check",
                              category="worker_crash", detail=str(report.longrepr))
        report.user_properties.append((OUTCOME_PROPERTY, json.dumps(outcome.to_json())))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Gather task outcomes (they travel with xdist reports as user properties)."""
        if report.when not in ("call", "???"):  # "???": xdist's report for a crashed worker
            return
        for name, value in report.user_properties:
            if name == OUTCOME_PROPERTY:
                outcome = TaskOutcome.from_json(json.loads(str(value)))
                if outcome.category != "reference_error":
                    self.session.outcomes.append(outcome)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the report and apply the CI gate (a failed gate fails the session)."""
        from pytest_kernelfalcon.summary import finish_run

        if session.config.option.collectonly:
            return
        if not finish_run(self.session) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Print per-level pass rates, failure categories, usage and the gate's verdict."""
        from pytest_kernelfalcon.summary import summary_text

        if terminalreporter.config.option.collectonly:
            return
        terminalreporter.section("kernelfalcon")
        for line in summary_text(self.session).splitlines():
            terminalreporter.write_line(line)
        if self.interrupted and self.session.mode == "pipeline":
            from pytest_kernelfalcon.summary import resume_command

            args = [str(a) for a in terminalreporter.config.invocation_params.args]
            terminalreporter.write_line(f"falcon: interrupted; finished tasks are kept in {self.session.run_dir}")
            terminalreporter.write_line(f"resume with: {resume_command(args, self.session.run_id)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Release the session's executors and providers."""
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
