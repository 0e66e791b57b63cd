"""The job records: what the parent writes is what the child reads, through a weights-only load."""

from __future__ import annotations

import io
from typing import Any

import pytest

from pytest_kernelfalcon.core import protocol as wire

torch = pytest.importorskip("torch")


def _through_file(data: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(data, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


PLAN = {"kind": "scaled", "overrides": {"N": 64}}
JOBS_BUILT: list[wire.JobRecord] = [
    wire.ReferenceJob(
        device="cpu", dtype="fp32", construct_seed=42,
        plans=(wire.PlanFile("task_0.py", 0, PLAN, (1.0, 0.0)), wire.PlanFile("task_1.py", 1, PLAN, (2.0, -1.0))),
        pick="first_fit", budget_numel=1 << 16, last_exempt=True, seeds=(42, 43), strong_seeds=(1042,),
        strong=(4.0, -2.0), resident_above=None),
    wire.CandidateJob(
        entry="ModelNew", device="cpu", dtype="bf16", audit=True, poison=False,
        cases=(wire.CandidateCase(42, (3, torch.Size([2, 2]), "tanh"), {"w": torch.arange(4.0)},
                                  (wire.TrialInputs(42, (torch.ones(3), 1.5, (1, 2))),)),)),
    wire.ResidentJob(
        entry="ModelNew", device="cuda", dtype="fp16", audit=True, poison=True, timeout_s=30.0,
        cases=(wire.ResidentCase("task_0.py", 42, PLAN, (wire.TrialDraw(42, False, (1.0, 0.0)),
                                                         wire.TrialDraw(1042, True, (4.0, -2.0)))),)),
    wire.ExtractJob(
        task="task.py", fused="fused.py", entry="FusedModel", construct_seed=1, input_seed=1, device="cpu",
        timeout_s=60.0),
    wire.BenchJob(
        task_path="/j/task.py", model_new_path="/j/candidate.py", bandwidth_gbps=None, dtype="fp32", seed=0,
        input_sets=3, warmup_ms=25.0, rep_ms=100.0, min_reps=5, max_reps=1000, compile=False),
]


def _same(a: Any, b: Any) -> bool:
    """Equality that compares tensors by value (records hold tensors inside)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "to_wire"):
        return type(a) is type(b) and _same(a.to_wire(), b.to_wire())
    return bool(a == b)


@pytest.mark.parametrize("job", JOBS_BUILT, ids=lambda j: type(j).__name__)
def test_a_job_comes_back_as_the_same_record_after_a_weights_only_load(job: wire.JobRecord) -> None:
    loaded = _through_file(job.to_wire())
    assert loaded["version"] == 1 and loaded["mode"] == job.mode
    back = wire.read_job(loaded)
    assert type(back) is type(job) and _same(back, job)
    assert wire.JOBS[job.mode] is type(job)


def test_reference_result_round_trips_with_and_without_probes() -> None:
    case = wire.ReferenceCase(plan=PLAN, index=1, construct_seed=42, init_inputs=(8,),
                              trials=({"seed": 42, "inputs": [torch.ones(2)], "outputs": [torch.zeros(2)]},),
                              strong_trials=(), state_dict={"w": torch.ones(1)})
    for result in (wire.ReferenceResult((case,), ({"plan": PLAN, "error": "over budget"},)),
                   wire.ReferenceResult((case,), (), ("zeros",))):
        back = wire.ReferenceResult.from_wire(_through_file(result.to_wire()))
        assert _same(back, result) and back.probes == result.probes


@pytest.mark.parametrize(("data", "message"), [
    ({"mode": "candidate"}, "not version 1"),
    ({"version": 2, "mode": "candidate"}, "not version 1"),
    ({"version": 1, "mode": "teleport"}, "unknown job mode 'teleport'"),
    ({"version": 1, "mode": "candidate", "entry": "ModelNew"}, "CandidateJob: missing device, dtype, audit, poison, cases"),
    ({"version": 1, "mode": "extract", "task": "t.py", "fused": "f.py", "entry": "E", "construct_seed": 1,
      "input_seed": 1, "device": "cpu", "timeout_s": 1.0, "extra": 0}, None),
])
def test_read_job_refuses_what_is_not_a_record(data: dict[str, Any], message: str | None) -> None:
    if message is None:  # keys it does not know are left out
        assert wire.read_job(data) == wire.ExtractJob("t.py", "f.py", "E", 1, 1, "cpu", 1.0)
        return
    with pytest.raises(wire.ProtocolError, match=message):
        wire.read_job(data)


def test_a_nested_record_that_is_not_a_dict_is_refused() -> None:
    loaded = JOBS_BUILT[0].to_wire()
    loaded["plans"] = ["task_0.py"]
    with pytest.raises(wire.ProtocolError, match="PlanFile: expected a dict"):
        wire.read_job(loaded)
