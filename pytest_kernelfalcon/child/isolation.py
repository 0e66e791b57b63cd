"""Isolation entered by the process that is about to run untrusted code (cold child, warm job process).

Before anything untrusted is loaded: resource limits, a new empty network namespace, the
switch to an unprivileged uid with only the paths it needs exposed, ``no_new_privs``.
``python -m pytest_kernelfalcon.child.isolation POLICY UID`` is the probe's throwaway process.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.core.isolation import (
    PR_SET_NO_NEW_PRIVS,
    IsolationError,
    IsolationPolicy,
    IsolationReport,
    _libc,
    _prctl,
    die_with_parent,
    is_root,
    status_uid,
)
from pytest_kernelfalcon.core.protocol import FILE_LIMIT, PACKAGE_ROOT

MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 4096, 8192, 16384, 1 << 18


CLONE_NEWUSER = 0x10000000


CLONE_NEWNET = 0x40000000


CLONE_NEWNS = 0x00020000


EXPOSE_ROUNDS = 8


def _unshare(flags: int) -> None:
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def new_network_namespace() -> None:
    """Move this process into a new, empty network namespace (raises ``OSError`` if impossible)."""
    if is_root():
        _unshare(CLONE_NEWNET)
        return
    uid, gid = os.getuid(), os.getgid()
    _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


def uid_tasks(uid: int) -> int:
    """Return how many tasks (threads included) run with real uid ``uid``."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and status_uid(entry) == uid:
            with contextlib.suppress(OSError):
                count += len(os.listdir(entry / "task"))
    return count


def apply_rlimits(timeout_s: float, nproc: int | None) -> None:
    """Cap CPU (2 x timeout + 10 s beyond what is used), file size, core dumps, and processes."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(math.ceil(usage.ru_utime + usage.ru_stime + timeout_s * 2 + 10))
    limits = [("RLIMIT_CPU", cpu, cpu + 5), ("RLIMIT_FSIZE", FILE_LIMIT, FILE_LIMIT), ("RLIMIT_CORE", 0, 0)]
    if nproc is not None:
        limits.append(("RLIMIT_NPROC", nproc, nproc))
    for name, soft, hard in limits:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(getattr(resource, name), (soft, hard))


def give_to(path: Path, uid: int) -> None:
    """Hand ``path`` (and everything under it) to ``uid``, group ``uid``."""
    os.chown(path, uid, uid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


def _blocked(path: Path, uid: int) -> bool:
    """Whether ``uid`` (no groups) may not traverse directory ``path``."""
    st = os.stat(path)
    if st.st_uid == uid:
        return not st.st_mode & stat.S_IXUSR
    return not st.st_mode & (stat.S_IXGRP if st.st_gid == uid else stat.S_IXOTH)


def needed_paths(workdir: Path | None) -> list[Path]:
    """Return the directories a job must reach: the Python installation, import paths, the job dir."""
    paths = [Path(sys.prefix), Path(sys.base_prefix), PACKAGE_ROOT] + [Path(p) for p in sys.path if p]
    return [p.resolve() for p in paths + ([workdir] if workdir else []) if p.exists()]


def blocked_exposures(paths: list[Path], uid: int) -> dict[Path, set[str]]:
    """Map each topmost directory ``uid`` cannot traverse to the child names the job needs in it."""
    found: dict[Path, set[str]] = {}
    for path in paths:
        for parent in reversed(path.parents):
            if parent != path and _blocked(parent, uid):
                found.setdefault(parent, set()).add(path.relative_to(parent).parts[0])
                break
    return found


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    args = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    if _libc().mount(args[0], args[1], args[2], ctypes.c_ulong(flags), args[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def expose_for(uid: int, workdir: Path | None) -> list[str]:
    """In a new mount namespace, replace each blocked directory on the way to the Python installation
    or the job dir (e.g. a 0700 ``/root``) by an empty tmpfs holding only what the job needs there;
    return the paths exposed that way."""
    shown: list[str] = []
    for _ in range(EXPOSE_ROUNDS):  # each round opens the next blocked level of the paths
        exposures = blocked_exposures(needed_paths(workdir), uid)
        if not exposures:
            return shown
        if not shown:
            _unshare(CLONE_NEWNS)
            _mount("none", "/", None, MS_REC | MS_PRIVATE)
        for top, names in exposures.items():
            shown.extend(_expose(top, names))
    raise OSError(f"paths still blocked for uid {uid}: {sorted(map(str, exposures))}")


def _expose(top: Path, names: set[str]) -> list[str]:
    hold = Path(tempfile.mkdtemp(prefix="kf-hold-"))
    for name in names:
        (hold / name).mkdir()
        _mount(str(top / name), str(hold / name), None, MS_BIND | MS_REC)
    _mount("tmpfs", str(top), "tmpfs", 0, "mode=0755,size=1m")
    for name in names:
        (top / name).mkdir()
        _mount(str(hold / name), str(top / name), None, MS_MOVE)
        (hold / name).rmdir()
    hold.rmdir()
    return [str(top / name) for name in sorted(names)]


def drop_to(uid: int) -> None:
    """Switch this process (root) to ``uid``/gid ``uid`` with no supplementary groups, for good."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise IsolationError(f"still uid {os.geteuid()} after switching to {uid}")


