"""KernelBench's own eval, as facts: its tolerance, trial count and seeding, and its comparison of outputs.

KernelBench's ``eval_kernel_against_ref`` (v0 and v0.1, the versions behind the published
leaderboards) seeds ``torch.manual_seed(42)`` before ``get_init_inputs()`` and before building
``Model`` and ``ModelNew`` (no state is copied: both start from the seed), draws
``num_correct_trials`` (5) trial seeds from ``torch.randint(0, 2**32 - 1)`` after seeding 42,
draws each trial's inputs with ``get_inputs()`` on the host after seeding the trial's seed,
runs the reference, then the candidate on the same inputs, and passes a trial when the output
shapes are equal and ``torch.allclose(atol=1e-2, rtol=1e-2)`` holds. There is no audit, and the
reference runs with torch's default TF32 settings (cuDNN convolutions in TF32, matmul not).

Both sides use this module: the parent judges our own trials with ``kb_mismatch``; the child's
``kernelbench`` job (``child/kernelbench.py``) replays KernelBench's procedure where our trials
cannot tell (the candidate was rejected before it ran, or its process may fool an in-process eval).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

KB_TOLERANCE = 1e-2  # atol = rtol of KernelBench v0 / v0.1 for fp32 (today's main: 1e-4 fp32, 1e-2 fp16/bf16)
KB_TRIALS = 5  # num_correct_trials of KernelBench's scripts
KB_SEED = 42  # seed_num of eval_kernel_against_ref
KB_POLICY = f"kernelbench-eval (atol=rtol={KB_TOLERANCE:g}, torch.allclose, no audit)"
CHUNK = 1 << 24  # elements per allclose call: bounded temporaries, the same answer as one call


def kb_trial_seeds(seed: int = KB_SEED, trials: int = KB_TRIALS) -> list[int]:
    """The trial seeds KernelBench draws from ``seed`` (``torch.randint(0, 2**32 - 1)`` after seeding it)."""
    import torch

    torch.manual_seed(seed)
    return [int(torch.randint(0, 2**32 - 1, (1,)).item()) for _ in range(trials)]


def set_kb_seed(seed: int) -> None:
    """Seed as KernelBench's ``set_seed`` does: the CPU generator and the current CUDA device's."""
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed(seed)


def _allclose(ref: Any, got: Any) -> bool:
    """``torch.allclose`` at KernelBench's tolerance, chunk by chunk (the process's own ``torch.allclose``)."""
    import torch

    a, b = ref.detach().reshape(-1), got.detach().reshape(-1)
    for start in range(0, a.numel(), CHUNK):
        if not torch.allclose(a[start:start + CHUNK], b[start:start + CHUNK], atol=KB_TOLERANCE, rtol=KB_TOLERANCE):
            return False
    return True


def _max_diff(ref: Any, got: Any) -> float:
    """max |ref - got| (NaN counts as inf), chunk by chunk in float64."""
    import torch

    a, b, worst = ref.detach().reshape(-1), got.detach().reshape(-1), 0.0
    for start in range(0, a.numel(), CHUNK):
        diff = (a[start:start + CHUNK].to(torch.float64) - b[start:start + CHUNK].to(torch.float64)).abs()
        worst = max(worst, float(diff.nan_to_num(nan=float("inf")).max()))
    return worst


def kb_output_mismatch(i: int, ref: Any, got: Any, values: bool = True) -> str | None:
    """Why KernelBench's eval rejects output ``i`` (shape, dtype, device, allclose), or None.

    ``values=False`` skips ``allclose`` (the caller knows the values are closer than its tolerance).
    """
    import torch

    if not isinstance(ref, torch.Tensor) or not isinstance(got, torch.Tensor):
        same = not isinstance(got, torch.Tensor) and not isinstance(ref, torch.Tensor) and ref == got
        return None if same else f"output {i}: expected {type(ref).__name__}, got {type(got).__name__}"
    if tuple(ref.shape) != tuple(got.shape):
        return f"output {i}: output shape mismatch: expected {list(ref.shape)}, got {list(got.shape)}"
    if ref.dtype != got.dtype:  # torch.allclose raises: the eval counts a runtime error
        return f"output {i}: torch.allclose raises: {ref.dtype} did not match {got.dtype}"
    if ref.device != got.device:
        return f"output {i}: torch.allclose raises: {ref.device} did not match {got.device}"
    if values and not _allclose(ref, got):
        return f"output {i}: output mismatch, max abs diff {_max_diff(ref, got):.3g}"
    return None


def kb_mismatch(ref: Sequence[Any], got: Sequence[Any], values: bool = True) -> str | None:
    """Why KernelBench's eval rejects one trial's flattened outputs, or None when it passes them."""
    if len(ref) != len(got):
        return f"expected {len(ref)} output(s), got {len(got)}"
    for i, (r, c) in enumerate(zip(ref, got, strict=True)):
        why = kb_output_mismatch(i, r, c, values)
        if why is not None:
            return why
    return None
