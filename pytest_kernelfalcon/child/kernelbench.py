"""The ``kernelbench`` job (in the child): KernelBench's own eval of one candidate, replayed as it runs it.

One process imports the task and the candidate, builds ``Model`` and ``ModelNew`` from the same
seed (no state copied), draws each trial's inputs on the host from KernelBench's trial seeds, runs
the reference then the candidate on the same inputs, and compares in this process with
``torch.allclose`` (``core/kernelbench.py``). No audit; TF32 as torch starts (the reference's cuDNN
convolutions in TF32). Run only where our own trials cannot tell what that eval would say; its
answer is the candidate process's own, as KernelBench's is: it never feeds our verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child.runtime import JobError, exec_file, short_error, torch_dtype
from pytest_kernelfalcon.core.protocol import KernelBenchJob


def _answer(passed: bool | None, detail: str, trials: int = 0) -> dict[str, Any]:
    return {"kernelbench": {"passed": passed, "detail": detail[:600], "trials": trials}}


def _moved(values: list[Any], job: KernelBenchJob) -> list[Any]:
    """Values moved to the job's device (floating tensors in its dtype), as the eval moves inputs."""
    import torch

    dtype = torch_dtype(job.dtype)
    return [(x.to(job.device, dtype) if x.is_floating_point() else x.to(job.device))
            if isinstance(x, torch.Tensor) else x for x in values]


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _models(jobdir: Path, job: KernelBenchJob) -> tuple[Any, Any, Any] | dict[str, Any]:
    """(task, Model, ModelNew) built as the eval builds them, or the answer when that fails."""
    import torch

    from pytest_kernelfalcon.core.kernelbench import set_kb_seed

    try:
        task = exec_file(jobdir / job.task, "kf_kb_task")
        set_kb_seed(job.seed)
        init = _moved(list(task.get_init_inputs()), job)
        with torch.no_grad():
            set_kb_seed(job.seed)
            model = task.Model(*init).to(job.device, torch_dtype(job.dtype))
    except Exception as exc:
        raise JobError("reference_error", f"the reference cannot be built: {short_error(exc)}") from exc
    try:
        entry = getattr(exec_file(jobdir / "candidate.py", "kf_kb_candidate"), job.entry)
    except Exception as exc:  # the eval: compiled=False
        return _answer(False, f"does not import (compilation failure): {short_error(exc)}")
    try:
        with torch.no_grad():
            set_kb_seed(job.seed)
            new = entry(*init).to(job.device, torch_dtype(job.dtype))
    except Exception as exc:
        return _answer(False, f"ModelNew cannot be built: {short_error(exc)}")
    return task, model, new


def run_kernelbench(jobdir: Path, job: KernelBenchJob) -> dict[str, Any]:
    """Kernelbench mode: the eval's trials; the first failing one ends it."""
    import torch

    from pytest_kernelfalcon.core.compare import flatten_outputs
    from pytest_kernelfalcon.core.kernelbench import kb_mismatch, kb_trial_seeds, set_kb_seed

    seeds = kb_trial_seeds(job.seed, job.trials)
    built = _models(jobdir, job)
    if isinstance(built, dict):
        return built
    task, model, new = built
    with torch.no_grad():
        for k, seed in enumerate(seeds):
            set_kb_seed(seed)
            try:  # locals named as the eval names them: a candidate reading its caller's frames finds the same
                inputs = _moved(list(task.get_inputs()), job)
                output = model(*inputs)
                _sync(job.device)
            except Exception as exc:
                raise JobError("reference_error", f"the reference fails at seed {seed}: {short_error(exc)}") from exc
            try:
                output_new = new(*inputs)
                _sync(job.device)
                why = kb_mismatch(flatten_outputs(output), flatten_outputs(output_new))
            except Exception as exc:  # the eval: a runtime error in the correctness check
                why = f"runtime error: {short_error(exc)}"
            if why is not None:
                return _answer(False, f"trial {k} (seed {seed}): {why}", k + 1)
    return _answer(True, f"passed {len(seeds)} trial(s) (KernelBench's seeds)", len(seeds))
