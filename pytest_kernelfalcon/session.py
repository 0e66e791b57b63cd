"""``FalconSession``: owns one pytest run - its config, checker, provider, run directory, outcomes."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.config import FalconConfig
from pytest_kernelfalcon.core.outcome import TaskOutcome
from pytest_kernelfalcon.core.verdict import Category

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.checker import Checker
    from pytest_kernelfalcon.core.tasks import TaskFile
    from pytest_kernelfalcon.pipeline.config import PipelineConfig
    from pytest_kernelfalcon.pipeline.context import RunContext


@dataclass
class FalconSession:
    """The state of one run, in one process (controller or xdist worker)."""

    cfg: FalconConfig
    rootdir: Path
    run_id: str
    worker_id: str | None = None
    on_event: Any = None  # live progress callback for the pipeline (None: events only on disk)
    outcomes: list[TaskOutcome] = field(default_factory=list)
    report: dict[str, Any] | None = None
    gate: Any = None
    written: list[Path] = field(default_factory=list)
    _checker: Checker | None = None
    _executor: Any = None  # the checker's executor, owned here (the pipeline's checkers share it)
    pipeline: RunContext | None = None  # the pipeline's run context, built on the first task
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _baseline: dict[str, str] | None = None
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def known_failure(self, task_id: str) -> str | None:
        """The baseline's category for a task that failed there too (a known failure), else ``None``."""
        if self.cfg.falcon_baseline is None:
            return None
        if self._baseline is None:
            from pytest_kernelfalcon.reports.report import load_report

            tasks = load_report(self.cfg.falcon_baseline)["tasks"]
            self._baseline = {t["task_id"]: str(t.get("category") or "failed") for t in tasks if not t["passed"]}
        return self._baseline.get(task_id)

    @property
    def mode(self) -> str:
        """``check`` when judging candidates from a directory, else ``pipeline``."""
        return "check" if self.cfg.falcon_candidates is not None else "pipeline"

    @property
    def transcripts_dir(self) -> Path:
        """Where the replay provider reads answers (default: ``kernelbench/transcripts``)."""
        return self.cfg.falcon_transcripts or self.rootdir / "kernelbench" / "transcripts"

    @property
    def run_dir(self) -> Path:
        """This run's directory."""
        return self.cfg.falcon_run_dir / self.run_id

    def header_line(self) -> str:
        """The one line printed at the top of the run: what is judged, and where answers come from."""
        where = f"device {self.cfg.device}, {self.cfg.shapes} check profile, {self.cfg.falcon_seeds} seeds"
        if self.cfg.falcon_precision != "fp32":
            where += f", precision {self.cfg.falcon_precision}"
        if self.cfg.falcon_allow_torch:
            where += f", torch allowed: {','.join(self.cfg.falcon_allow_torch)}"
        if self.mode == "check":
            return f"falcon: judging candidates from {self.cfg.falcon_candidates} ({where})"
        provider = self.cfg.resolved_provider()
        if provider == "replay" and self.cfg.falcon_provider == "auto":
            return (f"falcon: offline - no ANTHROPIC_API_KEY, replaying hand-written transcripts from "
                    f"{self.transcripts_dir} (not model output); {where}; run {self.run_dir}")
        return f"falcon: provider {provider}, model {self.cfg.falcon_model}; {where}; run {self.run_dir}"

    def prompt_hashes(self) -> dict[str, str]:
        """The sha256 of each prompt template in use (empty when judging candidates)."""
        if self.mode == "check":
            return {}
        from pytest_kernelfalcon.pipeline.prompts import template_hashes

        return template_hashes(self.cfg.falcon_prompts)

    def check_options(self) -> Any:
        """The checker options this session uses for final acceptance."""
        from pytest_kernelfalcon.checker.checker import CheckOptions
        from pytest_kernelfalcon.core.gpus import gpu_for_worker

        device = self.cfg.device
        gpu = gpu_for_worker(self.worker_id, dict(os.environ), _cuda_count()) if device == "cuda" else None
        return CheckOptions(device=device, shapes=self.cfg.shapes, seeds=self.cfg.falcon_seeds,
                            seed=self.cfg.falcon_seed, dtype=self.cfg.falcon_dtype,
                            timeout_s=self.cfg.falcon_check_timeout, gpu=gpu, data_path=self.cfg.falcon_data_path,
                            reference_cache=self.cfg.falcon_reference_cache, precision=self.cfg.falcon_precision,
                            allow_torch=self.cfg.falcon_allow_torch)

    def checker(self) -> Checker:
        """The process's checker (reference outputs cached across items)."""
        with self._lock:
            return self._checker_locked()

    def _checker_locked(self) -> Checker:
        if self._checker is None:
            from pytest_kernelfalcon.checker.checker import Checker

            options = self.check_options()
            self._executor = self.make_executor(options)
            self._checker = Checker(options, self._executor)
        return self._checker

    def make_executor(self, options: Any) -> Any:
        """The executor for candidate jobs: warm workers (one pool per process) or a fresh process each."""
        from pytest_kernelfalcon.checker.checker import resolve_device
        from pytest_kernelfalcon.executor.cold import ColdExecutor

        if self.cfg.executor == "cold":
            return ColdExecutor()
        from pytest_kernelfalcon.executor.warm import WarmExecutor

        return WarmExecutor(pool_size=self.cfg.falcon_workers, device=resolve_device(options.device),
                            gpu=options.gpu)

    def run_task(self, task: TaskFile) -> TaskOutcome:
        """Run one task in this session's mode (timing it under ``--falcon-bench``); return its outcome."""
        if self.mode == "check":
            outcome = self.judge_candidate(task)
        else:
            from pytest_kernelfalcon.pipeline.runner import run_task

            outcome = run_task(task, self.run_context())
        return self.bench(task, outcome) if self.cfg.falcon_bench and outcome.passed else outcome

    def bench(self, task: TaskFile, outcome: TaskOutcome) -> TaskOutcome:
        """Time the verified ``ModelNew`` against eager and ``torch.compile``; add speed-ups."""
        from pytest_kernelfalcon.checker.timing import BenchOptions, bench_task

        model_new = outcome.model_new or outcome.extra.get("candidate")
        if model_new is None:
            return outcome
        from pytest_kernelfalcon.executor.deadline import Deadline, DeadlinePassed

        gpu = self.check_options().gpu
        deadline = Deadline(self.cfg.falcon_timeout, what=f"timing {task.id} (--falcon-timeout)")
        try:
            result = bench_task(task.path, model_new, BenchOptions(gpu=gpu, dtype=self.cfg.falcon_dtype),
                                cancel=deadline)
        except DeadlinePassed as exc:  # not timed; the verdict stands
            return dataclasses.replace(outcome, extra={**outcome.extra, "bench": {"error": str(exc)}})
        return dataclasses.replace(outcome, speedup_eager=result.speedup_eager,
                                   speedup_compile=result.speedup_compile,
                                   extra={**outcome.extra, "bench": result.to_json()})

    def judge_candidate(self, task: TaskFile) -> TaskOutcome:
        """Verify the candidate of the same name from ``--falcon-candidates``."""
        start = time.perf_counter()
        candidate = find_candidate(self.cfg.falcon_candidates, task)
        if candidate is None:
            return TaskOutcome(task.id, task.level, False, stage="check",
                               category=Category.MISSING_CANDIDATE.value,
                               detail=f"no candidate {task.level}/{task.path.name} or {task.path.name} "
                                      f"in {self.cfg.falcon_candidates}")
        from pytest_kernelfalcon.executor.deadline import Deadline

        deadline = Deadline(self.cfg.falcon_timeout, what=f"{task.id} (--falcon-timeout)")
        verdict = self.checker().verify(task.path, candidate, cancel=deadline).naming(str(candidate))
        return TaskOutcome(
            task.id, task.level, verdict.passed, stage=None if verdict.passed else "check",
            category=verdict.category.value if verdict.category else None, detail=verdict.detail,
            wall_s=time.perf_counter() - start, seeds=verdict.seeds, shapes=verdict.shapes,
            low_signal=verdict.low_signal, source="check", extra={"candidate": str(candidate)}).with_verdict(verdict)

    def pipeline_config(self) -> PipelineConfig:
        """The pipeline's frozen settings for this session."""
        return self.cfg.pipeline_config(self.check_options())

    def make_provider(self, config: PipelineConfig) -> Any:
        """Return the session's provider: replay reads the transcripts, live ones use the model."""
        from pytest_kernelfalcon.llm import get_provider

        if config.provider == "replay":
            return get_provider("replay", root=self.transcripts_dir)
        if config.provider == "scripted":
            return get_provider(config.provider, model=config.model)
        options: dict[str, Any] = {"model": config.model, "timeout": config.llm_timeout_s}
        if config.base_url:
            options["base_url"] = config.base_url
        return get_provider(config.provider, **options)

    def validate_provider(self) -> None:
        """Raise (``ProviderConfigError``, ``FileNotFoundError``) when the session's provider cannot work."""
        from pytest_kernelfalcon.pipeline.prompts import load_prompts

        config = self.pipeline_config()
        if config.provider == "replay" and not self.transcripts_dir.is_dir():
            raise FileNotFoundError(f"replay: no transcript directory {self.transcripts_dir}")
        load_prompts(config.prompts_dir)
        self.make_provider(config).close()

    def run_context(self) -> RunContext:
        """The pipeline's run context (run directory, recorded provider, this session's checker), built once."""
        with self._lock:
            if self.pipeline is None:
                from pytest_kernelfalcon.pipeline.context import RunContext
                from pytest_kernelfalcon.pipeline.rundir import RunDir

                config = self.pipeline_config()
                rundir = RunDir.create(config.run_root, self.run_id)
                checker = self._checker_locked()
                self.pipeline = RunContext.build(config, self.make_provider(config), checker=checker,
                                                 executor=checker.executor, rundir=rundir, on_event=self.on_event)
            return self.pipeline

    def close(self) -> None:
        """Release executors and providers."""
        if self._checker is not None:
            self._checker.close()
        if self.pipeline is not None:
            self.pipeline.close()
        if self._executor is not None:
            self._executor.close()


def find_candidate(directory: Path | None, task: TaskFile) -> Path | None:
    """Return ``DIR/<level>/<file>`` or ``DIR/<file>`` for a task, whichever exists first."""
    if directory is None:
        return None
    for path in (directory / task.level / task.path.name, directory / task.path.name):
        if path.is_file():
            return path
    return None


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
