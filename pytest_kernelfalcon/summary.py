"""End of a run on the controller: build and write the report, apply the gate, render the summary."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.core.gpus import cuda_device_name

if TYPE_CHECKING:
    from pytest_kernelfalcon.session import FalconSession


def run_meta(session: FalconSession) -> dict[str, Any]:
    """Return the report's run metadata for ``session``."""
    cfg = session.cfg
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
    provider = None if session.mode == "check" else cfg.resolved_provider()
    return {
        "run_id": session.run_id,
        "run_dir": str(session.run_dir) if session.mode == "pipeline" else None,
        "config": config,
        "mode": session.mode,
        "provider": provider,
        "model": cfg.falcon_model if provider in ("anthropic", "openai") else None,
        "source": session_source(session),
        "device": cfg.device,
        "gpu": cuda_device_name() if cfg.device == "cuda" else None,
        "shard": list(cfg.falcon_shard) if cfg.falcon_shard else None,
        "prompt_hashes": session.prompt_hashes(),
        "started": session.started,
        "finished": utc_now(),
    }


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2026-12-02T10:15:00Z``)."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def resume_command(args: list[str], run_id: str) -> str:
    """The pytest command line that resumes run ``run_id`` (the same arguments, ``--falcon-resume`` set)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--falcon-resume":
            skip = True
        elif not arg.startswith("--falcon-resume="):
            kept.append(arg)
    return shlex.join(["pytest", *kept, "--falcon-resume", run_id])


def session_source(session: FalconSession) -> str:
    """How answers were produced: check, live, replay (recorded/hand-written) or scripted."""
    if session.mode == "check":
        return "check"
    sources = sorted({o.source for o in session.outcomes})
    if sources:
        return "+".join(sources)
    provider = session.cfg.resolved_provider()
    return {"anthropic": "live", "openai": "live"}.get(provider, provider)


def finish_run(session: FalconSession) -> bool:
    """Build the report, write it where asked, evaluate the gate; return whether the gate passed."""
    from pytest_kernelfalcon.reports.gate import evaluate_gate
    from pytest_kernelfalcon.reports.report import build_report, load_report, write_report

    report = build_report(session.outcomes, run_meta(session))
    session.report = report
    for path in report_paths(session):
        session.written += write_report(path, report)
    baseline = load_report(session.cfg.falcon_baseline) if session.cfg.falcon_baseline else None
    if baseline is None and session.cfg.falcon_fail_under is None:
        return True
    session.gate = evaluate_gate(report, baseline, session.cfg.falcon_fail_under)
    return session.gate.passed


def report_paths(session: FalconSession) -> list[Path]:
    """Where reports go: ``--falcon-report`` and, for agent runs, the run directory."""
    paths = [session.cfg.falcon_report] if session.cfg.falcon_report else []
    if session.mode == "pipeline" and session.run_dir.is_dir():
        paths.append(session.run_dir / "report.json")
    return [p for p in paths if p is not None]


def summary_text(session: FalconSession) -> str:
    """The terminal summary: tables per level, the gate's verdict, where things were written."""
    from pytest_kernelfalcon.reports.report import plot_note, summary_tables

    if session.report is None or not session.outcomes:
        return "no task ran to an outcome"
    lines = [] if session.mode == "check" else [f"answers: {session.report['meta']['source']}"]
    lines.append(summary_tables(session.report))
    if session.gate is not None:
        lines.append(session.gate.summary())
    lines += [f"written: {path}" for path in session.written]
    if (note := plot_note(session.written)) is not None:
        lines.append(note)
    if session.mode == "pipeline":
        lines.append(f"run directory: {session.run_dir}")
    return "\n".join(lines)
