"""On-disk format of recorded calls and hand-written answers, keyed by ``CallKey``.

Layout (``task`` such as ``level1/19_ReLU`` spans two directory levels)::

    <root>/<task>/<stage>/<subgraph or _>/w<worker>-r<round>.json   recorded call (recorder)
    <root>/<task>/<stage>/<subgraph or _>/w<worker>-r<round>.md     hand-written answer

A recorder writes under ``<run_dir>/llm``; replay accepts either a run
directory (it looks in ``llm/``) or a transcript directory. A ``.json`` file
holds one call (``RECORD_VERSION``)::

    {"version": 1, "key": {...}, "provider": str, "model": str, "source": str,
     "request": {"messages": [...], "system": str|null, "temperature": float|null,
                 "max_tokens": int|null, "templates": {name: sha256}},
     "response": null | {"text", "model", "stop_reason", "usage": {...}, "cost_usd",
                         "latency_s"},
     "error": null | {"type": str, "message": str, "attempts": int|null, "status": int|null}}

A ``.md`` file's whole text is the answer; its first line is an HTML comment
marking it hand-written (``<!-- hand-written ... -->``), which replay strips.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import CallKey, Completion, ProviderError, TokenUsage

RECORD_VERSION = 1
HAND_WRITTEN_MARK = "<!-- hand-written"


@dataclass(frozen=True)
class RecordedAnswer:
    """What replay found for one key: the completion (or error) and the recorded template hashes."""

    completion: Completion | None
    error: dict[str, Any] | None  # {"type", "message", "attempts"?, "status"?} of a recorded failure
    templates: dict[str, str] | None  # None: no hashes recorded (hand-written), no drift check
    path: Path


def record_path(root: Path, key: CallKey, suffix: str = ".json") -> Path:
    """Return the file that holds the call ``key`` under ``root``."""
    return root.joinpath(*key_parts(key)).with_suffix(suffix)


def key_parts(key: CallKey) -> list[str]:
    """Return the path components for ``key``; raises ``ProviderError`` on unsafe names."""
    task = [p for p in key.task.split("/") if p]
    parts = [*task, key.stage, key.subgraph or "_", f"w{key.worker}-r{key.round}"]
    for part in parts:
        if part in (".", "..") or "\\" in part or "/" in part or not part.strip():
            raise ProviderError(f"unsafe name in call key {key}: {part!r}")
    return parts


def key_to_json(key: CallKey) -> dict[str, Any]:
    """Return ``key`` as a JSON-ready dict."""
    return dataclasses.asdict(key)


def completion_to_json(c: Completion) -> dict[str, Any]:
    """Return ``c`` as the ``response`` object of a record."""
    data = dataclasses.asdict(c)
    data.pop("source")
    return data


def completion_from_json(data: dict[str, Any], source: str) -> Completion:
    """Return the ``Completion`` a record's ``response`` describes, labelled ``source``."""
    return Completion(
        text=data["text"], model=data.get("model", ""), stop_reason=data.get("stop_reason"),
        usage=TokenUsage(**data.get("usage", {})), cost_usd=data.get("cost_usd"),
        latency_s=float(data.get("latency_s", 0.0)), source=source,
    )


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temp file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_answer(root: Path, key: CallKey) -> RecordedAnswer | None:
    """Return the recorded or hand-written answer for ``key`` under ``root``, or ``None``."""
    path = record_path(root, key, ".json")
    if path.is_file():
        return _from_record(path)
    md = record_path(root, key, ".md")
    if md.is_file():
        return _from_markdown(md)
    return None


def _from_record(path: Path) -> RecordedAnswer:
    data = json.loads(path.read_text(encoding="utf-8"))
    response, error = data.get("response"), data.get("error") or {}
    templates = data.get("request", {}).get("templates")
    return RecordedAnswer(
        completion=completion_from_json(response, "replay") if response else None,
        error=dict(error) or None,
        templates=dict(templates) if templates is not None else None, path=path,
    )


def _from_markdown(path: Path) -> RecordedAnswer:
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if first.lstrip().startswith(HAND_WRITTEN_MARK):
        text = rest
    completion = Completion(text=text, model="hand-written", stop_reason="end_turn",
                            source="hand-written")
    return RecordedAnswer(completion, None, None, path)


def hand_written(text: str, note: str = "") -> str:
    """Return ``text`` as the content of a hand-written ``.md`` answer file."""
    return f"{HAND_WRITTEN_MARK}{' ' + note if note else ''} -->\n{text}"
