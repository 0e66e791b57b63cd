"""Keep untrusted code (candidates, LLM-written references) away from the harness.

Applied inside the process that is about to run untrusted code (the cold child, or a
warm worker's job process), before anything untrusted is loaded:

* resource limits: CPU seconds (relative to what the process already used), file size,
  no core dumps, and a bound on processes (``RLIMIT_NPROC``, counted per real uid, so a
  fork bomb stops there; root ignores it, which is one more reason to drop root);
* a new, empty network namespace (``unshare(CLONE_NEWNET)``; without root through a new
  user namespace), so no socket reaches the host or the internet;
* when the harness runs as root, a switch to an unprivileged uid with no groups, one uid
  per executor slot (``uid_base + slot``, skipping uids in the password database), so a
  candidate can neither read ``/proc/<harness>/environ`` nor signal or ptrace harness
  processes, and everything a job left behind can be killed by uid; the job directory is
  handed to that uid and nothing else is (``mkdtemp`` dirs of the reference jobs stay 0700);
* ``no_new_privs`` (no privilege gain through set-uid programs).

The harness itself is made non-dumpable (``protect_process``): a process of the same uid
can then neither ptrace it nor read its ``/proc/<pid>/environ`` (which keeps the API key
even after ``os.environ`` is scrubbed). Without root that is the main protection; a
same-uid candidate can still *signal* harness processes, which the report says.

``probe`` runs the same steps in a throwaway process and returns an ``IsolationReport``
saying what worked and why the rest did not, for the run record.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import math
import os
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 4096, 8192, 16384, 1 << 18
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
FILE_LIMIT = 8 << 30
KILL_ROUNDS = 200
EXPOSE_ROUNDS = 8


class IsolationError(RuntimeError):
    """A required isolation step failed; the job must not run."""


@dataclass(frozen=True)
class IsolationPolicy:
    """What to apply to a process that runs untrusted code."""

    drop_privileges: bool = True  # as root: run as an unprivileged uid (uid_base + slot)
    uid_base: int = 64000
    network: bool = True  # a new network namespace (no connectivity)
    nproc: int = 512  # RLIMIT_NPROC for the job's uid (threads count too)
    protect_harness: bool = True  # make harness processes non-dumpable

    def to_json(self) -> str:
        """Return the policy as a JSON string (for a child's command line or a request)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> IsolationPolicy:
        """Parse a policy written by ``to_json``."""
        return cls(**json.loads(text))


DEFAULT_POLICY = IsolationPolicy()


@dataclass(frozen=True)
class IsolationReport:
    """What isolation a process got: the steps applied, and each missing step with its reason."""

    applied: tuple[str, ...]
    missing: tuple[tuple[str, str], ...]
    uid: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict for the run record."""
        return {"applied": list(self.applied), "missing": [list(m) for m in self.missing], "uid": self.uid}

    def describe(self) -> str:
        """Return one line: applied steps, then missing ones with reasons."""
        gone = "; ".join(f"{what}: {why}" for what, why in self.missing)
        return f"isolation: {', '.join(self.applied) or 'none'}" + (f" (not applied: {gone})" if gone else "")


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def protect_process() -> bool:
    """Make this process non-dumpable (no same-uid ptrace or /proc/<pid>/environ); True if done."""
    try:
        _prctl(PR_SET_DUMPABLE, 0)
    except OSError:
        return False
    return True


def allow_dumps() -> None:
    """Make this process dumpable again (a forked candidate's process: the comparer maps its memory)."""
    with contextlib.suppress(OSError):
        _prctl(PR_SET_DUMPABLE, 1)


def keep_only_fds(keep: tuple[int, ...]) -> None:
    """Point 0, 1, 2 at /dev/null and close every other fd but ``keep`` (a fork drops what its parent held)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own fd, closed already
                os.close(fd)


def set_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (so none escape it); True if done."""
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        return False
    return True


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (best effort)."""
    with contextlib.suppress(OSError):
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def is_root() -> bool:
    """Whether this process runs with effective uid 0."""
    return os.geteuid() == 0


UID_BLOCK = 1000  # uids per harness process: pools use slots below 900, the cold path 900 and up
MAX_BLOCKS = 64


@functools.cache  # one lease per process and uid base, held until the process ends
def process_uid_block(uid_base: int) -> int:
    """Lease a block of candidate uids for this process, machine-wide (xdist workers, parallel runs).

    Two harness processes must never share a uid: each kills whatever runs under its uids. The lease
    is an exclusive ``flock`` on a lock file, released by the kernel when this process exits.
    """
    import fcntl

    folder = Path(tempfile.gettempdir()) / "kernelfalcon-uid-blocks"
    folder.mkdir(mode=0o700, exist_ok=True)
    for block in range(MAX_BLOCKS):
        handle = open(folder / f"{uid_base}-{block}.lock", "a")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _LEASES.append(handle)
        return block
    raise RuntimeError(f"more than {MAX_BLOCKS} isolating harness processes on this machine")


_LEASES: list[object] = []  # the open lock files of process_uid_block (process-lifetime leases)


def candidate_uid(policy: IsolationPolicy, slot: int) -> int | None:
    """Return the unprivileged uid for executor ``slot``, or None when no switch applies."""
    if not (policy.drop_privileges and is_root()):
        return None
    import pwd

    uid, left = policy.uid_base + UID_BLOCK * process_uid_block(policy.uid_base), slot
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            if left == 0:
                return uid
            left -= 1
        uid += 1


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
        if entry.name.isdigit() and _status_uid(entry) == uid:
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


def _status_uid(proc_dir: Path) -> int | None:
    """Return the real uid of a live (non-zombie) process, or None."""
    try:
        status = (proc_dir / "status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    if fields.get("State", "").startswith(("Z", "X")):
        return None
    uids = fields.get("Uid", "").split()
    return int(uids[0]) if uids else None


def kill_uid(uid: int) -> int:
    """SIGKILL every live process whose real uid is ``uid`` until none is left; return how many."""
    killed = 0
    for _ in range(KILL_ROUNDS):
        pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and _status_uid(e) == uid]
        if not pids:
            return killed
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def children_of(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid`` (zombies included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def probe(policy: IsolationPolicy, slot: int = 0) -> IsolationReport:
    """Run ``enter`` in a throwaway process and return what it could apply."""
    uid = candidate_uid(policy, slot)
    cmd = [sys.executable, "-m", "pytest_kernelfalcon.executor.isolation", policy.to_json(), str(uid)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return IsolationReport((), (("probe", f"probe failed: {done.stderr.strip()[-300:]}"),), uid)
    return IsolationReport(tuple(data["applied"]), tuple(tuple(m) for m in data["missing"]), data["uid"])


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
