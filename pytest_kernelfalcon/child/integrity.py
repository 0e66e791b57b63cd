"""Integrity snapshot of torch, triton and checker callables: detects monkey-patching in the child."""

from __future__ import annotations

import sys


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TENSOR_METHODS = (
    "__eq__ __ne__ __getitem__ __setitem__ __reduce_ex__ __torch_function__ __torch_dispatch__ cpu cuda to "
    "copy_ clone detach contiguous data_ptr numel size float double item tolist isnan isfinite abs sub "
    "allclose equal fill_ zero_ untyped_storage record_stream"
)
_CRITICAL = _words(
    "torch.save torch.load torch.allclose torch.isclose torch.equal torch.manual_seed torch.testing.assert_close "
    "torch.cuda.synchronize torch.cuda.current_stream torch.cuda.default_stream torch.cuda.is_available "
    "torch.Tensor torch.nn.Module.__call__ torch.nn.Module._call_impl torch.nn.Module.load_state_dict "
    "torch.utils._python_dispatch.TorchDispatchMode torch.utils._python_dispatch.TorchDispatchMode.__torch_dispatch__ "
    "torch.utils._python_dispatch.TorchDispatchMode.__enter__ torch.utils._python_dispatch.TorchDispatchMode.__exit__ "
    "torch.utils._python_dispatch._push_mode torch.utils._python_dispatch._pop_mode "
    "torch.utils._python_dispatch._get_current_dispatch_mode_stack torch._C._push_on_torch_dispatch_stack "
    "torch._C._pop_torch_dispatch_stack torch._C._len_torch_dispatch_stack torch._C._get_dispatch_stack_at "
    "builtins.open builtins.print builtins.__import__ builtins.isinstance builtins.getattr builtins.setattr "
    "builtins.id builtins.type builtins.len builtins.exec builtins.eval builtins.compile "
    "sys.exit sys.settrace sys.setprofile sys.gettrace sys.getprofile sys.modules sys._getframe "
    "os._exit os.replace os.rename os.write triton.jit triton.autotune triton.runtime.jit.JITFunction "
    "triton.runtime.jit.JITFunction.run triton.runtime.jit.JITFunction.__getitem__ "
    "triton.runtime.autotuner.Autotuner.run triton.runtime.interpreter.InterpretedFunction "
    "triton.runtime.interpreter.InterpretedFunction.run triton.runtime.interpreter.GridExecutor.__call__"
) | {f"torch.Tensor.{m}" for m in _TENSOR_METHODS.split()}
_INTEGRITY_MODULES = (
    "torch", "torch.utils._python_dispatch", "triton", "triton.runtime.jit", "triton.runtime.autotuner",
    "triton.runtime.interpreter",
)
_CHECKER_MODULES = (*(f"pytest_kernelfalcon.child.{m}" for m in ("runtime", "reference", "candidate", "jobs", "op_policy")),
                    "pytest_kernelfalcon.core.ops")
_MISSING = object()


class _Snapshot(dict[str, int]):
    """Ids of critical objects; also keeps the objects alive so that no id can be reused."""

    kept: list[object]


def integrity_snapshot() -> dict[str, int]:
    """Return ``{dotted name: id}`` for critical torch/triton/builtins/checker callables (child only)."""
    import importlib

    for module in _INTEGRITY_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
    objects = {name: obj for name in sorted(_CRITICAL) if (obj := _resolve(name)) is not _MISSING}
    objects.update(_checker_objects())
    for name, obj in list(objects.items()):
        if hasattr(obj, "__code__"):
            objects[f"{name}.__code__"] = obj.__code__
    snapshot = _Snapshot((name, id(obj)) for name, obj in objects.items())
    snapshot.kept = list(objects.values())
    return snapshot


def integrity_changes(snapshot: dict[str, int]) -> list[str]:
    """Return the names from ``snapshot`` whose object has since been replaced or removed."""
    current = integrity_snapshot()
    return sorted(name for name, ident in snapshot.items() if current.get(name) != ident)


def _resolve(dotted: str) -> object:
    """Return the object at ``dotted`` (longest loaded module prefix, then static lookups), or ``_MISSING``."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        obj: object = sys.modules.get(".".join(parts[:cut]), _MISSING)
        if obj is not _MISSING:
            for attr in parts[cut:]:
                obj = _static_get(obj, attr)
            return obj
    return _MISSING


def _static_get(obj: object, attr: str) -> object:
    """Return ``attr`` from the ``__dict__`` of ``obj`` or its MRO, without running descriptors or hooks."""
    if obj is _MISSING:
        return _MISSING
    owners = obj.__mro__ if isinstance(obj, type) else (obj,)
    for owner in owners:
        found = vars(owner).get(attr, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        if found is not _MISSING:
            return found
    return _MISSING


def _checker_objects() -> dict[str, object]:
    """Return the functions and classes defined by the loaded checker modules that run in the child."""
    found: dict[str, object] = {}
    for name in _CHECKER_MODULES:
        module = sys.modules.get(name)
        for attr, obj in vars(module).items() if module else ():
            if callable(obj) and getattr(obj, "__module__", None) == name:
                found[f"{name}.{attr}"] = obj
    return found
