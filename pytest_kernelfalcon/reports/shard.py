"""Deterministic sharding of tasks over machines: ``--falcon-shard I/N``.

Tasks are ordered by a stable hash of their id (SHA-256, the same in every
process and on every machine, independent of the order tasks were collected
in) and dealt round-robin to the N shards. The shards are disjoint, together
they hold every task, and their sizes differ by at most one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def parse_shard(text: str) -> tuple[int, int]:
    """Return ``(index, count)`` from ``"I/N"`` (1-based, ``1 <= I <= N``); raise ``ValueError``."""
    parts = str(text).strip().split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"shard must look like I/N with whole numbers, e.g. 2/4; got {text!r}")
    index, count = int(parts[0]), int(parts[1])
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"shard {text!r}: need 1 <= I <= N and N >= 1")
    return index, count


def stable_key(task_id: str) -> str:
    """Return the hex SHA-256 of ``task_id``: the order shards are dealt in."""
    return hashlib.sha256(task_id.encode("utf-8")).hexdigest()


def select_shard(task_ids: Iterable[str], index: int, count: int) -> list[str]:
    """Return the ids of shard ``index`` (1-based) of ``count``, in the order they were given."""
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: need 1 <= I <= N and N >= 1")
    ids = list(task_ids)
    dealt = sorted(set(ids), key=lambda t: (stable_key(t), t))
    chosen = {t for pos, t in enumerate(dealt) if pos % count == index - 1}
    return [t for t in ids if t in chosen]
