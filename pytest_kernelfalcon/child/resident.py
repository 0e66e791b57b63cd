"""The resident data path: inputs, reference outputs and the comparison stay on the device.

Trusted code only (the candidate is never imported here). ``run_resident_reference``
returns a reference summary without tensors (seeds, shapes, aliasing, mutation, probes);
``run_resident`` is the comparer: it starts the candidate's process, checks the inputs it
was given, computes the reference per trial and reduces the outputs to per-trial facts.
How and why: docs/ARCHITECTURE.md ("The resident data path").
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child.precision import tf32_changes
from pytest_kernelfalcon.child.reference import build_reference, reference_forward
from pytest_kernelfalcon.child.resident_candidate import Forked
from pytest_kernelfalcon.child.runtime import (
    JobError,
    aliases,
    draw_inputs,
    exec_file,
    pin_tf32_off,
    short_error,
    torch_dtype,
)
from pytest_kernelfalcon.child.taskfacts import kept_outputs, repeat_facts
from pytest_kernelfalcon.core import handoff
from pytest_kernelfalcon.core.compare import identical, outputs_digest, shapes_of, trial_context
from pytest_kernelfalcon.core.facts import trial_facts
from pytest_kernelfalcon.core.handoff import to_host
from pytest_kernelfalcon.core.protocol import (
    CANDIDATE_START_S,
    ReferenceCase,
    ReferenceJob,
    ReferenceResult,
    ResidentCase,
    ResidentJob,
    TrialDraw,
    signal_name,
)

TAIL_CHARS = 600
EXIT_WAIT_S = 5.0
preforked: Forked | None = None  # set by a warm worker that forked a candidate's process for its one job


def _equal(a: Any, b: Any) -> bool:
    return identical([a], [b])


def reference_outputs(model: Any, inputs: list[Any], seed: int) -> tuple[list[Any], list[int], list[bool]]:
    """Run the reference on clones of ``inputs``: (outputs, aliasing, which inputs forward changed)."""
    outputs, clones = reference_forward(model, inputs, seed)
    return outputs, aliases(outputs, clones), [not _equal(c, x) for c, x in zip(clones, inputs, strict=True)]


def _reference_trial(get_inputs: Any, model: Any, job: ReferenceJob, seed: int, transform: Any,
                     strong: bool) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Draw one trial's inputs on the device and run the reference: (inputs, outputs, summary without tensors)."""
    inputs = draw_inputs(get_inputs, seed, job.device, torch_dtype(job.dtype), tuple(transform))
    outputs, al, mutated = reference_outputs(model, inputs, seed)
    return inputs, outputs, {"seed": seed, "strong": strong, "input_shapes": shapes_of(inputs),
                             "output_shapes": shapes_of(outputs), "aliases": al, "mutated": mutated}


def run_resident_reference(jobdir: Path, job: ReferenceJob) -> dict[str, Any]:
    """Reference mode of the resident path (one official plan): summaries and probes, no tensors."""
    from pytest_kernelfalcon.core.compare import ProbeTracker, tolerance_for

    tf32_defaults = pin_tf32_off()
    entry = job.plans[0]
    kb_changes: bool | None = None
    try:
        task = exec_file(jobdir / entry.file, "kf_task_0")
        model, init_inputs = build_reference(task, job.construct_seed, job.device, job.dtype)
        tracker = ProbeTracker(tolerance_for(job.dtype))
        trials, facts, first, first_digest = [], [], None, ""
        for seed in job.seeds:
            inputs, outputs, summary = _reference_trial(task.get_inputs, model, job, seed, entry.transform, False)
            tracker.add(inputs, outputs)
            facts.append(trial_facts(inputs, outputs))
            if len(facts) == 1:  # the first trial's outputs stay for the repeat forward unless too large
                first, first_digest = kept_outputs(outputs), outputs_digest(outputs)
                kb_changes = tf32_changes(model, inputs, outputs, seed, job.device, tf32_defaults)
            trials.append(summary)
            del inputs, outputs
    except JobError:
        raise
    except Exception as exc:
        raise JobError("reference_error", f"reference failed on the official shapes: {short_error(exc)}") from exc
    tracker.previous = None
    plan, strong = entry.plan, []
    try:
        for seed in job.strong_seeds:
            strong.append(_reference_trial(task.get_inputs, model, job, seed, job.strong, True)[2])
    except Exception as exc:  # strengthened inputs outside the task's domain: skip them
        plan, strong = {**plan, "strong_error": short_error(exc)}, []
    repeat = repeat_facts(reference_forward, model, task.get_inputs, job, entry.transform, job.seeds[0],
                          first, first_digest)
    case = ReferenceCase(plan=plan, index=entry.index, construct_seed=job.construct_seed,
                         init_inputs=tuple(to_host(x, f"get_init_inputs()[{i}]") for i, x in enumerate(init_inputs)),
                         trials=tuple(trials), strong_trials=tuple(strong),
                         facts={"trials": facts, "repeat": repeat, "kernelbench": {"tf32_changes_reference": kb_changes}})
    probes = tracker.found()
    del model, tracker, first
    release_device_memory(job.device)
    return ReferenceResult((case,), (), tuple(probes), resident=True).to_wire()


