"""Reference jobs (in the child): build the task's Model, draw seeded inputs, run every shape plan.

The trial records written here are what the parent compares candidates against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from pytest_kernelfalcon.core.handoff import to_host


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


def reference_trial(model: Any, get_inputs: Any, job: dict[str, Any], seed: int,
                    transform: tuple[Any, ...], strong: bool = False, values: str = "task") -> dict[str, Any]:
    """Run the reference on one seed's inputs (on clones) and return the trial record."""
    dtype = torch_dtype(job["dtype"])
    inputs = draw_inputs(get_inputs, seed, job["device"], dtype, transform)
    outputs, clones = reference_forward(model, inputs, seed)
    host_in = [to_host(x, f"get_inputs()[{i}]") for i, x in enumerate(inputs)]
    host_out = [to_host(o, f"reference output {i}") for i, o in enumerate(outputs)]
    record = {"seed": seed, "strong": strong, "values": values, "inputs": host_in, "outputs": host_out,
              "inputs_after": inputs_after(host_in, clones), "aliases": aliases(outputs, clones)}
    if values != "task":  # drawn values: how far the run dtype's own rounding goes there
        record["ref_error"] = float64_error(model, inputs, outputs, seed)
    return record


def float64_error(model: Any, inputs: list[Any], outputs: list[Any], seed: int) -> list[float] | None:
    """Per output, max |reference - the same model in float64| on these inputs; None when float64 fails."""
    import copy

    import torch

    from pytest_kernelfalcon.core.compare import flatten_outputs

    try:
        wide = copy.deepcopy(model).to(torch.float64)
        args = [x.detach().to(torch.float64) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
                for x in inputs]
        torch.manual_seed(seed)
        with torch.no_grad():
            exact = flatten_outputs(wide(*args))
    except Exception:
        return None
    errors = []
    for got, want in zip(outputs, exact, strict=False):
        same = isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor) and got.shape == want.shape
        if not same or not got.is_floating_point() or not got.numel():
            errors.append(0.0)
            continue
        diff = (got.to(torch.float64) - want).abs()
        errors.append(float(torch.where(torch.isfinite(diff), diff, torch.zeros_like(diff)).max()))
    return errors if len(errors) == len(outputs) else None


def entry_trials(entry: dict[str, Any], job: dict[str, Any]) -> list[tuple[int, tuple[Any, ...], str]]:
    """(seed, transform, value distribution) per trial of a plan: its own ``trials``, else the job's seeds."""
    if "trials" in entry:
        return [(int(t["seed"]), tuple(t["transform"]), str(t.get("values", "task"))) for t in entry["trials"]]
    return [(seed, tuple(entry["transform"]), "task") for seed in job["seeds"]]


def plain_trials(model: Any, get_inputs: Any, entry: dict[str, Any],
                 job: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run a plan's trials: (records, dropped value draws).

    A trial at drawn values (not the task's own) that the reference cannot run or that makes
    the reference non-finite is dropped and reported, never judged; at the task's values it fails the plan.
    """
    trials: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for seed, transform, values in entry_trials(entry, job):
        try:
            trials.append(reference_trial(model, get_inputs, job, seed, transform, values=values))
        except Exception as exc:
            if values == "task":
                raise
            dropped.append({"seed": seed, "values": values, "error": short_error(exc)})
    if not trials:
        raise JobError("reference_error", "every value draw was dropped: " + "; ".join(d["error"] for d in dropped))
    return trials, dropped


def build_reference(task: Any, job: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Construct ``Model`` with the seeded init inputs on the job's device and dtype."""
    import torch

    seed = job["construct_seed"]
    torch.manual_seed(seed)
    init_inputs = list(task.get_init_inputs())
    torch.manual_seed(seed)
    model = task.Model(*init_inputs).to(job["device"]).to(torch_dtype(job["dtype"]))
    return model, init_inputs


def reference_case(task: Any, entry: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Run the reference of one shape plan over every trial seed and return the case record."""
    model, init_inputs = build_reference(task, job)
    # the state as constructed: forward may update buffers (e.g. BatchNorm running stats)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    strong_tf = tuple(job["strong"])
    trials, dropped = plain_trials(model, task.get_inputs, entry, job)
    strong: list[dict[str, Any]] = []
    plan = entry["plan"]
    try:
        if entry.get("strong", True):
            strong = [reference_trial(model, task.get_inputs, job, s, strong_tf, True) for s in job["strong_seeds"]]
    except Exception as exc:  # strengthened inputs outside the task's domain: skip them
        plan = {**plan, "strong_error": short_error(exc)}
    return {"plan": plan, "index": entry["index"], "construct_seed": job["construct_seed"],
            "init_inputs": [to_host(x, f"get_init_inputs()[{i}]") for i, x in enumerate(init_inputs)],
            "state_dict": state,
            "trials": trials, "strong_trials": strong, "dropped": dropped}


def over_budget(task: Any, job: dict[str, Any]) -> str | None:
    """Return why a plan's inputs exceed the job's numel budget (measured on meta), or None."""
    budget = job.get("budget_numel")
    if budget is None:
        return None
    numel = input_numel(task.get_inputs)
    if numel is None:
        return "input size could not be measured on the meta device"
    return f"inputs over budget ({numel} > {budget} elements)" if numel > budget else None


def _plan_case(jobdir: Path, k: int, job: dict[str, Any]) -> dict[str, Any] | str:
    plan = job["plans"][k]
    task = exec_file(jobdir / plan["file"], f"kf_task_{k}")
    exempt = job.get("last_exempt", True) and k == len(job["plans"]) - 1
    reason = None if exempt else over_budget(task, job)
    return reason if reason else reference_case(task, plan, job)


def run_reference(jobdir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Reference mode: pick (``first_fit``) or run ``each`` plan; failing plans are discarded.

    Under ``each``, plans sharing a ``group`` are alternatives: the first that runs is kept.
    """
    pin_tf32_off()
    cases: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []
    filled: set[Any] = set()  # groups (``each``) that have a case: their later alternatives are skipped
    for k, plan in enumerate(job["plans"]):
        if job["pick"] == "first_fit" and cases:
            break
        if plan.get("group") is not None and plan["group"] in filled:
            continue
        try:
            case = _plan_case(jobdir, k, job)
        except Exception as exc:
            case = short_error(exc)
        if isinstance(case, str):
            discarded.append({"plan": plan["plan"], "error": case})
        else:
            cases.append(case)
            filled.add(plan.get("group"))
    if not cases:
        raise JobError("reference_error", "reference failed on every shape plan: "
                       + "; ".join(d["error"] for d in discarded))
    return {"cases": cases, "discarded": discarded}
