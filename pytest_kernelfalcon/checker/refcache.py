"""A persistent, content-addressed cache of reference runs, shared by every checker process of a user.

A second ``kernelfalcon verify`` of a task (or a second pytest session) reads the reference
from here instead of running it again. An entry is keyed by everything a reference run
depends on: the task source, the shape profile, seeds, dtype, device and GPU model, the data
path, torch / triton / Python versions and the checker's own code (a hash of the files of
``checker/``, ``child/`` and ``core/``, so any change to how references are made or carried
invalidates every entry).

Trust: only the parent (harness) process reads or writes the store; children never see it.
The directory is created 0700 and must be owned by this process's effective uid and not
writable by group or others; an entry must be a regular file owned by the same uid, not
group/other-writable, loadable ``weights_only``, and hold the very key it was looked up by.
Anything else (corrupt, truncated, foreign-owned, a link, another key) is ignored and
recomputed, never trusted. The ``auto`` setting uses the store only where candidates run
under another uid (isolation as root), so no candidate can write or read it; an explicit
directory is used whatever the isolation (the caller's choice, documented in the CLI help).
Writers write a private temporary file and ``os.replace`` it (atomic; concurrent writers of
the same key leave one complete entry); a per-key ``flock`` makes concurrent checkers of one
task wait for the first one's result instead of running the reference again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import secrets
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
CODE_DIRS = ("checker", "child", "core")
ENV_DIR = "KERNELFALCON_REFERENCE_CACHE"


def default_root() -> Path:
    """``$KERNELFALCON_REFERENCE_CACHE``, else ``$XDG_CACHE_HOME/kernelfalcon/references`` (``~/.cache``)."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kernelfalcon" / "references"


