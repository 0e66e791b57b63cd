"""Runs INSIDE the untrusted child process: one reference or candidate job, then ``result.pt``.

``python -m pytest_kernelfalcon.child JOBDIR [--timeout S]`` reads a nonce from stdin,
sets resource limits, runs ``run_job`` and exits with ``os._exit(0)`` (no atexit hooks of
loaded code run). Nothing here judges: the parent compares what this writes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child.audit import RunAudit, classify_error
from pytest_kernelfalcon.core.handoff import UncarriableValue, to_host

FILE_LIMIT = 8 << 30


class JobError(Exception):
    """A job failure with its checker category (compile_error, runtime_error, reference_error)."""

    def __init__(self, category: str, message: str, tb: str = "") -> None:
        super().__init__(message)
        self.category, self.message, self.tb = category, message, tb


def set_limits(timeout_s: float) -> None:
    """Cap CPU time (about the timeout), file size, and disable core dumps for this process."""
    import resource

    cpu = int(math.ceil(timeout_s * 2 + 10))
    for name, soft, hard in (
        ("RLIMIT_CPU", cpu, cpu + 5),
        ("RLIMIT_FSIZE", FILE_LIMIT, FILE_LIMIT),
        ("RLIMIT_CORE", 0, 0),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(getattr(resource, name), (soft, hard))


def torch_dtype(name: str) -> Any:
    """Return the torch dtype for a run dtype name."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def pin_tf32_off() -> None:
    """Turn TF32 off for matmul and cuDNN (the reference must be trustworthy)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def exec_file(path: Path, name: str) -> Any:
    """Execute a Python file as a fresh module named ``name`` and return the module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def draw_inputs(get_inputs: Any, seed: int, device: str, dtype: Any, transform: tuple[float, float]) -> list[Any]:
    """Draw one trial's inputs on ``device``; cast and transform only floating tensors."""
    import torch

    torch.manual_seed(seed)
    with torch.device(device):
        inputs = list(get_inputs())
    scale, shift = transform
    out = []
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            x = x.to(device=device, dtype=dtype)
            if (scale, shift) != (1.0, 0.0):
                x = x * scale + shift
        out.append(x)
    return out


def input_numel(get_inputs: Any) -> int | None:
    """Return the total numel of ``get_inputs()`` measured on the meta device (None if it fails)."""
    import torch

    try:
        with torch.device("meta"):
            inputs = list(get_inputs())
    except Exception:
        return None
    return sum(x.numel() for x in inputs if isinstance(x, torch.Tensor))


def storage_ptr(value: Any) -> int | None:
    """Return the storage address of a non-empty tensor, else None."""
    import torch

    if isinstance(value, torch.Tensor) and value.numel():
        return int(value.untyped_storage().data_ptr())
    return None


def aliases(outputs: list[Any], inputs: list[Any]) -> list[int]:
    """Return, per output, the index of the input whose storage it shares (-1 when none)."""
    ptrs = [storage_ptr(x) for x in inputs]
    return [ptrs.index(p) if p is not None and p in ptrs else -1 for p in map(storage_ptr, outputs)]


