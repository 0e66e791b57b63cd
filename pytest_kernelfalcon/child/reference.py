"""Reference jobs (in the child): build the task's Model, draw seeded inputs, run every shape plan.

The trial records written here are what the parent compares candidates against.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child.precision import PlanPrecision
from pytest_kernelfalcon.child.runtime import (
    JobError,
    aliases,
    draw_inputs,
    exec_file,
    input_numel,
    inputs_after,
    pin_tf32_off,
    short_error,
    torch_dtype,
)
from pytest_kernelfalcon.child.taskfacts import case_facts
from pytest_kernelfalcon.core.compare import low_signal_probes, tolerance_for
from pytest_kernelfalcon.core.handoff import to_host
from pytest_kernelfalcon.core.protocol import (
    PlanFile,
    PlanTrial,
    ReferenceCase,
    ReferenceJob,
    ReferenceResult,
    task_valued,
)


def reference_forward(model: Any, inputs: list[Any], seed: int) -> tuple[list[Any], list[Any]]:
    """Run the reference on clones of ``inputs``; return (flattened outputs, the clones after forward).

    Raises ``JobError`` (reference_error) when an output has NaN/inf.
    """
    import torch

    from pytest_kernelfalcon.core.compare import all_finite, flatten_outputs

    clones = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
    torch.manual_seed(seed)
    with torch.no_grad():
        outputs = flatten_outputs(model(*clones))
    if not all_finite([o for o in outputs if not isinstance(o, str)]):
        raise JobError("reference_error", f"reference output has NaN/inf for seed {seed}")
    return outputs, clones


def reference_trial(model: Any, get_inputs: Any, job: ReferenceJob, seed: int, transform: tuple[Any, ...],
                    strong: bool = False, values: str = "task",
                    kept: list[tuple[list[Any], list[Any]]] | None = None,
                    precision: PlanPrecision | None = None) -> dict[str, Any]:
    """Run the reference on one seed's inputs (on clones) and return the trial record; ``kept``
    receives the (inputs, outputs) still on the device, for the low-signal probes; ``precision``
    adds what the plan measures of rounding (``child/precision.py``)."""
    dtype = torch_dtype(job.dtype)
    inputs = draw_inputs(get_inputs, seed, job.device, dtype, tuple(transform))
    outputs, clones = reference_forward(model, inputs, seed)
    host_in = [to_host(x, f"get_inputs()[{i}]") for i, x in enumerate(inputs)]
    host_out = [to_host(o, f"reference output {i}") for i, o in enumerate(outputs)]
    if kept is not None:
        kept.append((inputs, outputs))
    record = {"seed": seed, "strong": strong, "values": values, "inputs": host_in, "outputs": host_out,
              "inputs_after": _inputs_after(inputs, host_in, clones), "aliases": aliases(outputs, clones)}
    if precision is not None:
        precision.measure(record, inputs, outputs, seed)
    return record


def entry_trials(entry: PlanFile, job: ReferenceJob) -> list[PlanTrial]:
    """The trials of a plan: its own ``trials``, else the job's seeds at the plan's transform."""
    if entry.trials is not None:
        return list(entry.trials)
    return [PlanTrial(seed, entry.transform) for seed in job.seeds]


def plain_trials(model: Any, get_inputs: Any, entry: PlanFile, job: ReferenceJob,
                 kept: list[tuple[list[Any], list[Any]]],
                 precision: PlanPrecision | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run a plan's trials: (records, dropped value draws); ``kept`` receives the task-valued trials'
    device tensors (low-signal probes look at the task's own values only: value draws make trivial answers
    pass, e.g. ReLU of negatives).

    A trial at drawn values (not the task's own) that the reference cannot run or that makes
    the reference non-finite is dropped and reported, never judged; at the task's values it fails the plan.
    """
    trials: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for trial in entry_trials(entry, job):
        task_valued = trial.values == "task"
        try:
            trials.append(reference_trial(model, get_inputs, job, trial.seed, trial.transform, values=trial.values,
                                          kept=kept if task_valued else None, precision=precision))
        except Exception as exc:
            if task_valued:
                raise
            dropped.append({"seed": trial.seed, "values": trial.values, "error": short_error(exc)})
    if not trials:
        raise JobError("reference_error", "every value draw was dropped: " + "; ".join(d["error"] for d in dropped))
    return trials, dropped


def _inputs_after(inputs: list[Any], host_in: list[Any], clones: list[Any]) -> list[Any]:
    """Per input, None when forward left it unchanged (compared where it lives), else its host copy after."""
    import torch

    def same(a: Any, b: Any) -> bool:
        return not isinstance(b, torch.Tensor) or (a.shape == b.shape and torch.equal(a.nan_to_num(), b.nan_to_num()))

    if all(same(a, b) for a, b in zip(inputs, clones, strict=False)):
        return [None] * len(host_in)
    return inputs_after(host_in, clones)


