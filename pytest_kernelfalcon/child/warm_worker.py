"""A long-lived worker of ``WarmExecutor``: imports torch and triton once, then runs jobs.

``python -m pytest_kernelfalcon.child.warm_worker --mode fork|once --device cpu|cuda`` reads
one JSON request per line on stdin and answers ``ready``, ``started <pid>`` and
``exited <returncode>``. ``fork`` keeps one job process forked ahead and reaps everything a
job left; ``once`` runs one request itself. The protocol and the job process's setup are in
docs/ARCHITECTURE.md ("The warm executor").
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.child import isolation
from pytest_kernelfalcon.core import isolation as process

REAP_ROUNDS = 4000


def preload() -> None:
    """Import everything a job needs (CUDA stays uninitialised: forks can still use it)."""
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401  (the child's dispatch-mode audit imports it)
    import triton  # noqa: F401
    import triton.language  # noqa: F401

    from pytest_kernelfalcon.child import (  # noqa: F401
        audit,
        candidate,
        integrity,
        jobs,
        op_policy,
        reference,
        resident,
        resident_candidate,
        runtime,
    )
    from pytest_kernelfalcon.core import compare, handoff  # noqa: F401

    with contextlib.suppress(ImportError):
        import triton.runtime.interpreter  # noqa: F401


def start_cuda() -> None:
    """Create this process's CUDA context and Triton's driver helpers (a job process getting ready on CUDA)."""
    import torch
    import triton

    torch.empty(1, device="cuda")
    torch.cuda.synchronize()
    with contextlib.suppress(Exception):  # built on first use
        triton.runtime.driver.active.get_current_device()


def _redirect(log_dir: str) -> None:
    for fd, name in ((1, "stdout"), (2, "stderr")):
        out = os.open(os.path.join(log_dir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def run_request(req: dict[str, Any], forked: bool) -> None:
    """Run one job request in this process and leave through ``os._exit`` (never returns)."""
    code = 0
    try:
        with contextlib.suppress(OSError):
            os.setsid()
        _redirect(req["log_dir"])
        isolation.enter_request(req, parent_death=forked)
        from pytest_kernelfalcon.child.jobs import run_job

        run_job(Path(req["workdir"]), req["nonce"])
    except BaseException:
        traceback.print_exc()
        code = 3
    with contextlib.suppress(Exception):
        from pytest_kernelfalcon.child import resident

        resident.drop_preforked()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _wait_child(pid: int) -> int:
    """Wait for job process ``pid``; if stdin closes (harness gone) kill it. Return its returncode."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        watch = [0] + ([pidfd] if pidfd is not None else [])
        readable, _, _ = select.select(watch, [], [], None if pidfd is not None else 0.05)
        if 0 in readable and os.read(0, 1) in (b"", b"k"):
            _kill_job(pid)


def _kill_job(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def reap_all(keep: frozenset[int] = frozenset()) -> bool:
    """Kill and reap every descendant left but ``keep`` (orphans come to us as subreaper); True when none is."""
    me = os.getpid()
    for _ in range(REAP_ROUNDS):
        left = [pid for pid in process.children_of(me) if pid not in keep]
        if not left:
            return True
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in left:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.005)
    return False


@dataclass(frozen=True)
class Waiting:
    """A job process forked ahead of its request (``fork`` mode): its pid and the pipe its request goes down."""

    pid: int
    fd: int


def fork_waiting(device: str) -> Waiting:
    """Fork the next job process now; it gets ready (``prepare``) and waits for its request line."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            _wait_for_request(r, device)
        finally:
            os._exit(3)
    os.close(r)
    return Waiting(pid, w)


def _wait_for_request(fd: int, device: str) -> None:
    process.die_with_parent()
    with contextlib.suppress(OSError):
        os.setsid()  # its own session and process group, which its candidate's process joins
    process.keep_only_fds((fd,))
    prepare(device)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    if not chunks:  # the worker went away
        os._exit(0)
    begin(json.loads(b"".join(chunks)), forked=True)


def prepare(device: str) -> None:
    """Get this process ready for one job before its request: fork a resident job's candidate process
    (``resident_candidate.prefork``, before any CUDA context), then on CUDA create the context."""
    from pytest_kernelfalcon.child import resident, resident_candidate

    resident.preforked = resident_candidate.prefork()
    if device == "cuda":
        start_cuda()


def begin(req: dict[str, Any], forked: bool) -> None:
    """Arm the preforked candidate's process with the request (without its nonce), then run the request."""
    from pytest_kernelfalcon.child import resident
    from pytest_kernelfalcon.core import handoff

    if resident.preforked is not None:
        keep = ("workdir", "env", "policy", "uid", "timeout_s")  # not the nonce: the candidate must not know it
        try:
            handoff.send(resident.preforked.to_shell, {"type": "arm", "request": {k: req[k] for k in keep}})
        except OSError:  # it is gone: a resident job starts its candidate's process the slow way
            resident.drop_preforked()
    run_request(req, forked)


def serve_fork(line: bytes, waiting: Waiting, device: str) -> Waiting:
    """Handle one request in ``fork`` mode: hand it to the waiting job process, fork the next one, wait,
    reap, report. Return the next waiting job process."""
    try:
        _hand_over(waiting, line)
    except OSError:  # it died getting ready (its pipe is broken): one more, ready or not
        reap_all()
        waiting = fork_waiting(device)
        _hand_over(waiting, line)
    _say(f"started {waiting.pid}")
    following = fork_waiting(device)  # gets ready while this job runs
    code = _wait_child(waiting.pid)
    clean = reap_all(keep=frozenset({following.pid}))
    _say(f"exited {code}" + ("" if clean else " unclean"))
    return following


def _hand_over(waiting: Waiting, line: bytes) -> None:
    from pytest_kernelfalcon.core import handoff

    try:
        handoff.write_all(waiting.fd, line)
    finally:
        os.close(waiting.fd)


def _watch_harness(fd: int) -> None:
    """In ``once`` mode: kill this whole process group when the harness closes our stdin or says ``k``."""
    while os.read(fd, 1) not in (b"", b"k"):
        pass
    os.killpg(0, signal.SIGKILL)


def serve_once(line: bytes) -> None:
    """Handle the one request of ``once`` mode in this process (never returns)."""
    _say(f"started {os.getpid()}")
    watched = os.dup(0)  # fd 0 itself becomes /dev/null for the job
    threading.Thread(target=_watch_harness, args=(watched,), name="kf-harness-watch", daemon=True).start()
    begin(json.loads(line), forked=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: preload, say ready, serve requests until stdin closes."""
    args = list(sys.argv[1:] if argv is None else argv)
    mode = args[args.index("--mode") + 1] if "--mode" in args else "fork"
    device = args[args.index("--device") + 1] if "--device" in args else "cpu"
    process.protect_process()
    if mode == "fork":
        process.set_subreaper()
    preload()
    waiting = fork_waiting(device) if mode == "fork" else None
    if mode == "once":
        prepare(device)
    _say(f"ready {os.getpid()}")
    requests = os.fdopen(0, "rb", buffering=0)  # unbuffered: a "k" mid-job is read raw
    while line := requests.readline():
        if not line.strip():
            continue
        if waiting is None:
            serve_once(line)
        else:
            waiting = serve_fork(line, waiting, device)
    os._exit(0)


if __name__ == "__main__":
    main()
