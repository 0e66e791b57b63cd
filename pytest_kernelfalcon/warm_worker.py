"""A long-lived worker of ``WarmExecutor``: imports torch and triton once, then runs jobs.

``python -m pytest_kernelfalcon.warm_worker --mode fork|once --device cpu|cuda``, started
by the harness with an already scrubbed environment in its own session. It imports the
heavy modules, writes ``ready <pid>`` and reads one JSON request per line on stdin:
``{"workdir", "timeout_s", "nonce", "env", "log_dir", "uid", "policy"}``.

* ``fork``: for each request it forks a job process (cheap: the imports are shared
  copy-on-write), writes ``started <pid>``, waits for it (or for stdin to close, which
  kills it), reaps every descendant (it is their subreaper, so a double fork or a
  ``setsid`` does not escape) and writes ``exited <returncode>`` (negative: a signal).
* ``once``: it runs the request itself (after ``started <pid>``) and exits; used on CUDA,
  where a forked child cannot use the parent's CUDA context, so the context is created
  before the request arrives, off the critical path.

The job process: its own session, stdout/stderr to ``log_dir``, stdin from /dev/null,
cwd = the job dir, ``os.environ`` = the request's scrubbed environment, then
``isolation.enter`` (rlimits, network namespace, uid switch), then ``child.run_job``,
and ``os._exit`` (no atexit hooks of loaded code).
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
from pathlib import Path
from typing import Any

from pytest_kernelfalcon import isolation

REAP_ROUNDS = 4000


def preload(device: str, mode: str) -> None:
    """Import everything a job needs; on CUDA in ``once`` mode also create the CUDA context."""
    import torch
    import torch._dynamo  # noqa: F401  (the child's dispatch-mode audit imports it)
    import triton  # noqa: F401
    import triton.language  # noqa: F401

    from pytest_kernelfalcon import audit, child, child_audit, compare, integrity  # noqa: F401

    with contextlib.suppress(ImportError):
        import triton.runtime.interpreter  # noqa: F401
    if device == "cuda" and mode == "once":
        torch.empty(1, device="cuda")
        torch.cuda.synchronize()
        with contextlib.suppress(Exception):  # triton's driver helpers (built on first use)
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
        workdir = Path(req["workdir"])
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update(req["env"])
        policy = isolation.IsolationPolicy(**req["policy"])
        isolation.enter(policy, workdir, req["uid"], float(req["timeout_s"]), parent_death=forked)
        from pytest_kernelfalcon.child import run_job

        run_job(workdir, req["nonce"])
    except BaseException:
        traceback.print_exc()
        code = 3
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


def reap_all() -> bool:
    """Kill and reap every descendant left (orphans come to us as subreaper); True when none is left."""
    me = os.getpid()
    for _ in range(REAP_ROUNDS):
        for pid in isolation.children_of(me):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if done == 0:
            time.sleep(0.005)
    return False


def serve_fork(line: bytes) -> None:
    """Handle one request in ``fork`` mode: fork, report, wait, reap, report."""
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        run_request(req, forked=True)
    _say(f"started {pid}")
    code = _wait_child(pid)
    clean = reap_all()
    _say(f"exited {code}" + ("" if clean else " unclean"))


def _watch_harness(fd: int) -> None:
    """In ``once`` mode: kill this whole process group when the harness closes our stdin or says ``k``."""
    while os.read(fd, 1) not in (b"", b"k"):
        pass
    os.killpg(0, signal.SIGKILL)


def serve_once(line: bytes) -> None:
    """Handle the one request of ``once`` mode in this process (never returns)."""
    req = json.loads(line)
    _say(f"started {os.getpid()}")
    watched = os.dup(0)  # fd 0 itself becomes /dev/null for the job
    threading.Thread(target=_watch_harness, args=(watched,), name="kf-harness-watch", daemon=True).start()
    run_request(req, forked=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: preload, say ready, serve requests until stdin closes."""
    args = list(sys.argv[1:] if argv is None else argv)
    mode = args[args.index("--mode") + 1] if "--mode" in args else "fork"
    device = args[args.index("--device") + 1] if "--device" in args else "cpu"
    isolation.protect_process()
    if mode == "fork":
        isolation.set_subreaper()
    preload(device, mode)
    _say(f"ready {os.getpid()}")
    requests = os.fdopen(0, "rb", buffering=0)  # unbuffered: a "k" mid-job is read raw
    while line := requests.readline():
        if not line.strip():
            continue
        if mode == "once":
            serve_once(line)
        serve_fork(line)
    os._exit(0)


if __name__ == "__main__":
    main()