def build_reference(task: Any, seed: int, device: str, dtype: str) -> tuple[Any, list[Any]]:
    """Construct ``Model`` with the init inputs drawn from ``seed`` on ``device`` in ``dtype``."""
    import torch

    torch.manual_seed(seed)
    init_inputs = list(task.get_init_inputs())
    torch.manual_seed(seed)
    model = task.Model(*init_inputs).to(device).to(torch_dtype(dtype))
    return model, init_inputs


def reference_case(task: Any, entry: PlanFile, job: ReferenceJob, tf32_defaults: tuple[bool, bool]) -> ReferenceCase:
    """Run the reference of one shape plan over every trial seed and return the case record."""
    model, init_inputs = build_reference(task, job.construct_seed, job.device, job.dtype)
    # the state as constructed: forward may update buffers (e.g. BatchNorm running stats)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    kept: list[tuple[list[Any], list[Any]]] = []
    role = entry.plan.get("role", "task")
    precision = PlanPrecision(model, job, role, tf32_defaults)
    trials, dropped = plain_trials(model, task.get_inputs, entry, job, kept, precision)
    probes = low_signal_probes(kept, tolerance_for(job.dtype))  # on the device, where the tensors are
    del kept
    strong: list[dict[str, Any]] = []
    plan = entry.plan
    # the strengthened trials are used only for a low-signal task; with one plan that is known here
    if entry.strong and (probes or job.pick != "first_fit"):
        try:
            strong = [reference_trial(model, task.get_inputs, job, s, job.strong, True) for s in job.strong_seeds]
        except Exception as exc:  # strengthened inputs outside the task's domain: skip them
            plan = {**plan, "strong_error": short_error(exc)}
    facts = {**_facts(model, task, entry, job, trials), "kernelbench": precision.facts()} if role == "task" else {}
    del precision
    return ReferenceCase(plan=plan, index=entry.index, construct_seed=job.construct_seed,
                         init_inputs=tuple(to_host(x, f"get_init_inputs()[{i}]") for i, x in enumerate(init_inputs)),
                         state_dict=state, probes=tuple(probes),
                         trials=tuple(trials), strong_trials=tuple(strong), facts=facts, dropped=tuple(dropped))


def _facts(model: Any, task: Any, entry: PlanFile, job: ReferenceJob, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The task's facts from its own plan's trials at the task's own values (value draws would hide an output
    that is constant or zero on the task's inputs) and one repeated forward of the first (after every trial)."""
    trials = [t for t in trials if task_valued(t)]
    first = next((t.transform for t in entry_trials(entry, job) if trials and t.seed == trials[0]["seed"]),
                 entry.transform)
    return case_facts(reference_forward, model, task.get_inputs, job, first, trials)


def over_budget(task: Any, job: ReferenceJob) -> str | None:
    """Return why a plan's inputs exceed the job's numel budget (measured on meta), or None."""
    budget = job.budget_numel
    if budget is None:
        return None
    numel = input_numel(task.get_inputs)
    if numel is None:
        return "input size could not be measured on the meta device"
    return f"inputs over budget ({numel} > {budget} elements)" if numel > budget else None


def _plan_case(jobdir: Path, k: int, job: ReferenceJob, tf32_defaults: tuple[bool, bool]) -> ReferenceCase | str:
    plan = job.plans[k]
    task = exec_file(jobdir / plan.file, f"kf_task_{k}")
    exempt = job.last_exempt and k == len(job.plans) - 1
    reason = None if exempt else over_budget(task, job)
    return reason if reason else reference_case(task, plan, job, tf32_defaults)


def run_reference(jobdir: Path, job: ReferenceJob) -> dict[str, Any]:
    """Reference mode: pick (``first_fit``) or run ``each`` plan; failing plans are discarded.

    Under ``each``, plans sharing a ``group`` are alternatives: the first that runs is kept.
    """
    tf32_defaults = pin_tf32_off()
    cases: list[ReferenceCase] = []
    discarded: list[dict[str, Any]] = []
    filled: set[Any] = set()  # groups (``each``) that have a case: their later alternatives are skipped
    for k, plan in enumerate(job.plans):
        if job.pick == "first_fit" and cases:
            break
        if plan.group is not None and plan.group in filled:
            continue
        try:
            case = _plan_case(jobdir, k, job, tf32_defaults)
        except Exception as exc:
            case = short_error(exc)
        if isinstance(case, str):
            discarded.append({"plan": plan.plan, "error": case})
        else:
            cases.append(case)
            filled.add(plan.group)
    if not cases:
        raise JobError("reference_error", "reference failed on every shape plan: "
                       + "; ".join(d["error"] for d in discarded))
    probes = tuple(p for case in cases for p in case.probes)
    return ReferenceResult(tuple(replace(c, probes=()) for c in cases), tuple(discarded), probes).to_wire()
