"""Glue for ``FalconSession``: one ``RunContext`` per session, built lazily, and ``run_pipeline_task``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.pipeline.config import PipelineConfig, RunContext
from pytest_kernelfalcon.pipeline.prompts import load_prompts
from pytest_kernelfalcon.pipeline.rundir import RunDir
from pytest_kernelfalcon.pipeline.runner import run_task

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.outcome import TaskOutcome
    from pytest_kernelfalcon.core.tasks import TaskFile
    from pytest_kernelfalcon.session import FalconSession


@dataclass
class SessionPipeline:
    """The pipeline state a session owns (closed by ``FalconSession.close``)."""

    ctx: RunContext

    def close(self) -> None:
        """Close the provider."""
        self.ctx.close()


def pipeline_config(session: FalconSession) -> PipelineConfig:
    """Return the pipeline settings for a session's ``FalconConfig``."""
    cfg = session.cfg
    return PipelineConfig(workers=cfg.falcon_workers, max_rounds=cfg.falcon_max_rounds,
                          model=cfg.falcon_model, provider=cfg.resolved_provider(),
                          budget_usd=cfg.falcon_budget_usd, task_timeout_s=cfg.falcon_timeout,
                          check=session.check_options(), prompts_dir=cfg.falcon_prompts,
                          run_root=cfg.falcon_run_dir)


def make_provider(session: FalconSession, config: PipelineConfig) -> Any:
    """Return the session's provider: replay reads the transcripts, live ones use the model."""
    from pytest_kernelfalcon.llm import get_provider

    if config.provider == "replay":
        return get_provider("replay", root=session.transcripts_dir)
    return get_provider(config.provider, model=config.model)


def validate_provider(session: FalconSession) -> None:
    """Raise (``ProviderConfigError``, ``FileNotFoundError``) when the session's provider cannot work."""
    config = pipeline_config(session)
    if config.provider == "replay" and not session.transcripts_dir.is_dir():
        raise FileNotFoundError(f"replay: no transcript directory {session.transcripts_dir}")
    load_prompts(config.prompts_dir)
    make_provider(session, config).close()


def run_pipeline_task(session: FalconSession, task: TaskFile, on_event: Any = None) -> TaskOutcome:
    """Run ``task`` through the pipeline in ``session`` (its run directory, provider, checker)."""
    if session.pipeline is None:
        config = pipeline_config(session)
        rundir = RunDir.create(config.run_root, session.run_id)
        ctx = RunContext.build(config, make_provider(session, config), checker=session.checker(),
                               executor=session.checker().executor, rundir=rundir, on_event=on_event)
        session.pipeline = SessionPipeline(ctx)
    return run_task(task, session.pipeline.ctx)
