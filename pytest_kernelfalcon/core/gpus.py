"""Which GPU an xdist worker uses: one worker per GPU the caller can see.

Worker ``gwK`` pins entry ``K % n`` of the caller's visible devices (the
caller's ``CUDA_VISIBLE_DEVICES`` when set, else every device ``0..count-1``).
The pinned value is the caller's own identifier (an index, ``GPU-<uuid>`` or
``MIG-<uuid>``), to be placed in the child's ``CUDA_VISIBLE_DEVICES``; a device
the caller hid is never chosen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_WORKER = re.compile(r"^gw(\d+)$")


def visible_gpus(env: Mapping[str, str], device_count: int = 0) -> list[str]:
    """Return the caller's visible GPU identifiers, in order."""
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return [str(i) for i in range(max(0, device_count))]
    visible: list[str] = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry or _is_negative(entry):
            break  # CUDA ignores this entry and every one after it
        visible.append(entry)
    return visible


def _is_negative(entry: str) -> bool:
    """Return whether ``entry`` is a negative integer (CUDA's 'hide the rest')."""
    return entry.startswith("-") and entry[1:].isdigit()


def worker_index(worker_id: str | None) -> int:
    """Return K for xdist worker ``gwK``; 0 for the controller, ``master`` or ``None``."""
    match = _WORKER.match(worker_id or "")
    return int(match.group(1)) if match else 0


def gpu_for_worker(worker_id: str | None, env: Mapping[str, str], device_count: int = 0) -> str | None:
    """Return the GPU identifier worker ``worker_id`` pins, or ``None`` when no GPU is visible."""
    visible = visible_gpus(env, device_count)
    if not visible:
        return None
    return visible[worker_index(worker_id) % len(visible)]


def auto_workers(env: Mapping[str, str], device_count: int = 0) -> int:
    """Return the worker count for ``-n auto``: one per visible GPU, at least 1."""
    return max(1, len(visible_gpus(env, device_count)))


def cuda_device_count() -> int:
    """Return the number of CUDA devices this process sees (0 without CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def cuda_device_name() -> str | None:
    """Return the name of the first CUDA device this process sees, or ``None``."""
    return __import__("torch").cuda.get_device_name(0) if cuda_device_count() else None


def resolve_device(device: str) -> str:
    """Return ``cpu`` or ``cuda`` for an option value (``auto``: cuda when available)."""
    if device in ("cpu", "cuda"):
        return device
    if device != "auto":
        raise ValueError(f"unknown device {device!r}; expected cpu, cuda or auto")
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
