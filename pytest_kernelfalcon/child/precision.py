"""What a reference job measures of precision, per trial (in the child, where the model and inputs are).

- ``ref_error`` (value draws, and a plan's first trial at the task's values): per output, max
  |reference - the same model in float64|: the reference's own rounding.
- ``tf32_error`` (fp32 runs): per output, max |reference - the reference with its floating inputs
  and weights rounded to TF32| (``core/precision.py``): the error class of a TF32 kernel.
- ``kb_outputs`` (CUDA, the task's own plan, trials at the task's values): the reference's outputs
  under the TF32 settings a fresh torch starts with (cuDNN convolutions in TF32), as KernelBench's
  eval computes them; kept only when they differ from ours (TF32 off), decided on the first trial.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

from pytest_kernelfalcon.core.handoff import to_host
from pytest_kernelfalcon.core.protocol import ReferenceJob


def _forward(model: Any, inputs: list[Any], seed: int) -> list[Any]:
    import torch

    from pytest_kernelfalcon.core.compare import flatten_outputs

    clones = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
    torch.manual_seed(seed)
    with torch.no_grad():
        return flatten_outputs(model(*clones))


def _max_errors(outputs: list[Any], other: list[Any]) -> list[float] | None:
    """Per output, max |output - other| (0 for non-floating outputs); None when the lists do not pair up."""
    import torch

    errors = []
    for got, want in zip(outputs, other, strict=False):
        same = isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor) and got.shape == want.shape
        if not same or not got.is_floating_point() or not got.numel():
            errors.append(0.0)
            continue
        diff = (got.to(torch.float64) - want.to(torch.float64)).abs()
        errors.append(float(torch.where(torch.isfinite(diff), diff, torch.zeros_like(diff)).max()))
    return errors if len(errors) == len(outputs) else None


def float64_error(model: Any, inputs: list[Any], outputs: list[Any], seed: int) -> list[float] | None:
    """Per output, max |reference - the same model in float64| on these inputs; None when float64 fails."""
    import torch

    try:
        wide = copy.deepcopy(model).to(torch.float64)
        args = [x.detach().to(torch.float64) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
                for x in inputs]
        return _max_errors(outputs, _forward(wide, args, seed))
    except Exception:
        return None


def tf32_rounded(model: Any) -> Any:
    """A copy of ``model`` with every fp32 parameter and buffer rounded to TF32 (None when it cannot be copied)."""
    import torch

    from pytest_kernelfalcon.core.precision import tf32_round

    try:
        rounded = copy.deepcopy(model)
        with torch.no_grad():
            for tensor in [*rounded.parameters(), *rounded.buffers()]:
                tensor.copy_(tf32_round(tensor))
    except Exception:
        return None
    return rounded


def tf32_error(rounded: Any, inputs: list[Any], outputs: list[Any], seed: int) -> list[float] | None:
    """Per output, max |reference - the TF32-rounded reference on TF32-rounded inputs|; None when it fails."""
    from pytest_kernelfalcon.core.precision import tf32_round

    try:
        return _max_errors(outputs, _forward(rounded, [tf32_round(x) for x in inputs], seed))
    except Exception:
        return None


@contextlib.contextmanager
def tf32_settings(matmul: bool, cudnn: bool) -> Iterator[None]:
    """Run with these TF32 settings, then pin TF32 off again (the reference's own setting)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


def kernelbench_outputs(model: Any, inputs: list[Any], seed: int, defaults: tuple[bool, bool]) -> list[Any] | None:
    """The reference's outputs under torch's default TF32 settings (KernelBench's eval); None when it fails."""
    try:
        with tf32_settings(*defaults):
            return _forward(model, inputs, seed)
    except Exception:
        return None


def tf32_changes(model: Any, inputs: list[Any], outputs: list[Any], seed: int, device: str,
                 defaults: tuple[bool, bool]) -> bool | None:
    """Whether torch's default TF32 settings (KernelBench's reference) change these outputs; None when unknown."""
    from pytest_kernelfalcon.core.compare import identical

    if device != "cuda" or not any(defaults):
        return False
    found = kernelbench_outputs(model, inputs, seed, defaults)
    return None if found is None else not identical(found, outputs)


class PlanPrecision:
    """The precision measurements of one plan's trials (``measure`` adds them to each trial record)."""

    def __init__(self, model: Any, job: ReferenceJob, role: str, tf32_defaults: tuple[bool, bool]) -> None:
        self.model = model
        self.rounded = tf32_rounded(model) if job.dtype == "fp32" else None
        self.defaults = tf32_defaults
        self.compare_kb = job.device == "cuda" and role == "task" and any(tf32_defaults)
        self.kb_differs: bool | None = None  # decided on the first trial at the task's values
        self.first_task = True

    def measure(self, record: dict[str, Any], inputs: list[Any], outputs: list[Any], seed: int) -> None:
        """Add ``ref_error``, ``tf32_error`` and (where they differ) ``kb_outputs`` to one trial's record."""
        task_valued = record.get("values", "task") == "task"
        if not task_valued or self.first_task:
            record["ref_error"] = float64_error(self.model, inputs, outputs, seed)
        if self.rounded is not None:
            record["tf32_error"] = tf32_error(self.rounded, inputs, outputs, seed)
        if task_valued and self.compare_kb and self.kb_differs is not False:
            self._kernelbench(record, inputs, outputs, seed)
        self.first_task = self.first_task and not task_valued

    def _kernelbench(self, record: dict[str, Any], inputs: list[Any], outputs: list[Any], seed: int) -> None:
        from pytest_kernelfalcon.core.compare import identical

        found = kernelbench_outputs(self.model, inputs, seed, self.defaults)
        if found is None:
            return
        if self.kb_differs is None:
            self.kb_differs = not identical(found, outputs)
        if self.kb_differs:
            record["kb_outputs"] = [to_host(o, f"reference output {i} (torch's TF32 defaults)")
                                    for i, o in enumerate(found)]

    def facts(self) -> dict[str, Any]:
        """What the plan's facts say of KernelBench's reference: torch's TF32 defaults, whether they change it."""
        matmul, cudnn = self.defaults
        return {"tf32_defaults": {"matmul": matmul, "cudnn": cudnn}, "tf32_changes_reference": self.kb_differs}
