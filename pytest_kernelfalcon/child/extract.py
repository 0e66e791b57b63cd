"""Runs INSIDE a child process: build ``FusedModel``, run one forward with hooks, return subgraph specs.

``run_extract_job(jobdir, job)`` runs an ``ExtractJob`` (``core.protocol``) for
``python -m pytest_kernelfalcon.child JOBDIR``; what it returns is plain data (lists, dicts, str,
int, float, bool, None).
"""

from __future__ import annotations

import functools
import inspect
import traceback
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child.runtime import exec_file
from pytest_kernelfalcon.core.protocol import ExtractJob

PLAIN = (bool, int, float, str, type(None))
VIEW_OPS = ("view", "reshape", "_reshape", "permute", "transpose", "t", "expand", "squeeze",
            "unsqueeze", "slice", "select", "split", "chunk", "alias", "detach", "as_strided",
            "empty", "new_empty", "_unsafe_view", "unbind", "flatten", "unflatten", "contiguous",
            "_local_scalar_dense", "is_nonzero", "sym_size", "sym_stride", "sym_numel", "lift_fresh",
            "zeros", "ones", "full", "narrow", "movedim", "empty_like", "empty_strided")


class ExtractError(Exception):
    """The fused model cannot be turned into specs; the message says why."""


def run_extract_job(jobdir: Path, job: ExtractJob) -> dict[str, Any]:
    """Run the extract job in ``jobdir`` and return ``{"error": None|{...}, "specs": [...], ...}``."""
    try:
        return {"error": None, **_extract(job, Path(jobdir))}
    except ExtractError as exc:
        return {"error": {"category": "runtime_error", "message": str(exc), "traceback": ""}}
    except BaseException as exc:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
        return {"error": {"category": "runtime_error", "message": f"{type(exc).__name__}: {exc}",
                          "traceback": tb}}


def subgraph_classes(module: Any, entry: str) -> list[type]:
    """Return the ``nn.Module`` classes ``module`` defines itself, except ``entry`` and ``Model``."""
    import torch.nn as nn

    return [obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, nn.Module) and name not in (entry, "Model")
            and obj.__module__ == module.__name__]


def _extract(job: ExtractJob, jobdir: Path) -> dict[str, Any]:
    task = exec_file(jobdir / job.task, "kf_extract_task")
    fused = exec_file(jobdir / job.fused, "kf_extract_fused")
    entry = getattr(fused, job.entry, None)
    if not isinstance(entry, type):
        raise ExtractError(f"the fused file defines no class {job.entry}")
    classes = subgraph_classes(fused, job.entry)
    if not classes:
        raise ExtractError("the fused file defines no subgraph classes (nn.Module classes besides FusedModel)")
    try:
        return {**_trace(task, entry, classes, job, "meta"), "traced_on": "meta"}
    except ExtractError:
        raise
    except Exception as exc:  # data-dependent control flow or an op without a meta kernel
        real = _trace(task, entry, classes, job, job.device)
        return {**real, "traced_on": job.device, "meta_error": f"{type(exc).__name__}: {exc}"}


def _trace(task: Any, entry: type, classes: list[type], job: ExtractJob, device: str) -> dict[str, Any]:
    import torch

    recorded: dict[int, list[Any]] = {}
    originals = {cls: cls.__dict__.get("__init__") for cls in classes}
    for cls in classes:
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_init(cls.__dict__["__init__"], recorded)  # type: ignore[misc]
    try:
        torch.manual_seed(job.construct_seed)
        with torch.device(device):
            init_inputs = list(task.get_init_inputs())
            torch.manual_seed(job.construct_seed)
            model = entry(*init_inputs)
    finally:
        for cls, init in originals.items():
            if init is not None:
                cls.__init__ = init  # type: ignore[misc]
    return _run_hooked(model, task, classes, recorded, job, device)