@functools.cache
def checker_version() -> str:
    """A hash of the checker's own code (every ``.py`` file of checker/, child/ and core/)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for sub in CODE_DIRS:
        for path in sorted((package / sub).glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def versions() -> dict[str, str]:
    """torch, triton and Python versions (the reference's numbers depend on them)."""
    import torch

    try:
        from importlib.metadata import version

        triton = version("triton")
    except Exception:  # absent or not installed as a distribution
        triton = "absent"
    return {"torch": str(torch.__version__), "triton": triton, "python": sys.version.split()[0]}


@functools.cache
def device_model(device: str, gpu: str | None) -> str | None:
    """The model of the device the jobs run on (``cpu``; the CUDA device's name), None when unknown."""
    if device != "cuda":
        return "cpu"
    import torch

    try:
        count = torch.cuda.device_count()
        names = [torch.cuda.get_device_name(i) for i in range(count)]
    except Exception:  # no driver here: the job would say so
        return None
    if gpu is not None and gpu.isdigit() and int(gpu) < count:
        return names[int(gpu)]
    return names[0] if names and len(set(names)) == 1 else None


def entry_key(task_source: str, fields_: dict[str, Any], device: str, gpu: str | None) -> dict[str, Any] | None:
    """The full key of a reference run (None when the device model is unknown: nothing is stored)."""
    model = device_model(device, gpu)
    if model is None:
        return None
    return {"format": FORMAT, "task_sha256": hashlib.sha256(task_source.encode()).hexdigest(),
            **fields_, "device": device, "device_model": model, **versions(), "checker": checker_version()}


def key_name(key: dict[str, Any]) -> str:
    """The entry's file stem: the sha256 of the key's canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _private_dir(path: Path) -> bool:
    """Whether ``path`` is a real directory of this euid that nobody else may write."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _trusted_file(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


@dataclass
class StoreStats:
    """What the store did in this process (timing-free evidence for tests and benchmarks)."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    rejected: list[str] = field(default_factory=list)


class ReferenceStore:
    """One cache directory; see the module docstring for what is trusted."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.stats = StoreStats()
        self._writers: list[threading.Thread] = []
        self._usable: bool | None = None

    def usable(self) -> bool:
        """Create the directory (0700) if needed; False when it is not private to this euid."""
        if self._usable is None:
            with contextlib.suppress(OSError):
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._usable = _private_dir(self.root)
            if not self._usable:
                self.stats.rejected.append(f"{self.root}: not a directory private to uid {os.geteuid()}")
        return self._usable

    def path(self, key: dict[str, Any]) -> Path:
        return self.root / f"{key_name(key)}.pt"

    @contextlib.contextmanager
    def claim(self, key: dict[str, Any], cancel: threading.Event | None = None) -> Iterator[None]:
        """Hold the key's lock: concurrent checkers of one reference run it once, the others then load it.

        The wait for another checker computing it polls ``cancel`` (a ``Deadline`` bounds it)."""
        if not self.usable():
            yield
            return
        from pytest_kernelfalcon.executor.deadline import wait_for_flock

        fd = os.open(self.root / f"{key_name(key)}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            wait_for_flock(fd, fcntl.LOCK_EX, cancel, "the reference cache (another check is computing this reference)")
            yield
        finally:
            os.close(fd)

    def load(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """Return the stored payload of ``key``, or None (absent, or anything not to be trusted)."""
        if not self.usable():
            return None
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except OSError as exc:  # a link, or unreadable
            return self._reject(path, f"cannot open: {exc.strerror or exc}")
        with os.fdopen(fd, "rb") as fh:
            if not _trusted_file(os.fstat(fd)):
                return self._reject(path, "not a regular file private to this uid")
            entry = _read_entry(fh)
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("payload"), dict):
            return self._reject(path, "unreadable, or not the entry of this key")
        self.stats.hits += 1
        payload: dict[str, Any] = entry["payload"]
        return payload

    def _reject(self, path: Path, why: str) -> dict[str, Any] | None:
        self.stats.misses += 1
        self.stats.rejected.append(f"{path.name}: {why}")
        return None

    def save(self, key: dict[str, Any], payload: dict[str, Any], background: bool = True) -> None:
        """Write the entry atomically (in a thread unless ``background`` is False; ``flush`` waits)."""
        if not self.usable():
            return
        if not background:
            self._write(key, payload)
            return
        thread = threading.Thread(target=self._write, args=(key, payload), name="kf-refcache", daemon=True)
        thread.start()
        self._writers.append(thread)

    def _write(self, key: dict[str, Any], payload: dict[str, Any]) -> None:
        import torch

        path = self.path(key)
        tmp = self.root / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                torch.save({"key": key, "payload": payload}, fh)
            os.replace(tmp, path)
            self.stats.writes += 1
        except Exception as exc:  # a full disk must not fail the check
            self.stats.rejected.append(f"{path.name}: not written: {type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError):
                tmp.unlink()

    def flush(self) -> None:
        """Wait for the entries being written."""
        for thread in self._writers:
            thread.join()
        self._writers.clear()


def _read_entry(fh: Any) -> Any:
    import torch

    try:
        return torch.load(fh, map_location="cpu", weights_only=True)
    except Exception:  # corrupt, truncated, or not weights-only: recompute
        return None


def open_store(setting: str | None, candidates_own_uid: bool) -> ReferenceStore | None:
    """The store for a ``reference_cache`` setting: ``off``/None, ``auto`` (on only where candidates run
    under another uid), or a directory."""
    if setting in (None, "off"):
        return None
    if setting == "auto":
        return ReferenceStore(default_root()) if candidates_own_uid else None
    return ReferenceStore(Path(setting).expanduser())


def candidates_own_uid(executor: Any) -> bool:
    """Whether ``executor`` runs jobs under a uid other than this process's (isolation as root)."""
    report = getattr(executor, "isolation_report", None)  # WarmExecutor: what its probe could apply
    if report is not None:
        return getattr(report, "uid", None) is not None
    policy = getattr(executor, "isolation", None)  # ColdExecutor
    if policy is None:
        return False
    from pytest_kernelfalcon.executor.isolation import candidate_uid

    return candidate_uid(policy, 0) is not None


def payload_of(reference: Any) -> dict[str, Any]:
    """A ``Reference`` as a weights-only payload: its plans as their descriptions (rebuilt on load), the
    default profile's drawn cases beside a resident base (``extras``) as a payload of their own."""
    extras = None if reference.extras is None else payload_of(reference.extras)
    return {"cases": [case.to_wire() for case in reference.cases], "discarded": list(reference.discarded),
            "probes": list(reference.probes), "base_seed": reference.base_seed, "resident": reference.resident,
            "plans": [plan.describe() for plan in reference.plans], "extras": extras}


def reference_of(payload: dict[str, Any]) -> Any:
    """The ``Reference`` of a stored payload, with its stored plans rebuilt; None when malformed."""
    from pytest_kernelfalcon.checker.options import Reference
    from pytest_kernelfalcon.core.protocol import ProtocolError, ReferenceCase
    from pytest_kernelfalcon.core.shapes import described_plan

    try:
        plans = [described_plan(found) for found in payload["plans"]]
        cases = tuple(ReferenceCase.from_wire(case) for case in payload["cases"])
        if any(not 0 <= case.index < len(plans) for case in cases):
            return None
        extras = None if payload.get("extras") is None else reference_of(payload["extras"])
        if payload.get("extras") is not None and extras is None:
            return None
        return Reference(cases, tuple(payload["discarded"]), tuple(payload["probes"]), int(payload["base_seed"]),
                         0.0, resident=bool(payload["resident"]), cached=True, plans=tuple(plans), extras=extras)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, ProtocolError):
        return None
