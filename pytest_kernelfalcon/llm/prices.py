"""Prices in USD per million tokens, and the cost of one call (``None`` for an unknown model).

The built-in rows are Anthropic's published list prices (platform.claude.com
"Pricing" page: base input, output, cache hits, 5-minute cache writes). Users
extend or override them with ``prices={"model": {...}}`` or a JSON file of the
same shape. A dated snapshot id (``claude-sonnet-4-5-20250929``) uses its
base id's row; nothing else is ever guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .base import ProviderConfigError, TokenUsage

_DATED = re.compile(r"^(?P<base>.+)-\d{8}$")


@dataclass(frozen=True)
class Price:
    """USD per million tokens of each kind."""

    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0

    def cost(self, usage: TokenUsage) -> float:
        """Return the USD cost of ``usage`` at this price."""
        total = (usage.input_tokens * self.input + usage.output_tokens * self.output
                 + usage.cache_read_tokens * self.cache_read
                 + usage.cache_write_tokens * self.cache_write)
        return total / 1_000_000


def _row(i: float, o: float, read: float, write: float) -> Price:
    return Price(input=i, output=o, cache_read=read, cache_write=write)


BUILTIN_PRICES: Mapping[str, Price] = MappingProxyType({
    "claude-opus-4-6": _row(5.0, 25.0, 0.50, 6.25),
    "claude-opus-4-5": _row(5.0, 25.0, 0.50, 6.25),
    "claude-opus-4-1": _row(15.0, 75.0, 1.50, 18.75),
    "claude-sonnet-4-6": _row(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4-5": _row(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4-0": _row(3.0, 15.0, 0.30, 3.75),
    "claude-haiku-4-5": _row(1.0, 5.0, 0.10, 1.25),
})


@dataclass(frozen=True)
class PriceTable:
    """Model id -> ``Price``; looks up exact ids, then the base id of a dated snapshot."""

    rows: Mapping[str, Price]

    def price(self, model: str) -> Price | None:
        """Return the price row for ``model``, or ``None`` when it is not in the table."""
        if model in self.rows:
            return self.rows[model]
        dated = _DATED.match(model)
        return self.rows.get(dated.group("base")) if dated else None

    def cost(self, model: str, usage: TokenUsage) -> float | None:
        """Return the USD cost of ``usage`` on ``model``, or ``None`` when its price is unknown."""
        row = self.price(model)
        return None if row is None else row.cost(usage)


def load_prices(extra: Mapping[str, Any] | str | Path | None = None) -> PriceTable:
    """Return the built-in table extended by a mapping or a JSON file of ``{model: {input, output, ...}}``."""
    if extra is None:
        return PriceTable(BUILTIN_PRICES)
    if isinstance(extra, (str, Path)):
        extra = _read_json(Path(extra))
    rows = dict(BUILTIN_PRICES)
    rows.update({str(model): _parse_row(str(model), row) for model, row in extra.items()})
    return PriceTable(MappingProxyType(rows))


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ProviderConfigError(f"cannot read price file {path}: {err}") from err
    if not isinstance(data, dict):
        raise ProviderConfigError(f"price file {path} must hold a JSON object of model -> prices")
    return data


def _parse_row(model: str, row: Any) -> Price:
    if isinstance(row, Price):
        return row
    try:
        return Price(**{k: float(v) for k, v in dict(row).items()})
    except (TypeError, ValueError) as err:
        raise ProviderConfigError(
            f"bad price for {model!r}: {row!r} (want input, output[, cache_read, cache_write] "
            "in USD per million tokens)") from err
