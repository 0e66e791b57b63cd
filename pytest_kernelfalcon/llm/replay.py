"""``ReplayProvider``: answers offline from a recorded run directory or a transcript directory.

Answers are found by ``CallKey`` (task, stage, subgraph, worker, round), never by
arrival order, so parallel workers finishing in any order replay identically.
Recorded calls carry the sha256 of each prompt template that built them; when the
request's hashes differ, strict mode raises ``PromptDrift`` naming the templates and
lenient mode answers anyway and appends a ``Drift`` to ``provider.drift``.
Hand-written ``.md`` answers carry no hashes and are never checked for drift; the
hand-written marker comment on their first line is stripped from the text.
A recorded failure replays as the same error class.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import base
from .base import (
    CallKey,
    Completion,
    PromptDrift,
    ProviderConfigError,
    ProviderError,
    ReplayMiss,
    check_cancel,
)
from .transcript import RecordedAnswer, read_answer


@dataclass(frozen=True)
class Drift:
    """A call answered although its prompt templates changed since the recording."""

    key: CallKey
    templates: tuple[str, ...]


class ReplayProvider:
    """Answers from ``root`` (a run directory with ``llm/``, or a transcript directory)."""

    name = "replay"

    def __init__(self, root: str | Path, *, strict: bool = True, model: str = "replay"):
        path = Path(root)
        if (path / "llm").is_dir():
            path = path / "llm"
        if not path.is_dir():
            raise ProviderConfigError(f"replay: no recorded run or transcript directory at {root}")
        self.root = path
        self.strict = strict
        self.model = model
        self.drift: list[Drift] = []
        self._lock = threading.Lock()

    @property
    def drift_count(self) -> int:
        """Return how many answered calls had drifted templates (lenient mode)."""
        with self._lock:
            return len(self.drift)

    def complete(self, messages: list[dict[str, Any]], *, system: str | None = None,
                 temperature: float | None = None, max_tokens: int | None = None,
                 key: CallKey | None = None, templates: Mapping[str, str] | None = None,
                 cancel: threading.Event | None = None) -> Completion:
        """Return the recorded answer for ``key``; ``ReplayMiss`` or ``PromptDrift`` otherwise."""
        check_cancel(cancel)
        start = time.monotonic()
        if key is None:
            raise ReplayMiss("replay: a call without a CallKey cannot be matched to a recording")
        answer = read_answer(self.root, key)
        if answer is None:
            raise ReplayMiss(f"replay: no recorded answer for {key.describe()} under {self.root}")
        self._check_drift(key, answer, templates or {})
        if answer.completion is None:
            raise _recorded_error(answer)
        return replace(answer.completion, latency_s=answer.completion.latency_s or time.monotonic() - start)

    def close(self) -> None:
        """Nothing to release."""

    def _check_drift(self, key: CallKey, answer: RecordedAnswer, sent: Mapping[str, str]) -> None:
        changed = drifted(answer.templates, sent)
        if not changed:
            return
        if self.strict:
            raise PromptDrift(
                f"replay: prompt template(s) changed since the recording of {key.describe()}: "
                f"{', '.join(changed)} (recorded in {answer.path}); re-record, or replay leniently",
                templates=changed)
        with self._lock:
            self.drift.append(Drift(key, changed))


def drifted(recorded: Mapping[str, str] | None, sent: Mapping[str, str]) -> tuple[str, ...]:
    """Return the names of templates whose hash differs, appeared or disappeared (sorted)."""
    if recorded is None or not sent:
        return ()
    names = set(recorded) | set(sent)
    return tuple(sorted(n for n in names if recorded.get(n) != sent.get(n)))


def _recorded_error(answer: RecordedAnswer) -> ProviderError:
    error = answer.error or {}
    cls = getattr(base, str(error.get("type")), None)
    message = f"replayed failure from {answer.path}: {error.get('message', '')}"
    if cls is base.ProviderUnavailable:
        return base.ProviderUnavailable(message, attempts=int(error.get("attempts") or 0),
                                        last_status=error.get("status"))
    if isinstance(cls, type) and issubclass(cls, base.TransientError):
        return cls(message, status=error.get("status"))
    if isinstance(cls, type) and issubclass(cls, ProviderError) and cls is not PromptDrift:
        return cls(message)
    return ProviderError(f"{error.get('type')}: {message}")