def release_device_memory(device: str) -> None:
    """Hand cached device memory back before reporting, so the next job on this GPU finds it free."""
    if device == "cuda":
        import gc

        import torch

        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def discard(forked: Forked) -> None:
    """Kill and reap a forked candidate's process and close the comparer's ends of its pipes."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(forked.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(forked.pid, 0)
    for fd in (forked.to_shell, forked.from_shell):
        os.close(fd)


def drop_preforked() -> None:
    """Discard the preforked candidate's process if no job used it (before its worker exits)."""
    global preforked
    if preforked is not None:
        discard(preforked)
    preforked = None


class ForkedProcess:
    """The ``Popen`` calls ``Shell`` makes (``pid``, ``wait``), for a process this one forked."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code (negative: a signal) once ended and reaped, else None."""
        if self.returncode is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it has ended
                done, status = self.pid, 9
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if end is not None and time.monotonic() >= end:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.005)
        return code


class Shell:
    """The candidate's process, seen from the comparer: start, messages, deadline, how it ended.

    Either the fork a warm worker made before its CUDA context (``preforked``: torch is
    imported, and the worker had read no request, so the fork holds nothing of any job,
    the result nonce included), or ``python -m pytest_kernelfalcon.child.resident_candidate``
    (a fork of the comparer would carry the nonce in its memory). It stays in our process
    group (killed with us) and runs as our uid (CUDA IPC needs that).
    """

    def __init__(self, jobdir: Path, limit_s: float, preforked: Forked | None = None) -> None:
        self.jobdir, self.limit_s, self.start = jobdir, limit_s, time.monotonic()
        self.deadline = self.start + CANDIDATE_START_S  # until ``ready``; then the candidate's own time limit
        self.ready_s: float | None = None  # when it said ``ready`` (the candidate is loaded after that)
        self.first_s: float | None = None
        self.log = jobdir / "candidate.log"
        self.log.write_bytes(b"")
        self.proc: subprocess.Popen[bytes] | ForkedProcess
        if preforked is not None:
            try:
                handoff.send(preforked.to_shell, {"type": "go", "jobdir": str(jobdir)})
            except OSError:  # the fork is gone (its pipe is broken): start one the slow way
                discard(preforked)
            else:
                self.proc, self.to_shell, self.from_shell = ForkedProcess(preforked.pid), preforked.to_shell, \
                    preforked.from_shell
                return
        self._spawn(jobdir)

    def _spawn(self, jobdir: Path) -> None:
        to_shell_r, self.to_shell = os.pipe()
        self.from_shell, from_shell_w = os.pipe()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pytest_kernelfalcon.child.resident_candidate", str(jobdir),
                 str(to_shell_r), str(from_shell_w)],
                pass_fds=(to_shell_r, from_shell_w), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=jobdir)
        os.close(to_shell_r)
        os.close(from_shell_w)

    def recv(self) -> dict[str, Any]:
        """The next message from the candidate's process (after its ``ready``, which starts its time limit)."""
        if self.ready_s is None:
            self._wait_ready()
        message = handoff.recv(self.from_shell, self.deadline)
        if self.first_s is None:
            self.first_s = self.elapsed()
        return message

    def _wait_ready(self) -> None:
        """Wait for ``ready``: its process started (imports, task copies), no candidate code ran yet."""
        message = handoff.recv(self.from_shell, self.deadline)
        if message.get("type") != "ready":
            raise handoff.HandoffError(f"expected ready, got {str(message)[:120]}")
        self.ready_s = self.elapsed()
        self.deadline = time.monotonic() + self.limit_s

    def ack(self) -> None:
        """Tell the candidate's process the comparer is done with what it showed."""
        handoff.send(self.to_shell, {"type": "ack"})

    def failure(self, exc: handoff.HandoffError) -> dict[str, str]:
        """Return the job error for a candidate process that stopped talking (ended, hung, or broke the protocol).

        Judged by cause, never by the clock: a process that ended (a signal, an exit) is a ``crash``
        however late it is noticed; ``timeout`` only when it was still running at its time limit and
        is killed here (or the CPU limit's SIGXCPU ended it). Before ``ready`` no candidate code ran,
        so a failure then is the harness's or the machine's.
        """
        code = self.proc.poll()
        if code is None and isinstance(exc, handoff.HandoffDeadline):
            self.kill()
            if self.ready_s is None:
                return {"category": "harness_error", "message": f"the candidate's process did not start within "
                                                                f"{CANDIDATE_START_S:.0f}s (machine overloaded?); {self.tail()}"}
            return {"category": "timeout",
                    "message": f"candidate killed after {self.elapsed() - self.ready_s:.1f}s (time limit)"}
        if code is None:
            try:
                code = self.proc.wait(EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                return self._blamed("crash", f"candidate broke the handoff protocol: {exc}; {self.tail()}")
        if code < 0:
            how = f"candidate process killed by {signal_name(-code)}"
        else:
            how = f"candidate process exited with code {code} before finishing ({exc})"
        return self._blamed("timeout" if code == -signal.SIGXCPU else "crash", f"{how}; {self.tail()}")

    def _blamed(self, category: str, message: str) -> dict[str, str]:
        if self.ready_s is None:
            return {"category": "harness_error", "message": f"the candidate's process failed before loading the "
                                                            f"candidate: {message}"}
        return {"category": category, "message": message}

    def elapsed(self) -> float:
        """Seconds since the candidate's process started."""
        return time.monotonic() - self.start

    def tail(self) -> str:
        """The end of the candidate's stdout/stderr."""
        try:
            text = self.log.read_bytes()[-TAIL_CHARS:].decode(errors="replace").strip()
        except OSError:
            return "no output"
        return f"output tail: {text}" if text else "no output"

    def kill(self) -> None:
        """Kill the candidate's whole process group and reap it."""
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        """Let the candidate's process exit (or kill it), close the pipes."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(EXIT_WAIT_S)
        self.kill()
        for fd in (self.to_shell, self.from_shell):
            os.close(fd)


def _expect(message: dict[str, Any], kind: str, seed: int, count: int | None = None) -> None:
    if message.get("type") != kind or message.get("seed") != seed:
        raise handoff.HandoffError(f"expected {kind} of seed {seed}, got {str(message)[:120]}")
    if count is not None and (not isinstance(message.get("inputs"), list) or len(message["inputs"]) != count):
        raise handoff.HandoffError(f"expected {count} input descriptor(s)")


def _ints(values: Any, count: int) -> list[int]:
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise handoff.HandoffError(f"bad index list: {str(values)[:80]}")
    return list(values)[:count]


class Comparer:
    """Serves one candidate job: per trial, checks the inputs, computes the reference, reduces to facts."""

    def __init__(self, jobdir: Path, job: ResidentJob) -> None:
        from pytest_kernelfalcon.core.compare import tolerance_for

        self.job, self.device = job, job.device
        self.tol, self.dtype = tolerance_for(job.dtype), torch_dtype(job.dtype)
        self.tamper: list[str] = []
        self.cases = []
        for k, case in enumerate(job.cases):
            task = exec_file(jobdir / case.file, f"kf_task_{k}")
            model, _ = build_reference(task, case.construct_seed, job.device, job.dtype)
            self.cases.append((task.get_inputs, model, case))
        self.trials = sum(len(case.trials) for case in job.cases)

    def serve(self, shell: Shell) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Run every trial with the candidate's process; return (facts, its ``done`` message)."""
        facts: list[dict[str, Any]] = []
        for get_inputs, model, case in self.cases:
            for trial in case.trials:
                message = shell.recv()
                if message.get("type") == "done":
                    return facts, message
                found = self._trial(shell, message, get_inputs, model, case, trial)
                if found.get("type") == "done":  # the candidate stopped (its error) after showing inputs
                    return facts, found
                facts.append(found)
        return facts, shell.recv()

    def _trial(self, shell: Shell, message: dict[str, Any], get_inputs: Any, model: Any, case: ResidentCase,
               trial: TrialDraw) -> dict[str, Any]:
        from pytest_kernelfalcon.core.compare import trial_facts

        seed = trial.seed
        mine = draw_inputs(get_inputs, seed, self.device, self.dtype, trial.transform)
        _expect(message, "inputs", seed, len(mine))
        shown = [handoff.open_value(d, self.device) for d in message["inputs"]]
        if not all(_equal(a, b) for a, b in zip(shown, mine, strict=True)):
            self.tamper.append(f"seed {seed}: forward was given inputs that differ from the checker's draw")
        del shown
        shell.ack()
        ref, ref_aliases, ref_mutated = reference_outputs(model, mine, seed)
        message = shell.recv()
        if message.get("type") == "done":
            return message
        _expect(message, "outputs", seed, len(mine))
        if not isinstance(message.get("outputs"), list):
            raise handoff.HandoffError("bad outputs list")
        got = [self._on_device(handoff.open_value(d, self.device)) for d in message["outputs"]]
        after = [handoff.open_value(d, self.device) for d in message["inputs"]]
        found = trial_facts(ref, got, self.tol, trial.strong)
        found.update(seed=seed, context=trial_context(seed, trial.strong, case.plan, mine), ref_aliases=ref_aliases,
                     strong=trial.strong, reuse=trial.reuse_storage,
                     aliases=_ints(message.get("aliases"), len(got)), reused=_ints(message.get("reused"), len(got)),
                     mutated=[not _equal(self._on_device(a), x) for a, x in zip(after, mine, strict=True)],
                     ref_mutated=ref_mutated)
        del got, after
        self._sync()
        shell.ack()
        return found

    def _on_device(self, value: Any) -> Any:
        return value.to(self.device) if hasattr(value, "to") and not isinstance(value, str) else value

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


def _shell_job(job: ResidentJob) -> dict[str, Any]:
    """The candidate's process's job: the comparer's own, without the plans."""
    cases = tuple(replace(c, plan={}) for c in job.cases)
    return replace(job, mode="shell", cases=cases).to_wire()


def _done_report(done: dict[str, Any]) -> dict[str, Any]:
    audit, timings, error = done.get("audit"), done.get("timings"), done.get("error")
    if not isinstance(audit, dict) or not isinstance(timings, dict) or not (error is None or isinstance(error, dict)):
        raise handoff.HandoffError("malformed done message")
    try:
        times = {str(k): float(v) for k, v in timings.items()}
    except (TypeError, ValueError) as exc:
        raise handoff.HandoffError(f"malformed timings: {exc}") from exc
    return {"audit": audit, "timings": times, "error": error}


def run_resident(jobdir: Path, job: ResidentJob) -> dict[str, Any]:
    """Comparer mode: serve one candidate job and return its facts, audit and timings (no tensors)."""
    import torch

    from pytest_kernelfalcon.core import isolation

    global preforked

    pin_tf32_off()
    torch.save(_shell_job(job), jobdir / "shell.pt")
    isolation.protect_process()
    shell, preforked = Shell(jobdir, float(job.timeout_s), preforked), None  # it starts while the comparer builds
    try:
        start = time.monotonic()
        comparer = _comparer(jobdir, job)
        setup_s = time.monotonic() - start
        facts, done = comparer.serve(shell)
        if done.get("type") != "done":
            raise handoff.HandoffError(f"expected done, got {str(done)[:120]}")
        if done.get("error") is None and len(facts) != comparer.trials:
            raise handoff.HandoffError(f"done after {len(facts)} of {comparer.trials} trials, without an error")
        report = _done_report(done)
    except handoff.HandoffError as exc:
        report = {"audit": {}, "timings": {}, "error": shell.failure(exc)}
        facts = []
    finally:
        shell.close()
    comparer.cases.clear()
    release_device_memory(job.device)
    report["audit"] = {**report["audit"], "tamper": list(report["audit"].get("tamper", [])) + comparer.tamper}
    report["timings"].update(shell_s=shell.elapsed(), shell_ready_s=shell.ready_s or 0.0,
                             shell_first_s=shell.first_s or 0.0, comparer_setup_s=setup_s)
    return {"facts": facts, **report}


def _comparer(jobdir: Path, job: ResidentJob) -> Comparer:
    try:
        return Comparer(jobdir, job)
    except JobError:
        raise
    except Exception as exc:
        raise JobError("reference_error", f"reference failed in the comparer: {short_error(exc)}") from exc
