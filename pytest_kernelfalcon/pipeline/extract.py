"""Stage 2, extract: run ``FusedModel`` once in a child process and turn its subgraph calls into specs."""

from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.core.protocol import ExtractJob
from pytest_kernelfalcon.pipeline.rundir import atomic_write_json, atomic_write_text, read_json
from pytest_kernelfalcon.pipeline.sources import spec_task_source


@dataclass(frozen=True)
class ExtractRequest:
    """What to extract: the task, the accepted fused file, where to write, how to run the child."""

    task_path: Path
    fused_path: Path
    out_dir: Path
    device: str = "cpu"
    gpu: str | None = None
    timeout_s: float = 300.0
    seed: int = 42
    executor: Any = None  # the checker's executor (warm or cold); None: a fresh process


@dataclass(frozen=True)
class SubgraphSpec:
    """One distinct subgraph: its recorded use, and the task file a kernel is checked against."""

    id: str
    class_name: str
    task_path: Path
    count: int
    data: dict[str, Any]


@dataclass(frozen=True)
class ExtractResult:
    """The specs (empty on failure), the ``specs.json`` path, and an error message if any."""

    specs: tuple[SubgraphSpec, ...]
    specs_path: Path | None
    error: str | None = None
    outside_ops: tuple[tuple[str, int], ...] = ()
    resumed: bool = False


def extract_subgraphs(request: ExtractRequest, cancel: threading.Event | None = None) -> ExtractResult:
    """Return the subgraph specs of the fused model (reusing ``specs.json`` when already written)."""
    specs_path = request.out_dir / "specs.json"
    if specs_path.is_file():
        return load_specs(specs_path, resumed=True)
    report = run_extract_child(request, cancel)
    error = report.get("error")
    if error:
        return ExtractResult((), None, error=str(error.get("message", error)))
    return write_specs(request, report)


def load_specs(specs_path: Path, resumed: bool = False) -> ExtractResult:
    """Return the specs recorded in ``specs.json``."""
    data = read_json(specs_path)
    specs = tuple(_spec(s, specs_path.parent) for s in data["specs"])
    outside = tuple((k, int(v)) for k, v in data.get("outside_ops", {}).items())
    return ExtractResult(specs, specs_path, outside_ops=outside, resumed=resumed)


def _spec(data: dict[str, Any], out_dir: Path) -> SubgraphSpec:
    path = out_dir / "subgraphs" / f"{data['id']}.py"
    return SubgraphSpec(data["id"], data["class_name"], path, int(data["count"]), data)


def write_specs(request: ExtractRequest, report: dict[str, Any]) -> ExtractResult:
    """Write one task file per spec, then ``specs.json`` last (its presence marks the stage done)."""
    fused = request.fused_path.read_text(encoding="utf-8")
    for spec in report["specs"]:
        atomic_write_text(request.out_dir / "subgraphs" / f"{spec['id']}.py", spec_task_source(spec, fused))
    data = {"task": str(request.task_path), "fused": str(request.fused_path),
            "traced_on": report.get("traced_on"), "meta_error": report.get("meta_error"),
            "outside_ops": report.get("outside_ops", {}), "calls": report.get("calls", []),
            "specs": report["specs"]}
    atomic_write_json(request.out_dir / "specs.json", data)
    return load_specs(request.out_dir / "specs.json")


def run_extract_child(request: ExtractRequest, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run the extract job in a fresh child process (scrubbed env, process group, timeout)."""
    import torch

    with tempfile.TemporaryDirectory(prefix="kf-extract-") as tmp:
        jobdir = Path(tmp)
        (jobdir / "task.py").write_text(request.task_path.read_text(encoding="utf-8"), encoding="utf-8")
        (jobdir / "fused.py").write_text(request.fused_path.read_text(encoding="utf-8"), encoding="utf-8")
        job = ExtractJob(task="task.py", fused="fused.py", entry="FusedModel", construct_seed=request.seed,
                         input_seed=request.seed, device=request.device, timeout_s=request.timeout_s)
        torch.save(job.to_wire(), jobdir / "job.pt")
        return _launch(jobdir, request, cancel)


def _launch(jobdir: Path, request: ExtractRequest, cancel: threading.Event | None) -> dict[str, Any]:
    from pytest_kernelfalcon.executor.base import Job
    from pytest_kernelfalcon.executor.cold import ColdExecutor

    executor = request.executor or ColdExecutor()
    result = executor.run(Job(jobdir, request.timeout_s, request.device, request.gpu), cancel)
    if result.timed_out or result.cancelled:
        how = "timed out" if result.timed_out else "was cancelled"
        return {"error": {"message": f"extract child {how} after {request.timeout_s:g} s"}}
    if result.report is None:
        return {"error": {"message": f"extract child failed: {result.report_error}\n{result.stderr_tail[-2000:]}"}}
    return result.report


def specs_summary(result: ExtractResult) -> str:
    """Return a one-line description of the specs (for events and progress)."""
    return json.dumps([{"id": s.id, "class": s.class_name, "count": s.count} for s in result.specs])