def inputs_after(before: list[Any], after: list[Any]) -> list[Any]:
    """Return, per input, None when unchanged by forward, else its host copy after forward."""
    import torch

    out: list[Any] = []
    for b, a in zip(before, after, strict=False):
        same = not isinstance(a, torch.Tensor) or (
            a.shape == b.shape and torch.equal(a.detach().cpu().nan_to_num(), b.nan_to_num())
        )
        out.append(None if same else to_host(a))
    return out


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
                    transform: tuple[float, ...], strong: bool = False) -> dict[str, Any]:
    """Run the reference on one seed's inputs (on clones) and return the trial record."""
    dtype = torch_dtype(job["dtype"])
    inputs = draw_inputs(get_inputs, seed, job["device"], dtype, (transform[0], transform[1]))
    outputs, clones = reference_forward(model, inputs, seed)
    host_in = [to_host(x, f"get_inputs()[{i}]") for i, x in enumerate(inputs)]
    host_out = [to_host(o, f"reference output {i}") for i, o in enumerate(outputs)]
    return {"seed": seed, "strong": strong, "inputs": host_in, "outputs": host_out,
            "inputs_after": inputs_after(host_in, clones), "aliases": aliases(outputs, clones)}


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
    plain, strong_tf = tuple(entry["transform"]), tuple(job["strong"])
    trials = [reference_trial(model, task.get_inputs, job, s, plain) for s in job["seeds"]]
    strong: list[dict[str, Any]] = []
    plan = entry["plan"]
    try:
        strong = [reference_trial(model, task.get_inputs, job, s, strong_tf, True) for s in job["strong_seeds"]]
    except Exception as exc:  # strengthened inputs outside the task's domain: skip them
        plan = {**plan, "strong_error": short_error(exc)}
    return {"plan": plan, "index": entry["index"], "construct_seed": job["construct_seed"],
            "init_inputs": [to_host(x, f"get_init_inputs()[{i}]") for i, x in enumerate(init_inputs)],
            "state_dict": state,
            "trials": trials, "strong_trials": strong}


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


def _goes_resident(jobdir: Path, job: dict[str, Any]) -> bool:
    """Whether an official-shape job's inputs (measured on meta) exceed ``resident_above`` elements."""
    above = job.get("resident_above")
    if above is None or len(job["plans"]) != 1:
        return False
    numel = input_numel(exec_file(jobdir / job["plans"][0]["file"], "kf_task_size").get_inputs)
    sys.modules.pop("kf_task_size", None)
    return numel is not None and numel > above