def _recording_init(init: Any, recorded: dict[int, list[Any]]) -> Any:
    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        if id(self) not in recorded:  # the most derived class records; super().__init__ does not
            recorded[id(self)] = positional_args(init, self, args, kwargs)
            recorded[-id(self)] = positional_names(init)
        init(self, *args, **kwargs)

    return wrapper


def positional_args(init: Any, self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """Return a constructor call's arguments as one positional list (defaults filled in)."""
    bound = inspect.signature(init).bind(self, *args, **kwargs)
    bound.apply_defaults()
    out: list[Any] = []
    for name, param in list(inspect.signature(init).parameters.items())[1:]:
        value = bound.arguments.get(name, param.default)
        if param.kind == param.VAR_POSITIONAL:
            out.extend(value)
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            out.append(value)
        elif value not in (param.default, {}):
            raise ExtractError(f"{type(self).__name__}: keyword-only constructor argument {name!r} "
                               "is not supported; make it positional")
    return out


def positional_names(init: Any) -> list[str]:
    """Return the names of a constructor's positional parameters (``*args`` repeated as its name)."""
    return [n for n, p in list(inspect.signature(init).parameters.items())[1:]
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]


def is_plain(value: Any) -> bool:
    """Return whether ``value`` is a plain literal (numbers, strings, None, tuples/lists of those)."""
    if isinstance(value, PLAIN):
        return True
    return isinstance(value, (tuple, list)) and all(is_plain(v) for v in value)


def outermost(model: Any, classes: list[type]) -> list[tuple[str, Any]]:
    """Return ``(path, module)`` of every subgraph module not nested inside another one."""
    found: list[tuple[str, Any]] = []

    def walk(module: Any, prefix: str) -> None:
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(child, tuple(classes)):
                found.append((path, child))
            else:
                walk(child, path)

    walk(model, "")
    return found


def _run_hooked(model: Any, task: Any, classes: list[type], recorded: dict[int, list[Any]],
                job: ExtractJob, device: str) -> dict[str, Any]:
    import torch

    modules = outermost(model, classes)
    if not modules:
        raise ExtractError("FusedModel holds no subgraph modules as attributes")
    calls: list[dict[str, Any]] = []
    depth = [0]
    handles = []
    for path, module in modules:
        handles.append(module.register_forward_pre_hook(_enter(depth)))
        handles.append(module.register_forward_hook(_leave(depth, calls, path, recorded), with_kwargs=True))
    torch.manual_seed(job.input_seed)
    with torch.device(device):
        inputs = list(task.get_inputs())
    outside = _OutsideOps(depth)
    try:
        with torch.no_grad(), outside:
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    specs = merge_calls(calls)
    where = [{"index": i, "class_name": c["class_name"], "path": c["path"],
              "spec": next(s["id"] for s in specs if i in s["order"])} for i, c in enumerate(calls)]
    return {"calls": where, "specs": specs, "outside_ops": outside.compute_ops()}


def _enter(depth: list[int]) -> Any:
    def hook(module: Any, args: Any) -> None:
        depth[0] += 1

    return hook


def _leave(depth: list[int], calls: list[dict[str, Any]], path: str, recorded: dict[int, list[Any]]) -> Any:
    def hook(module: Any, args: Any, kwargs: Any, output: Any) -> None:
        if kwargs:
            raise ExtractError(f"subgraph module {path} is called with keyword arguments "
                               f"({', '.join(kwargs)}); pass inputs positionally")
        calls.append(describe_call(module, path, recorded, args, output))
        depth[0] -= 1  # after describe_call: its own reads are not the model's compute

    return hook


def describe_call(module: Any, path: str, recorded: dict[int, list[Any]], args: Any, output: Any) -> dict[str, Any]:
    """Return one subgraph call: class, path, constructor args, inputs, outputs, parameters."""
    cls = type(module)
    init_args = recorded.get(id(module), [])
    if not is_plain(init_args):
        bad = [type(a).__name__ for a in init_args if not is_plain(a)]
        raise ExtractError(f"{cls.__name__} at {path}: constructor arguments must be plain values "
                           f"(ints, floats, bools, tuples/lists of those), got {', '.join(bad)}")
    return {
        "class_name": cls.__name__, "path": path,
        "init_args": to_json_value(init_args), "init_args_py": repr(list(init_args)),
        "init_names": recorded.get(-id(module), []),
        "inputs": [describe_value(a, f"{path} input {i}") for i, a in enumerate(args)],
        "outputs": [describe_value(o, f"{path} output") for o in flatten(output)],
        "parameters": [{"name": n, "shape": list(p.shape), "dtype": dtype_name(p.dtype)}
                       for n, p in [*module.named_parameters(), *module.named_buffers()]],
        "source": class_source(cls),
    }


def flatten(value: Any) -> list[Any]:
    """Return the leaves of a nested tuple/list output."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in flatten(v)]
    return [value]


def describe_value(value: Any, where: str) -> dict[str, Any]:
    """Return ``{"kind": "tensor", shape, dtype[, low, high]}`` or ``{"kind": "value", value}``."""
    import torch

    if isinstance(value, torch.Tensor):
        out: dict[str, Any] = {"kind": "tensor", "shape": list(value.shape), "dtype": dtype_name(value.dtype)}
        if not value.is_floating_point() and value.device.type != "meta" and value.numel():
            out["low"], out["high"] = int(value.min()), int(value.max())
        if value.is_floating_point() and value.device.type != "meta" and value.numel():
            out["nonneg"] = bool((value >= 0).all())
        return out
    if is_plain(value):
        return {"kind": "value", "value": to_json_value(value), "py": repr(value)}
    raise ExtractError(f"{where}: unsupported value of type {type(value).__name__}")


def dtype_name(dtype: Any) -> str:
    """Return ``torch.float32`` as ``float32``."""
    return str(dtype).replace("torch.", "")


def to_json_value(value: Any) -> Any:
    """Return ``value`` with tuples turned into lists (JSON and weights-only safe)."""
    if isinstance(value, (tuple, list)):
        return [to_json_value(v) for v in value]
    return value


def class_source(cls: type) -> str:
    """Return the source of ``cls`` (empty when it cannot be found)."""
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return ""


def spec_key(call: dict[str, Any]) -> str:
    """Return what makes two calls the same subgraph: class, constructor args, input signature."""
    sig = [(i["kind"], i.get("shape"), i.get("dtype"), i.get("py")) for i in call["inputs"]]
    return repr((call["class_name"], call["init_args_py"], sig))


def merge_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one spec per distinct subgraph, ids ``sg0, sg1, ...`` in order of first call, counted."""
    specs: dict[str, dict[str, Any]] = {}
    for index, call in enumerate(calls):
        key = spec_key(call)
        if key not in specs:
            rest = {k: v for k, v in call.items() if k != "path"}
            specs[key] = {"id": f"sg{len(specs)}", **rest, "count": 0, "paths": [], "order": []}
        spec = specs[key]
        spec["count"] += 1
        spec["order"].append(index)
        if call["path"] not in spec["paths"]:
            spec["paths"].append(call["path"])
    return list(specs.values())


class _OutsideOps:
    """Counts aten ops run while no subgraph module is executing (FusedModel's own compute)."""

    def __init__(self, depth: list[int]) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        counts: dict[str, int] = {}
        self.counts = counts

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                if depth[0] == 0:
                    name = func.overloadpacket.__name__
                    counts[name] = counts.get(name, 0) + 1
                return func(*args, **(kwargs or {}))

        self.mode = Mode()

    def __enter__(self) -> _OutsideOps:
        self.mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.mode.__exit__(*exc)

    def compute_ops(self) -> dict[str, int]:
        """Return the counted ops that are not allocation, views or scalar reads."""
        return {k: v for k, v in sorted(self.counts.items())
                if k not in VIEW_OPS and not k.startswith(("view", "_unsafe_view", "expand"))}
