"""The run directory: ``run.json``, ``events.jsonl`` and one directory per task, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path(".falcon") / "runs"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    """Return the JSON held in ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def new_run_id() -> str:
    """Return a fresh, sortable run id (UTC time plus a short random suffix)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


@dataclass
class RunDir:
    """One run's directory; ``event`` may be called from several threads (and processes)."""

    path: Path
    run_id: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def create(cls, root: Path | None = None, run_id: str | None = None) -> RunDir:
        """Make (or reuse) ``root/run_id`` and return it; ``root`` defaults to ``.falcon/runs``."""
        run_id = run_id or new_run_id()
        path = Path(root or DEFAULT_ROOT) / run_id
        (path / "tasks").mkdir(parents=True, exist_ok=True)
        return cls(path=path.resolve(), run_id=run_id)

    @classmethod
    def open(cls, run_id: str, root: Path | None = None) -> RunDir:
        """Return the existing run ``run_id`` (a path to a run directory is accepted too)."""
        path = Path(run_id) if Path(run_id).is_dir() else Path(root or DEFAULT_ROOT) / run_id
        if not path.is_dir():
            raise FileNotFoundError(f"no run directory {path}")
        return cls(path=path.resolve(), run_id=path.name)

    @property
    def events_path(self) -> Path:
        """Return the path of ``events.jsonl``."""
        return self.path / "events.jsonl"

    def task_dir(self, task_id: str) -> Path:
        """Return ``tasks/<level>/<name>/`` for ``task_id`` (``level/name``), created."""
        parts = [p for p in task_id.split("/") if p]
        if any(p in (".", "..") for p in parts) or not parts:
            raise ValueError(f"unsafe task id {task_id!r}")
        path = self.path.joinpath("tasks", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_run_json(self, data: dict[str, Any]) -> None:
        """Write ``run.json`` (merged over what an earlier session of this run wrote)."""
        previous = read_json(self.path / "run.json") if (self.path / "run.json").is_file() else {}
        resumed = previous.get("resumed", []) + ([time.time()] if previous else [])
        atomic_write_json(self.path / "run.json", {**previous, **data, "resumed": resumed})

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append ``event`` (time-stamped) as one line of ``events.jsonl``, flushed and fsynced."""
        record = {"t": round(time.time(), 3), **event}
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return record

    def events(self) -> list[dict[str, Any]]:
        """Return every event recorded so far (a torn last line from a kill is skipped)."""
        if not self.events_path.is_file():
            return []
        out = []
        for line in self.events_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out
