"""The hand-over of values between the trusted parent and the child processes.

``to_host`` is the one rule for what a job file (``job.pt`` / ``result.pt``, loaded
``weights_only``) carries: tensors as plain CPU copies, numbers, strings, bytes, None,
``torch.dtype`` / ``torch.device`` / ``torch.Size``, and tuples, lists and dicts of
these, nested. Anything else raises ``UncarriableValue`` naming its type.

Resident jobs: a comparer and its candidate process both run as the same uid (CUDA IPC does not map memory across uids), over a pair of
pipes private to the two. Messages are length-prefixed JSON objects. A tensor travels
as a descriptor: on CUDA the IPC handle of its storage (no copy: the comparer reads the
candidate's memory where it lies), on the CPU its bytes. The comparer never unpickles
anything the candidate sends, checks every field, and lets ``Tensor.set_`` / ``as_strided``
check the bounds of a view against its storage.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import select
import struct
import time
from typing import Any

MAX_FRAME = 64 << 20
MAX_DIMS = 16
MAX_INT = 1 << 62
MAX_DEPTH = 16
MAX_ITEMS = 1 << 16
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")


class HandoffError(Exception):
    """The other side broke the protocol, went away, or missed the deadline."""


class HandoffDeadline(HandoffError):
    """Nothing came before the deadline (and the other side had not closed the channel)."""


class UncarriableValue(TypeError):
    """A value of a type the hand-over cannot carry (the message names the type and where)."""


_PLAIN: tuple[type[Any], ...] = (bool, int, float, complex, str, bytes)


def _plain(value: Any) -> Any:
    """Return a number or string as its builtin type (a numpy scalar or IntEnum pickles as itself)."""
    for kind in _PLAIN:
        if isinstance(value, kind):
            return value if type(value) is kind else kind(value)
    raise AssertionError(type(value))


def to_host(value: Any, where: str = "value", depth: int = 0) -> Any:
    """Return a ``weights_only``-loadable host copy of ``value``; ``UncarriableValue`` when none exists."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True).as_subclass(torch.Tensor)
    if value is None or isinstance(value, (torch.dtype, torch.device)):
        return value
    if isinstance(value, _PLAIN):
        return _plain(value)
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():  # a numpy scalar
        return to_host(value.item(), where, depth)
    if depth >= MAX_DEPTH:
        raise UncarriableValue(f"{where} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, torch.Size):
        return torch.Size(int(d) for d in value)
    if isinstance(value, (list, tuple)):
        items = [to_host(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        return {_plain(k): to_host(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
    raise UncarriableValue(f"{where} of type {type(value).__module__}.{type(value).__qualname__} "
                           "cannot be handed over between processes")


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (a pipe takes big writes in pieces)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(fd: int, message: dict[str, Any]) -> None:
    """Write one message (length-prefixed JSON)."""
    data = json.dumps(message).encode()
    write_all(fd, struct.pack("<I", len(data)) + data)


def _read_exact(fd: int, size: int, deadline: float) -> bytes:
    chunks, left = [], size
    while left:  # what already came (bytes or the end) is read before the clock is looked at
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            if time.monotonic() >= deadline:
                raise HandoffDeadline("no message before the deadline")
            continue
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise HandoffError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv(fd: int, deadline: float) -> dict[str, Any]:
    """Read one message; ``HandoffError`` on EOF, a missed deadline or a malformed frame."""
    (size,) = struct.unpack("<I", _read_exact(fd, 4, deadline))
    if size > MAX_FRAME:
        raise HandoffError(f"message of {size} bytes exceeds {MAX_FRAME}")
    try:
        message = json.loads(_read_exact(fd, size, deadline))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, or nesting too deep
        raise HandoffError(f"malformed message: {exc}") from exc
    if not isinstance(message, dict):
        raise HandoffError("a message must be a JSON object")
    return message


def _b64(value: Any) -> Any:
    return {"b64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value


def describe(value: Any, depth: int = 0) -> dict[str, Any]:
    """Return the descriptor of one output or input (candidate side); containers nest."""
    import torch

    if value is None:
        return {"kind": "none"}
    if isinstance(value, (bool, int, float)):
        return {"kind": "value", "value": _plain(value)}
    if isinstance(value, str):
        return {"kind": "str", "value": str(value)}
    if isinstance(value, torch.dtype):
        return {"kind": "dtype", "value": str(value).removeprefix("torch.")}
    if isinstance(value, (list, tuple)) and depth < MAX_DEPTH and len(value) <= MAX_ITEMS:
        kind = "size" if isinstance(value, torch.Size) else "list" if isinstance(value, list) else "tuple"
        return {"kind": kind, "items": [describe(v, depth + 1) for v in value]}
    if isinstance(value, dict) and depth < MAX_DEPTH and all(isinstance(k, str) for k in value):
        return {"kind": "dict", "keys": [str(k) for k in value],
                "items": [describe(v, depth + 1) for v in value.values()]}
    if not isinstance(value, torch.Tensor):
        return {"kind": "unsupported", "type": type(value).__name__}
    return _describe_tensor(value)


def _describe_tensor(value: Any) -> dict[str, Any]:
    import torch

    t = value.detach()
    desc = {"kind": "tensor", "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
            "device": t.device.type}
    if t.device.type == "cuda":
        args = t.untyped_storage()._share_cuda_()
        return {**desc, "stride": list(t.stride()), "offset": t.storage_offset(),
                "storage": [_b64(a) for a in args]}
    flat = t.contiguous()
    raw = flat.reshape(-1).view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return {**desc, "stride": list(flat.stride()), "offset": 0, "storage": base64.b64encode(raw).decode()}


def _ints(values: Any, what: str) -> list[int]:
    if not isinstance(values, list) or len(values) > MAX_DIMS or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_INT for v in values):
        raise HandoffError(f"bad {what}: {str(values)[:80]}")
    return list(values)


def _span(shape: list[int], stride: list[int], offset: int) -> int:
    """Elements of storage a view needs (0 for an empty view)."""
    if any(s == 0 for s in shape):
        return 0
    return offset + 1 + sum((s - 1) * st for s, st in zip(shape, stride, strict=True))


def _decode(text: Any) -> bytes:
    if not isinstance(text, str):
        raise HandoffError("bad storage bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HandoffError(f"bad base64: {exc}") from exc


def _cuda_storage(args: Any) -> Any:
    import torch

    if not isinstance(args, list) or len(args) != 8:
        raise HandoffError("bad CUDA storage descriptor")
    decoded = [_decode(a.get("b64")) if isinstance(a, dict) else a for a in args]
    if not all(isinstance(a, (bytes, int, bool)) for a in decoded):
        raise HandoffError("bad CUDA storage descriptor field")
    try:
        return torch.UntypedStorage._new_shared_cuda(*decoded)
    except Exception as exc:  # an IPC handle that does not open
        raise HandoffError(f"cannot open the CUDA IPC handle: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _open_items(desc: dict[str, Any], device: str, depth: int) -> list[Any]:
    items = desc.get("items")
    if not isinstance(items, list) or len(items) > MAX_ITEMS or depth >= MAX_DEPTH:
        raise HandoffError(f"bad {desc.get('kind')} descriptor")
    return [open_value(d, device, depth + 1) for d in items]


def open_value(desc: Any, device: str, depth: int = 0) -> Any:
    """Return the value a descriptor names (comparer side), on ``device``; ``HandoffError`` if malformed."""
    import torch

    kind = desc.get("kind") if isinstance(desc, dict) else None
    if kind == "none":
        return None
    if kind == "value" and isinstance(desc.get("value"), (bool, int, float)):
        return desc["value"]
    if kind == "str" and isinstance(desc.get("value"), str):
        return desc["value"]
    if kind == "dtype" and desc.get("value") in DTYPES:
        return getattr(torch, desc["value"])
    if kind in ("list", "tuple", "size"):
        items = _open_items(desc, device, depth)
        if kind == "size":
            return torch.Size(_ints(items, "size"))
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        keys, items = desc.get("keys"), _open_items(desc, device, depth)
        if not isinstance(keys, list) or len(keys) != len(items) or not all(isinstance(k, str) for k in keys):
            raise HandoffError("bad dict descriptor")
        return dict(zip(keys, items, strict=True))
    if kind == "unsupported":
        return f"<unsupported output type {str(desc.get('type'))[:60]}>"
    if kind != "tensor" or desc.get("dtype") not in DTYPES:
        raise HandoffError(f"bad descriptor: {str(desc)[:120]}")
    return _open_tensor(desc, device)


def _open_tensor(desc: dict[str, Any], device: str) -> Any:
    import torch

    dtype = getattr(torch, desc["dtype"])
    shape, stride = _ints(desc.get("shape"), "shape"), _ints(desc.get("stride"), "stride")
    offset = _ints([desc.get("offset")], "offset")[0]
    if len(shape) != len(stride):
        raise HandoffError("shape and stride differ in length")
    if math.prod(shape) >= MAX_INT or _span(shape, stride, offset) >= MAX_INT:
        raise HandoffError("view has too many elements")
    itemsize = torch.empty(0, dtype=dtype).element_size()
    if desc.get("device") == "cuda":
        if device != "cuda":
            raise HandoffError("a CUDA tensor in a CPU run")
        storage = _cuda_storage(desc.get("storage"))
        if _span(shape, stride, offset) * itemsize > storage.nbytes():
            raise HandoffError("view exceeds its storage")
        return torch.empty(0, dtype=dtype, device="cuda").set_(storage, offset, shape, stride)
    if not isinstance(desc.get("storage"), str):
        raise HandoffError("bad CPU storage descriptor")
    raw = bytearray(_decode(desc["storage"]))
    if len(raw) % itemsize or _span(shape, stride, offset) * itemsize > len(raw):
        raise HandoffError("view exceeds its storage")
    base = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
    return base.as_strided(shape, stride, offset).to(device)
