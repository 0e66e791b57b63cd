"""Shape plans: which size constants a check rewrites and how it spreads floating input values.

Three kinds of plan, all pure data over a task's source (nothing is run here):

- ``official``: the task's own sizes and values.
- ``scaled``: every size-like integer constant (at least ``SIZE_THRESHOLD`` and
  not a kernel/stride/padding/dilation parameter) divided by the same power of
  two, 2, 4, 8, ... until all sit at their floor (``BATCH_FLOOR`` for names with
  "batch", ``FLOOR`` otherwise). One common factor keeps relations such as
  ``embed_dim % num_heads == 0`` or ``seq_len % block_len == 0`` while the
  values stay divisible. Small constants (``kernel_size=3``, ``dim=1``,
  ``num_layers=6``) never change. After these come up to three batch-only
  plans (only names with "batch" shrunk: /2, /8, floor), a fallback for models with hard-coded image
  sizes (MobileNet's final pooling, Swin's 224x224 check). The checker's child
  measures each plan and takes the first one that fits its budget and that the
  reference runs.
- ``fuzz``: Hypothesis draws sizes around a base plan (odd sizes, sizes just
  over a block size, small primes, off-by-one) and a value distribution from
  ``VALUE_DISTS``; deterministic for a seed. Draws the reference rejects are
  discarded by the checker, so a draw may be invalid for a given task.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_kernelfalcon.core.tasks import size_constants

SIZE_THRESHOLD = 8
FLOOR = 4
BATCH_FLOOR = 2
MAX_SCALED_PLANS = 14
_FIXED_NAME = re.compile(r"kernel|stride|pad|dilation", re.IGNORECASE)
_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 97, 127, 251)
_BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class ValueDist:
    """How floating inputs are spread (integers are untouched), by ``mode``:

    ``affine``: ``x * scale + shift``; ``negative``: ``-(|x| * scale + shift)`` (every element
    below zero); ``mixed``: ``x * 10 ** u`` with ``u`` uniform in ``[-scale, scale]`` per element
    (mixed magnitudes in one tensor; drawn from the trial's seeded generator).
    """

    name: str = "task"
    scale: float = 1.0
    shift: float = 0.0
    mode: str = "affine"

    def apply(self, value: Any) -> Any:
        """Return ``value`` spread when it is a floating tensor, otherwise unchanged."""
        is_float = getattr(value, "is_floating_point", None)
        if is_float is None or not is_float() or self.is_identity:
            return value
        return apply_transform(value, self.transform)

    @property
    def is_identity(self) -> bool:
        """Whether the task's own values are kept."""
        return self.mode == "affine" and self.scale == 1.0 and self.shift == 0.0

    @property
    def transform(self) -> list[Any]:
        """The child's form: ``[scale, shift]`` (affine) or ``[scale, shift, mode]``."""
        if self.mode == "affine":
            return [self.scale, self.shift]
        return [self.scale, self.shift, self.mode]

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        found: dict[str, Any] = {"name": self.name, "scale": self.scale, "shift": self.shift}
        if self.mode != "affine":
            found["mode"] = self.mode
        return found


def apply_transform(x: Any, transform: Any) -> Any:
    """Spread one floating tensor by a child transform ``[scale, shift]`` or ``[scale, shift, mode]``."""
    import torch

    scale, shift = float(transform[0]), float(transform[1])
    mode = str(transform[2]) if len(transform) > 2 else "affine"
    if mode == "negative":
        return -(x.abs() * scale + shift)
    if mode == "mixed":
        exponent = torch.empty(x.shape, dtype=torch.float32, device=x.device).uniform_(-scale, scale)
        return x * torch.pow(10.0, exponent).to(x.dtype)
    if mode != "affine":
        raise ValueError(f"unknown value transform mode {mode!r}")
    return x if (scale, shift) == (1.0, 0.0) else x * scale + shift


VALUE_DISTS: tuple[ValueDist, ...] = (
    ValueDist("task", 1.0, 0.0),
    ValueDist("signed", 2.0, -1.0),
    ValueDist("wide", 8.0, -4.0),
    ValueDist("large", 1000.0, 0.0),
    ValueDist("signed_large", 2000.0, -1000.0),
    ValueDist("tiny", 1e-3, 0.0),
)

# The default profile's value draws: large magnitudes, all negative, near zero, mixed scales.
PROFILE_VALUE_DISTS: tuple[ValueDist, ...] = (
    ValueDist("large", 1000.0, 0.0),
    ValueDist("negative", 4.0, 0.01, "negative"),
    ValueDist("near_zero", 1e-4, 0.0),
    ValueDist("mixed", 3.0, 0.0, "mixed"),
)


def value_dist(name: str) -> ValueDist:
    """Return the named value distribution from ``VALUE_DISTS``; unknown names raise ``ValueError``."""
    for dist in (*VALUE_DISTS, *PROFILE_VALUE_DISTS):
        if dist.name == name:
            return dist
    raise ValueError(f"unknown value distribution {name!r}; known: {[d.name for d in VALUE_DISTS]}")


class Overrides(Mapping[str, int]):
    """An immutable, hashable name -> int mapping (kept as sorted pairs)."""

    __slots__ = ("_pairs",)

    def __init__(self, items: Mapping[str, int] | None = None) -> None:
        self._pairs: tuple[tuple[str, int], ...] = tuple(sorted(dict(items or {}).items()))

    def __getitem__(self, key: str) -> int:
        for name, value in self._pairs:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __hash__(self) -> int:
        return hash(self._pairs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._pairs) == dict(other.items())

    def __repr__(self) -> str:
        return f"Overrides({dict(self._pairs)!r})"

    @property
    def pairs(self) -> tuple[tuple[str, int], ...]:
        """The sorted (name, value) pairs."""
        return self._pairs


@dataclass(frozen=True)
class ShapePlan:
    """Which size constants to rewrite (``overrides``) and how to spread input values."""

    kind: str
    overrides: Mapping[str, int] = field(default_factory=Overrides)
    values: ValueDist = field(default_factory=ValueDist)

    def __post_init__(self) -> None:
        if not isinstance(self.overrides, Overrides):
            object.__setattr__(self, "overrides", Overrides(self.overrides))

    def as_dict(self) -> dict[str, int]:
        """Return the overrides as a plain dict."""
        return dict(self.overrides)

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: kind, overrides and value distribution."""
        return {"kind": self.kind, "overrides": self.as_dict(), "values": self.values.describe()}


def described_plan(found: Mapping[str, Any]) -> ShapePlan:
    """The ``ShapePlan`` of a ``ShapePlan.describe()`` (a stored reference's plans are rebuilt from these)."""
    values = dict(found.get("values") or {})
    dist = ValueDist(str(values.get("name", "task")), float(values.get("scale", 1.0)),
                     float(values.get("shift", 0.0)), str(values.get("mode", "affine")))
    return ShapePlan(str(found["kind"]), {str(k): int(v) for k, v in dict(found.get("overrides") or {}).items()},
                     dist)


def official_plan() -> ShapePlan:
    """Return the plan that keeps the task's own sizes and values."""
    return ShapePlan("official")


def is_size_like(name: str, value: int) -> bool:
    """Return whether a constant is a size the plans may change (large enough, not a window parameter)."""
    return value >= SIZE_THRESHOLD and not _FIXED_NAME.search(name)


def _is_batch(name: str) -> bool:
    """Return whether a constant names a batch size (shrinking it alone never changes the model)."""
    return "batch" in name.lower()


def _floor(name: str) -> int:
    """Return the smallest value a scaled constant may take."""
    return BATCH_FLOOR if _is_batch(name) else FLOOR


def scaled_plans(source: str) -> list[ShapePlan]:
    """Return shrunk plans, least aggressive first, then batch-only fallbacks (one unchanged plan if none)."""
    sizes = {k: v for k, v in size_constants(source).items() if is_size_like(k, v)}
    if not sizes:
        return [ShapePlan("scaled")]
    batches = {k: v for k, v in sizes.items() if _is_batch(k)}
    fallbacks = [ShapePlan("scaled", {k: max(BATCH_FLOOR, v >> s) for k, v in batches.items()}) for s in (1, 3, 16)]
    plans = [*_halvings(sizes), *(fallbacks if batches else [])]
    return list(dict.fromkeys(plans))


def _halvings(sizes: Mapping[str, int]) -> list[ShapePlan]:
    """Return plans dividing every size by 2, 4, 8, ... until all sit at their floor (at most the plan limit)."""
    plans: list[ShapePlan] = []
    for step in range(1, MAX_SCALED_PLANS + 1):
        shrunk = {k: max(_floor(k), v >> step) for k, v in sizes.items()}
        plans.append(ShapePlan("scaled", shrunk))
        if all(value == _floor(k) for k, value in shrunk.items()):
            break
    return plans


def fuzz_plans(source: str, n: int, seed: int, base: ShapePlan | None = None) -> list[ShapePlan]:
    """Return ``n`` Hypothesis-drawn plans around ``base`` (official sizes when ``None``), fixed by ``seed``."""
    if n <= 0:
        return []
    official = size_constants(source)
    start = {**official, **(base.overrides if base is not None else {})}
    names = [k for k, v in official.items() if is_size_like(k, v)]
    fixed = dict(base.overrides) if base is not None else {}
    found = _draw_unique(_plan_strategy(start, names, fixed), n, seed)
    return [found[i % len(found)] for i in range(n)]


def _draw_unique(strategy: Any, n: int, seed: int) -> list[Any]:
    """Return up to ``n`` distinct values (plans) drawn from ``strategy`` by a seeded Hypothesis run."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings

    found: list[Any] = []

    @hypothesis.seed(seed)
    @settings(
        max_examples=3 * n,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(strategy)
    def collect(plan: Any) -> None:
        if len(found) < n and plan not in found:
            found.append(plan)

    collect()
    return found


def _plan_strategy(start: Mapping[str, int], names: list[str], fixed: Mapping[str, int]) -> Any:
    """Return a Hypothesis strategy of fuzz plans: one name changed, or all redrawn, plus a value spread."""
    from hypothesis import strategies as st

    @st.composite
    def plans(draw: Any) -> ShapePlan:
        drawn: dict[str, int] = {}
        if names and draw(st.booleans()):
            drawn = {name: draw(_around(start[name], keep=True)) for name in names}
        elif names:
            name = draw(st.sampled_from(names))
            drawn = {name: draw(_around(start[name], keep=False))}
        dist = draw(st.sampled_from(VALUE_DISTS))
        return ShapePlan("fuzz", {**fixed, **drawn}, dist)

    return plans()


def _around(base: int, keep: bool) -> Any:
    """Return a strategy of sizes near ``base``: odd, off by one or two, small primes, just over a block."""
    from hypothesis import strategies as st

    low, high = max(2, base // 2), max(base + base // 2, base + 4)
    near = [v for v in range(max(2, base - 2), base + 3) if v != base]
    choices = [
        st.integers(low, high).map(lambda v: v | 1),
        st.sampled_from(near),
        st.sampled_from([p for p in _SMALL_PRIMES if p <= high]),
    ]
    over_block = [b + 1 for b in _BLOCK_SIZES if low <= b + 1 <= high]
    if over_block:
        choices.append(st.sampled_from(over_block))
    if keep:
        choices.append(st.just(base))
    return st.one_of(*choices)


def plan_shapes(source: str, kind: str, n: int = 1, seed: int = 0, base: ShapePlan | None = None) -> list[ShapePlan]:
    """Return the plans of ``kind`` (``official``, ``scaled`` or ``fuzz``) for a task source."""
    if kind == "official":
        return [official_plan()]
    if kind == "scaled":
        return scaled_plans(source)
    if kind == "fuzz":
        return fuzz_plans(source, n, seed, base)
    raise ValueError(f"unknown shape plan kind {kind!r}; expected official, scaled or fuzz")


# -- the default profile's drawn size plans ------------------------------------------------

PROFILE_ALTERNATIVES = 3  # per drawn plan: the child keeps the first the reference runs


def profile_size_plans(source: str, base: ShapePlan, seed: int) -> list[ShapePlan]:
    """Hypothesis-drawn alternatives (seeded) of the default profile's size plan around ``base``.

    Every size-like constant redrawn to an odd size (odd sizes, primes, a block size + 1: never a
    multiple of 2..128), then plans changing one constant only (they keep relations such as
    ``embed_dim % num_heads`` that a full redraw may break). Empty when the task has no size constant.
    """
    start, names = _profile_start(source, base)
    if not names:
        return []
    everything = _draw_unique(_odd_plans(start, names, dict(base.overrides), every=True), 1, seed)
    single = _draw_unique(_odd_plans(start, names, dict(base.overrides), every=False),
                          PROFILE_ALTERNATIVES - 1, seed + 1)
    return list(dict.fromkeys([*everything, *single]))[:PROFILE_ALTERNATIVES]


def grow_groups(source: str, base: ShapePlan, seed: int) -> list[tuple[str, list[ShapePlan]]]:
    """Per size constant, alternatives that take it alone past the task's own value (odd), the others small.

    Every size-like constant gets a group, so that a kernel hard-coding any one of them fails;
    those the base plan shrank least come first (the cheapest to grow). Each is tried with the
    others at the smallest scaled plan (cheap in the CPU interpreter too), then at ``base``; the
    child keeps the first the reference runs within its memory budget.
    """
    start, names = _profile_start(source, base)
    official = size_constants(source)
    order = sorted(names, key=lambda name: (official[name] / max(start[name], 1), name))
    smallest = _halvings({k: official[k] for k in names})[-1].overrides if names else {}
    groups = []
    for k, name in enumerate(order):
        grown = int(_draw_unique(_grown(official[name]), 1, seed + k)[0])
        found = [ShapePlan("profile", {**base.overrides, **others, name: grown}) for others in (smallest, base.overrides)]
        groups.append((name, list(dict.fromkeys(found))))
    return groups


def _profile_start(source: str, base: ShapePlan) -> tuple[dict[str, int], list[str]]:
    official = size_constants(source)
    return {**official, **base.overrides}, [k for k, v in official.items() if is_size_like(k, v)]


def _odd_plans(start: Mapping[str, int], names: list[str], fixed: Mapping[str, int], every: bool) -> Any:
    from hypothesis import strategies as st

    @st.composite
    def plans(draw: Any) -> ShapePlan:
        chosen = names if every else [draw(st.sampled_from(names))]
        return ShapePlan("profile", {**fixed, **{name: draw(_odd_near(start[name])) for name in chosen}})

    return plans()


def _odd_near(base: int) -> Any:
    """Odd sizes near ``base`` (never ``base`` itself): odd in [base/2, 1.5 base], odd primes, block + 1."""
    from hypothesis import strategies as st

    low, high = max(3, base // 2), max(base + base // 2, base + 4)
    choices = [st.integers(low, high).map(lambda v: v | 1).filter(lambda v: v != base)]
    primes = [p for p in _SMALL_PRIMES if low <= p <= high and p not in (2, base)]
    if primes:
        choices.append(st.sampled_from(primes))
    over_block = [b + 1 for b in _BLOCK_SIZES if low <= b + 1 <= high and b + 1 != base]
    if over_block:
        choices.append(st.sampled_from(over_block))
    return st.one_of(*choices)


def _grown(official: int) -> Any:
    """Odd sizes just past the task's own: official + 1 .. official + 33."""
    from hypothesis import strategies as st

    return st.integers(official + 1, official + 33).map(lambda v: v | 1)
