"""``Recorder``: wraps any provider and writes every call, answered or failed, into the run directory.

One JSON file per call at ``<run_dir>/llm/<task>/<stage>/<subgraph or _>/w<worker>-r<round>.json``
(format in ``transcript.py``), written atomically. Nothing that looks like a credential
reaches the disk: API-key-like strings (``sk-...``, ``Bearer ...``), the values of the key
environment variables, any ``secrets=`` given, and fields named like keys are replaced
by ``[redacted]``. Calls without a ``CallKey`` go to ``llm/_unkeyed/<n>.json``.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .base import CallKey, Completion, Provider, ProviderError, make_request
from .transcript import (
    RECORD_VERSION,
    completion_to_json,
    key_to_json,
    record_path,
    write_json_atomic,
)

REDACTED = "[redacted]"
KEY_ENV_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY")
_SECRET_PATTERNS = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]+|sk-[A-Za-z0-9_\-]{12,}|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}")
_SECRET_FIELDS = re.compile(r"(?i)api[-_]?key|authorization|auth[-_]?token|secret|password")
_MIN_SECRET_LEN = 8  # shorter "keys" (``EMPTY``) would mangle ordinary text


class Recorder:
    """A provider that forwards to ``provider`` and records each call under ``run_dir/llm``."""

    def __init__(self, provider: Provider, run_dir: str | Path, *, secrets: Iterable[str] = ()):
        self.inner = provider
        self.name = provider.name
        self.model = provider.model
        self.root = Path(run_dir) / "llm"
        self._secrets = _known_secrets(secrets)
        self._unkeyed = itertools.count()
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, Any]], *, system: str | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 key: CallKey | None = None, templates: Mapping[str, str] | None = None,
                 cancel: threading.Event | None = None) -> Completion:
        """Return the wrapped provider's answer, after writing the call to disk (errors too)."""
        fields: dict[str, Any] = {"system": system, "temperature": temperature, "max_tokens": max_tokens,
                  "key": key, "templates": templates}
        try:
            completion = self.inner.complete(messages, cancel=cancel, **fields)
        except ProviderError as err:
            self._write(messages, fields, None, err)
            raise
        self._write(messages, fields, completion, None)
        return completion

    def close(self) -> None:
        """Close the wrapped provider."""
        self.inner.close()

    def _write(self, messages: list[dict[str, Any]], fields: dict[str, Any],
               completion: Completion | None, err: ProviderError | None) -> None:
        request = make_request(messages, **fields)
        record = {
            "version": RECORD_VERSION,
            "key": key_to_json(request.key) if request.key else None,
            "provider": self.name, "model": self.model,
            "source": completion.source if completion else None,
            "request": {"messages": list(request.messages), "system": request.system,
                        "temperature": request.temperature, "max_tokens": request.max_tokens,
                        "templates": dict(request.templates)},
            "response": completion_to_json(completion) if completion else None,
            "error": error_to_json(err) if err else None,
        }
        write_json_atomic(self._path(request.key), scrub(record, self._secrets))

    def _path(self, key: CallKey | None) -> Path:
        if key is not None:
            return record_path(self.root, key)
        with self._lock:
            return self.root / "_unkeyed" / f"{next(self._unkeyed)}.json"


def error_to_json(err: ProviderError) -> dict[str, Any]:
    """Return the ``error`` object of a record: class name, message, attempts and HTTP status."""
    status = getattr(err, "last_status", getattr(err, "status", None))
    return {"type": type(err).__name__, "message": str(err),
            "attempts": getattr(err, "attempts", None), "status": status}


def _known_secrets(extra: Iterable[str]) -> tuple[str, ...]:
    values = [os.environ.get(name, "") for name in KEY_ENV_VARS] + list(extra)
    return tuple(sorted({v for v in values if len(v) >= _MIN_SECRET_LEN}, key=len, reverse=True))


def scrub(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """Return ``value`` (JSON-like) with credentials and key-named fields replaced by ``[redacted]``."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return _SECRET_PATTERNS.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {k: REDACTED if _SECRET_FIELDS.search(str(k)) and v else scrub(v, secrets)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value