def adopt_uid_env(uid: int) -> None:
    """Environment for a job uid: a Triton cache of its own under the shared one (no uid writes into
    another's), and a user name (the uid has no passwd entry; torch asks ``getpass`` on some imports)."""
    base = os.environ.get("TRITON_CACHE_DIR")
    if base:
        os.environ["TRITON_CACHE_DIR"] = os.path.join(base, f"uid-{uid}")
    os.environ["USER"] = os.environ["LOGNAME"] = f"kf{uid}"


def enter(policy: IsolationPolicy, workdir: Path | None, uid: int | None, timeout_s: float,
          parent_death: bool = True) -> IsolationReport:
    """Isolate this process before untrusted code runs; raise ``IsolationError`` if the uid switch fails.

    ``parent_death``: SIGKILL this process when the thread that started it ends (only right
    where that thread waits for the job).
    """
    applied, missing = ["rlimits"], []
    if policy.network:
        try:
            new_network_namespace()
            applied.append("netns")
        except OSError as exc:
            missing.append(("netns", f"unshare failed: {exc.strerror or exc}"))
    nproc = _nproc_limit(policy, uid)
    apply_rlimits(timeout_s, nproc)
    if uid is not None:
        try:
            if workdir is not None:
                give_to(workdir, uid)
            applied.extend(f"exposed {p}" for p in expose_for(uid, workdir))
            drop_to(uid)
            adopt_uid_env(uid)
        except OSError as exc:
            raise IsolationError(f"cannot switch to uid {uid}: {exc}") from exc
        applied.append(f"uid {uid}")
    else:
        missing.append(("uid", "harness is not root" if not is_root() else "disabled by policy"))
        missing.append(("signals", "same uid as the harness: signals are not blocked"))
    _no_new_privs(applied, missing)
    if parent_death:
        die_with_parent()
    if nproc is not None:
        applied.append(f"nproc {nproc}")
    return IsolationReport(tuple(applied), tuple(missing), uid)


def enter_request(req: dict[str, Any], parent_death: bool) -> IsolationReport:
    """Become the process of a worker request: its job dir as cwd, its scrubbed environment, then ``enter``."""
    workdir = Path(req["workdir"])
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(req["env"])
    return enter(IsolationPolicy(**req["policy"]), workdir, req["uid"], float(req["timeout_s"]), parent_death)


def _nproc_limit(policy: IsolationPolicy, uid: int | None) -> int | None:
    if uid is not None:
        return policy.nproc
    if is_root():
        return None  # root ignores RLIMIT_NPROC
    return uid_tasks(os.getuid()) + policy.nproc


def _no_new_privs(applied: list[str], missing: list[tuple[str, str]]) -> None:
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        applied.append("no_new_privs")
    except OSError as exc:
        missing.append(("no_new_privs", str(exc)))


def _probe_main(argv: list[str]) -> None:
    policy = IsolationPolicy.from_json(argv[0])
    uid = None if argv[1] == "None" else int(argv[1])
    try:
        report = enter(policy, None, uid, 10.0)
        import xml.dom.minidom  # noqa: F401  (a module not imported yet: is Python readable?)
    except (IsolationError, ImportError) as exc:
        report = IsolationReport((), (("uid", f"{type(exc).__name__}: {exc}"),), uid)
    print(json.dumps(report.to_json()))


if __name__ == "__main__":
    _probe_main(sys.argv[1:])