def run_reference(jobdir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Reference mode: pick (``first_fit``) or run ``each`` plan; failing plans are discarded.

    With ``resident_above`` set (official shapes on CUDA) and bigger inputs, the job goes
    the resident way instead: summaries and probes, the tensors stay on the device.
    """
    pin_tf32_off()
    if _goes_resident(jobdir, job):
        from pytest_kernelfalcon.child.resident import run_resident_reference

        return run_resident_reference(jobdir, job)
    cases: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []
    for k, plan in enumerate(job["plans"]):
        if job["pick"] == "first_fit" and cases:
            break
        try:
            case = _plan_case(jobdir, k, job)
        except Exception as exc:
            case = short_error(exc)
        if isinstance(case, str):
            discarded.append({"plan": plan["plan"], "error": case})
        else:
            cases.append(case)
    if not cases:
        raise JobError("reference_error", "reference failed on every shape plan: "
                       + "; ".join(d["error"] for d in discarded))
    return {"cases": cases, "discarded": discarded}


def short_error(exc: BaseException) -> str:
    if isinstance(exc, JobError):
        return exc.message
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}: " if frames else ""
    return f"{where}{type(exc).__name__}: {exc}"[:2000]


def audited_cases(jobdir: Path, job: dict[str, Any], cases: list[tuple[dict[str, Any], list[Any]]],
                  run_trial: Any) -> dict[str, Any]:
    """Import the candidate under the run-time audit; per case construct it, then run each trial.

    ``cases`` holds (construction: construct_seed / init_inputs / state_dict, trials);
    ``run_trial(model, case_index, trial, audit, kept)`` returns the trial's record.
    Returns ``{"cases": [{"trials": [...]}], "audit", "timings", "error"}``.
    """
    pin_tf32_off()
    audit = RunAudit(jobdir / "candidate.py", enabled=job["audit"], device=job["device"])
    audit.install()
    timings = {"import_s": 0.0, "construct_s": 0.0, "run_s": 0.0}
    body: dict[str, Any] = {"cases": [], "audit": audit.report(), "timings": timings, "error": None}
    try:
        entry = import_entry(jobdir, job, audit, timings)
        for index, (built, trials) in enumerate(cases):
            start = time.perf_counter()
            model = construct_candidate(entry, built, job, audit)
            timings["construct_s"] += time.perf_counter() - start
            kept: list[Any] = []
            records = []
            for trial in trials:
                start = time.perf_counter()
                records.append(run_trial(model, index, trial, audit, kept))
                timings["run_s"] += time.perf_counter() - start
            body["cases"].append({"trials": records})
    except JobError as exc:
        body["error"] = {"category": exc.category, "message": exc.message, "traceback": exc.tb}
    finally:
        body["audit"] = audit.report()
        audit.uninstall()
    return body


def run_candidate(jobdir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Candidate mode: import, construct per case, run every trial under the run-time audit."""
    return audited_cases(jobdir, job, [(case, case["trials"]) for case in job["cases"]],
                         lambda model, _, trial, audit, kept: _candidate_trial(model, trial, job, audit, kept))


def job_error(exc: BaseException, category: str, audit: RunAudit) -> JobError:
    where = audit.candidate_line(exc)
    prefix = f"{where}: " if where else ""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
    return JobError(category, f"{prefix}{type(exc).__name__}: {exc}"[:2000], tb)


def import_entry(jobdir: Path, job: dict[str, Any], audit: RunAudit, timings: dict[str, float]) -> Any:
    start = time.perf_counter()
    try:
        module = exec_file(jobdir / "candidate.py", "kf_candidate")
    except BaseException as exc:
        raise job_error(exc, "compile_error", audit) from exc
    finally:
        timings["import_s"] = time.perf_counter() - start
    audit.check_integrity("after import")
    entry = getattr(module, job["entry"], None)
    if not isinstance(entry, type):
        raise JobError("compile_error", f"candidate.py defines no class {job['entry']!r}")
    return entry


def copy_state(model: Any, state: dict[str, Any]) -> dict[str, int]:
    """Copy reference state by name+shape, then the rest by registration order where shapes match."""
    import torch

    mine = model.state_dict()
    done = {k for k, v in mine.items() if k in state and tuple(state[k].shape) == tuple(v.shape)}
    left = [k for k in state if k not in done]
    pairs = [(k, k) for k in done]
    for k in (k for k in mine if k not in done):
        match = next((r for r in left if tuple(state[r].shape) == tuple(mine[k].shape)), None)
        if match is not None:
            left.remove(match)
            pairs.append((k, match))
    with torch.no_grad():
        for k, r in pairs:
            mine[k].copy_(state[r])
    return {"by_name": len(done), "by_order": len(pairs) - len(done), "unmatched": len(mine) - len(pairs)}


def construct_candidate(entry: Any, case: dict[str, Any], job: dict[str, Any], audit: RunAudit) -> Any:
    import torch

    try:
        torch.manual_seed(case["construct_seed"])
        model = entry(*case["init_inputs"]).to(job["device"]).to(torch_dtype(job["dtype"]))
        audit.state_copy = copy_state(model, case["state_dict"])
    except BaseException as exc:
        raise job_error(exc, classify_error(exc, "runtime_error"), audit) from exc
    return model


def candidate_forward(model: Any, inputs: list[Any], seed: int, audit: RunAudit) -> list[Any]:
    """Run the candidate's forward on ``inputs`` under the audit; return its flattened outputs."""
    import torch

    from pytest_kernelfalcon.core.compare import flatten_outputs

    torch.manual_seed(seed)
    try:
        with torch.no_grad():
            return flatten_outputs(audit.run_forward(model, inputs))
    except BaseException as exc:
        raise job_error(exc, classify_error(exc, "runtime_error"), audit) from exc


def reused_outputs(outputs: list[Any], kept: list[Any]) -> list[int]:
    """Return the outputs whose storage is an earlier trial's output (kept alive in ``kept``)."""
    earlier = {storage_ptr(o) for o in kept} - {None}
    return [i for i, o in enumerate(outputs) if storage_ptr(o) in earlier]


def end_trial(outputs: list[Any], seed: int, job: dict[str, Any], audit: RunAudit, kept: list[Any],
              keep: bool = True) -> None:
    """After a trial: poison its outputs, keep them alive (``keep``), recheck integrity."""
    import torch

    if job["poison"]:
        audit.poison(outputs)
    if keep:
        kept.extend(o for o in outputs if isinstance(o, torch.Tensor))
    audit.check_integrity(f"after trial seed {seed}")


def _candidate_trial(model: Any, trial: dict[str, Any], job: dict[str, Any], audit: RunAudit,
                     kept: list[Any]) -> dict[str, Any]:
    import torch

    inputs = [x.to(job["device"], copy=True) if isinstance(x, torch.Tensor) else x for x in trial["inputs"]]
    outputs = candidate_forward(model, inputs, trial["seed"], audit)
    try:
        host = audit.outputs_to_host(outputs)
    except UncarriableValue as exc:
        raise JobError("runtime_error", f"forward returned a value the checker cannot compare: {exc}") from exc
    record = {"seed": trial["seed"], "outputs": host, "aliases": aliases(outputs, inputs),
              "inputs_after": inputs_after(trial["inputs"], inputs), "reused": reused_outputs(outputs, kept)}
    end_trial(outputs, trial["seed"], job, audit, kept)
    return record


def run_mode(jobdir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Dispatch on ``job["mode"]``: reference, candidate, extract (pipeline) or bench (timing)."""
    mode = job["mode"]
    if mode == "reference":
        return run_reference(jobdir, job)
    if mode == "candidate":
        return run_candidate(jobdir, job)
    if mode in ("resident", "resident_reference"):
        from pytest_kernelfalcon.child import resident

        return resident.run_resident(jobdir, job) if mode == "resident" else resident.run_resident_reference(jobdir, job)
    if mode == "extract":
        from pytest_kernelfalcon.child.extract import run_extract_job

        return run_extract_job(job, jobdir)
    if mode == "bench":
        from pytest_kernelfalcon.reports.timing import run_bench_job

        return run_bench_job(job, jobdir)
    raise JobError("runtime_error", f"unknown job mode {mode!r}")


def run_job(jobdir: Path, nonce: str) -> None:
    """Run the job described by ``jobdir/job.pt`` and write ``jobdir/result.pt`` (with ``nonce``)."""
    import torch

    job = torch.load(jobdir / "job.pt", map_location="cpu", weights_only=True)
    try:
        body = run_mode(jobdir, job)
    except JobError as exc:
        body = {"error": {"category": exc.category, "message": exc.message, "traceback": exc.tb}}
    body.setdefault("error", None)
    tmp = jobdir / f".result-{nonce}.tmp"
    torch.save({"version": 1, "nonce": nonce, **body}, tmp)
    os.replace(tmp, jobdir / "result.pt")


def _isolate(args: list[str], jobdir: Path, timeout: float) -> None:
    """Apply ``--isolation POLICY --uid UID`` (ColdExecutor with isolation) before any job code runs."""
    if "--isolation" not in args:
        return
    from pytest_kernelfalcon.executor import isolation

    policy = isolation.IsolationPolicy.from_json(args[args.index("--isolation") + 1])
    raw_uid = args[args.index("--uid") + 1]
    isolation.enter(policy, jobdir, None if raw_uid == "None" else int(raw_uid), timeout)


def run_then_exit(body: Any) -> None:
    """Run ``body()`` and leave through ``os._exit`` (0, or 3 after printing the traceback): no atexit hooks."""
    code = 0
    try:
        body()
    except BaseException:
        traceback.print_exc()
        code = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the child process; never returns (exits through ``os._exit``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    timeout = float(args[args.index("--timeout") + 1]) if "--timeout" in args else 600.0
    nonce = sys.stdin.readline().strip()
    set_limits(timeout)
    jobdir = Path(args[0]).resolve()

    def body() -> None:
        _isolate(args, jobdir, timeout)
        run_job(jobdir, nonce)

    run_then_exit(body)


if __name__ == "__main__":
    main()
