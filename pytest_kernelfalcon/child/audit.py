"""The run-time audit inside the candidate child: aten op log, Triton launch count, integrity.

Used only by ``child.py``. Triton's launch path is wrapped before the candidate is
imported: ``JITFunction.run`` (compiled kernels, GPU) and the interpreter's
``GridExecutor.__call__`` (``TRITON_INTERPRET=1``). The interpreter's own host copies
(``_init_args_hst`` / ``_restore_args_dev``) and autotuner benchmarking are not logged
as the candidate's ops. Everything recorded is reported; the parent judges.

Side streams (CUDA): a compiled launch during forward on a stream other than the one
forward was called on gets a ``SIDE_DELAY_CYCLES`` spin queued ahead of it on that
stream (once per stream and trial). Right after forward the caller's stream is drained;
a side stream still busy then was not waited for, whatever the kernel's size. The copy
before and after a device sync (``check_side_stream``) stays as a second look.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child import op_policy
from pytest_kernelfalcon.child.integrity import integrity_changes, integrity_snapshot

SIDE_DELAY_CYCLES = 100_000_000  # ~50 ms of GPU clock: far longer than the host takes to return from forward


def _is_triton(exc: BaseException, name: str) -> bool:
    return any(c.__name__ == name and c.__module__.startswith("triton") for c in type(exc).__mro__)


def classify_error(exc: BaseException, default: str) -> str:
    """Return ``compile_error`` for Triton compilation errors (anywhere in the cause chain), else ``default``.

    Under ``TRITON_INTERPRET=1`` a kernel body that would not compile on a GPU (unknown
    ``tl`` function, type or shape error) raises ``InterpreterError``; it counts as a
    compile error unless its cause is an ``AssertionError`` (a device assert, a runtime check).
    """
    seen: BaseException | None = exc
    while seen is not None:
        if _is_triton(seen, "CompilationError"):
            return "compile_error"
        if _is_triton(seen, "InterpreterError"):
            return default if isinstance(seen.__cause__, AssertionError) else "compile_error"
        seen = seen.__cause__ or seen.__context__
    return default


def _make_oplog(audit: RunAudit) -> Any:
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpLog(TorchDispatchMode):
        """Logs every aten op dispatched while active (unless paused by a Triton launch)."""

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if not audit.paused:
                audit.record_op(str(func))
            return func(*args, **(kwargs or {}))

    return OpLog()


class RunAudit:
    """Run-time audit state of one candidate job (no globals: wrappers close over this object)."""

    def __init__(self, candidate: Path, enabled: bool, device: str) -> None:
        self.candidate = str(candidate)
        self.enabled, self.device = enabled, device
        self.paused = 0
        self.ops: dict[str, int] = {}
        self.forbidden: dict[str, dict[str, Any]] = {}
        self.launches = 0
        self.trial_launches: list[int] = []
        self.tamper: list[str] = []
        self.side_stream = False
        self.state_copy: dict[str, int] = {}
        self._originals: list[tuple[Any, str, Any]] = []
        self._snapshot: dict[str, int] = {}
        self._threads: set[threading.Thread] = set()
        self._oplog: Any = None
        self._caller_stream: Any = None  # the stream forward was called on (CUDA), while forward runs
        self._side_streams: list[Any] = []  # other streams a Triton kernel was launched on in this forward

    # -- installation -------------------------------------------------------------------
    def install(self) -> None:
        """Wrap Triton's launch path and take the integrity snapshot (before the candidate loads)."""
        if not self.enabled:
            return
        self._wrap_triton()
        self._oplog = _make_oplog(self)
        self._warm_up()
        self._threads = set(threading.enumerate())
        self._snapshot = integrity_snapshot()

    def _warm_up(self) -> None:
        """Import torch._dynamo and enter the op log once before the snapshot.

        The first dispatch-mode entry imports torch._dynamo, which rebinds torch attributes
        (``torch.manual_seed``); done later it would read as tampering.
        """
        import torch
        import torch._dynamo  # noqa: F401

        with self._oplog:
            torch.empty(0)
        self.ops.clear()

    def uninstall(self) -> None:
        """Restore every wrapped Triton attribute."""
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)
        self._originals.clear()

    def _patch(self, owner: Any, name: str, make: Any) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return
        self._originals.append((owner, name, original))
        setattr(owner, name, make(original))

    def _wrap_triton(self) -> None:
        from triton.runtime.jit import JITFunction

        self._patch(JITFunction, "run", self._counting_run)
        try:
            from triton.runtime import autotuner, interpreter
        except ImportError:
            return
        self._patch(interpreter.GridExecutor, "__call__", self._counting_call)
        for name in ("_init_args_hst", "_restore_args_dev"):
            self._patch(interpreter.GridExecutor, name, self._pausing)
        self._patch(autotuner.Autotuner, "_bench", self._pausing)

    def _counting_run(self, original: Any) -> Any:
        def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
            if not kwargs.get("warmup", False):
                self._note_stream()
            result = original(fn, *args, **kwargs)
            if not kwargs.get("warmup", False):
                self.launches += 1
            return result

        return run

    def _counting_call(self, original: Any) -> Any:
        def call(executor: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(executor, *args, **kwargs)
            self.launches += 1
            return result

        return call

    def _note_stream(self) -> None:
        """Before a launch during forward on a stream other than the caller's: the first time per stream and
        trial, queue a ``SIDE_DELAY_CYCLES`` spin on that stream ahead of the kernel, so that work the caller's
        stream is not made to wait for is still running when forward returns (see ``_unsynced_side_work``)."""
        if self._caller_stream is None:
            return
        import torch

        stream = _current_stream()
        if stream != self._caller_stream and stream not in self._side_streams:
            self._side_streams.append(stream)
            torch.cuda._sleep(SIDE_DELAY_CYCLES)

    def _unsynced_side_work(self, caller: Any) -> bool:
        """Right after forward: whether a side stream still runs once the caller's stream has drained
        (work the caller waits for, by ``wait_stream`` or a host sync, has ended by then)."""
        streams, self._side_streams = self._side_streams, []
        if not streams:
            return False
        caller.synchronize()
        return any(not stream.query() for stream in streams)

    def _pausing(self, original: Any) -> Any:
        def paused(*args: Any, **kwargs: Any) -> Any:
            self.paused += 1
            try:
                return original(*args, **kwargs)
            finally:
                self.paused -= 1

        return paused

    # -- recording ----------------------------------------------------------------------
    def record_op(self, name: str) -> None:
        """Count an aten op; for a forbidden one also keep the candidate line that ran it."""
        self.ops[name] = self.ops.get(name, 0) + 1
        if op_policy.is_allowed_op(name):
            return
        entry = self.forbidden.setdefault(name, {"op": name, "count": 0, "where": self._stack_line()})
        entry["count"] += 1

    def _stack_line(self) -> str:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == self.candidate:
                return f"candidate.py:{frame.f_lineno}"
            frame = frame.f_back  # type: ignore[assignment]
        return "outside candidate.py"

    def candidate_line(self, exc: BaseException) -> str:
        """Return ``candidate.py:LINE`` of the innermost candidate frame in ``exc``'s traceback."""
        import traceback

        if isinstance(exc, SyntaxError) and exc.filename == self.candidate:
            return f"candidate.py:{exc.lineno}"
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == self.candidate]
        return f"candidate.py:{frames[-1].lineno}" if frames else ""

    # -- per trial ------------------------------------------------------------------------
    def run_forward(self, model: Any, inputs: list[Any]) -> Any:
        """Call ``model(*inputs)``, under the op log and launch count when auditing."""
        if not self.enabled:
            return model(*inputs)
        from torch.utils._python_dispatch import _get_current_dispatch_mode

        before = self.launches
        caller = _current_stream() if self.device == "cuda" else None
        self._caller_stream, self._side_streams = caller, []
        try:
            with self._oplog:
                out = model(*inputs)
                if _get_current_dispatch_mode() is not self._oplog:
                    self.tamper.append("the checker's dispatch mode was removed during forward")
        finally:
            self._caller_stream = None
        if caller is not None and self._unsynced_side_work(caller):
            self.side_stream = True
        self.trial_launches.append(self.launches - before)
        return out

    def outputs_to_host(self, outputs: list[Any]) -> list[Any]:
        """Copy outputs to host; on CUDA copy before and after a device sync to catch side streams."""
        from pytest_kernelfalcon.core.compare import identical
        from pytest_kernelfalcon.core.handoff import to_host

        first = [to_host(o, f"output {i}") for i, o in enumerate(outputs)]
        if self.device != "cuda":
            return first
        import torch

        torch.cuda.synchronize()
        second = [to_host(o, f"output {i}") for i, o in enumerate(outputs)]
        if self.enabled and not identical(_tensors(first), _tensors(second)):
            self.side_stream = True
        return first

    def check_side_stream(self, outputs: list[Any]) -> None:
        """On CUDA, compare outputs copied on the device before and after a device-wide sync (no host copy)."""
        if self.device != "cuda":
            return
        import torch

        tensors = [o for o in outputs if isinstance(o, torch.Tensor)]
        before = [t.detach().clone() for t in tensors]
        torch.cuda.synchronize()
        from pytest_kernelfalcon.core.compare import equal_tensors

        if self.enabled and not all(equal_tensors(b, t) for b, t in zip(before, tensors, strict=True)):
            self.side_stream = True

    def poison(self, outputs: list[Any]) -> None:
        """Overwrite output memory (NaN for floats) so a later trial cannot reuse it unnoticed."""
        import torch

        for out in outputs:
            if not isinstance(out, torch.Tensor) or out.dtype == torch.bool:
                continue
            value = float("nan") if out.is_floating_point() else torch.iinfo(out.dtype).min
            # expanded views cannot be filled; their reuse is still caught by storage identity
            with contextlib.suppress(RuntimeError):
                out.detach().fill_(value)

    def check_integrity(self, when: str) -> None:
        """Record tampering: torch/checker attributes changed, Triton wrappers removed, threads left."""
        if not self.enabled:
            return

        found = list(integrity_changes(self._snapshot))
        found += [f"{owner.__name__}.{name} was replaced" for owner, name, _ in self._originals
                  if getattr(owner, name).__module__ != __name__]
        found += [f"thread {t.name!r} left running" for t in threading.enumerate()
                  if t not in self._threads and t.is_alive()]
        for item in found:
            if not any(seen.endswith(item) for seen in self.tamper):
                self.tamper.append(f"{when}: {item}")

    def report(self) -> dict[str, Any]:
        """Return the audit record written into ``result.pt``."""
        return {"enabled": self.enabled, "ops": dict(self.ops), "forbidden": list(self.forbidden.values()),
                "triton_launches": self.launches, "launches_per_trial": list(self.trial_launches),
                "tamper": list(self.tamper), "side_stream": self.side_stream, "state_copy": dict(self.state_copy)}


def _current_stream() -> Any:
    import torch

    return torch.cuda.current_stream()


def _tensors(values: list[Any]) -> list[Any]:
    return [v for v in values if not isinstance(v, str)]
