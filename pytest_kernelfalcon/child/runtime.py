"""What every job mode of the child shares: job errors, limits, task files, seeded inputs, aliasing.

Nothing here judges: the parent compares what the child writes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.core.handoff import to_host
from pytest_kernelfalcon.core.protocol import FILE_LIMIT, ReferenceJob


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


def pin_tf32_off() -> tuple[bool, bool]:
    """Turn TF32 off for matmul and cuDNN (the reference must be trustworthy); return the settings it found
    (matmul, cudnn): torch's defaults in a fresh job process, the ones KernelBench's eval runs its reference with."""
    import torch

    found = (bool(torch.backends.cuda.matmul.allow_tf32), bool(torch.backends.cudnn.allow_tf32))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return found


def exec_file(path: Path, name: str) -> Any:
    """Execute a Python file as a fresh module named ``name`` and return the module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def draw_inputs(get_inputs: Any, seed: int, device: str, dtype: Any, transform: tuple[Any, ...]) -> list[Any]:
    """Draw one trial's inputs on ``device``; cast and transform only floating tensors.

    ``transform`` is ``(scale, shift)`` or ``(scale, shift, mode)`` (``shapes.apply_transform``).
    """
    import torch

    from pytest_kernelfalcon.core.shapes import apply_transform

    torch.manual_seed(seed)
    with torch.device(device):
        inputs = list(get_inputs())
    out = []
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            x = apply_transform(x.to(device=device, dtype=dtype), transform)
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


def io_numel(task: Any) -> int | None:
    """Return the numel of ``get_inputs()`` plus that of ``Model``'s outputs on them, measured on the meta device
    (the inputs alone when the model cannot run there; None when the inputs cannot be measured)."""
    import torch

    from pytest_kernelfalcon.core.compare import flatten_outputs

    inputs = input_numel(task.get_inputs)
    if inputs is None:
        return None
    try:
        with torch.device("meta"), torch.no_grad():
            args = list(task.get_inputs())
            outputs = flatten_outputs(task.Model(*task.get_init_inputs())(*args))
    except Exception:
        return inputs
    return inputs + sum(o.numel() for o in outputs if isinstance(o, torch.Tensor))


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


def short_error(exc: BaseException) -> str:
    if isinstance(exc, JobError):
        return exc.message
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}: " if frames else ""
    return f"{where}{type(exc).__name__}: {exc}"[:2000]


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


def goes_resident(jobdir: Path, job: ReferenceJob) -> bool:
    """Whether an official-shape job's inputs and outputs (measured on meta) exceed ``resident_above`` elements:
    then its tensors stay on the device instead of going through job files (a 32768 x 32768 matmul's output
    is 4 GiB a trial)."""
    above = job.resident_above
    if above is None or len(job.plans) != 1:
        return False
    numel = io_numel(exec_file(jobdir / job.plans[0].file, "kf_task_size"))
    sys.modules.pop("kf_task_size", None)
    return numel is not None and numel > above
