"""The default check profile: the task's own plan plus Hypothesis-drawn sizes, value draws and address reuse.

What every acceptance runs (``--shapes default``, what ``auto`` means). One reference, cached
like any other, made of up to three reference jobs:

1. the task's own plan (official on the GPU; on the CPU the scaled plan that fits the budget,
   picked as for ``scaled``), ``seeds`` trials at the task's values;
2. on the GPU only, the scaled plan that fits ``PROFILE_GPU_BUDGET`` (the sizes the draws start from);
3. the draws: a size plan (alternatives, the first the reference runs is kept: every size
   constant odd, else one constant odd), a plan taking one constant past the task's own
   (alternatives; the child's memory budget discards those that do not fit), and one trial per
   value distribution of ``shapes.PROFILE_VALUE_DISTS`` at the drawn-from sizes (on the CPU these
   join the task's plan). A value draw the reference cannot run or that makes it non-finite is
   dropped and reported, never judged.

The task's plan's last trial writes its inputs into the previous trial's input tensors (same
``data_ptr``, same objects): a cache keyed by address returns a stale result. Draws are fixed
by the base seed (``--seed``; 42 unless given), printed in every verdict.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from pytest_kernelfalcon.checker.options import Reference
from pytest_kernelfalcon.core.protocol import PlanTrial, task_valued
from pytest_kernelfalcon.core.verdict import Category, Verdict

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.shapes import ShapePlan

PROFILE = "default"
PROFILE_GPU_BUDGET = 1 << 20  # the GPU's drawn plans start from sizes this small (cost bound: issue 16)
EXTRA_BUDGET_FACTOR = 4  # a drawn plan's inputs may reach this many times the budget
SIZE_GROUP, GROW_GROUP = "sizes", "grow"
MAX_GROWN = 8  # size constants grown one at a time per task (the least shrunk first); the verdict names the rest


class Checker(Protocol):
    """What the profile needs of ``checker.Checker`` (kept apart: the checker imports this module)."""

    device: str
    resident: bool

    @property
    def base_seed(self) -> int: ...

    def budget(self) -> int: ...

    def trial_seeds(self) -> list[int]: ...

    def reference_job(self, source: str, plans: list[Any], pick: str, budget: int | None,
                      cancel: threading.Event | None, last_exempt: bool = True, mode: str = "reference",
                      extra: dict[str, Any] | list[dict[str, Any]] | None = None) -> Reference | Verdict: ...


TASK_VALUES = (1.0, 0.0)


def value_trials(base_seed: int) -> tuple[PlanTrial, ...]:
    """One trial per value distribution of the profile (seeded from the base seed)."""
    from pytest_kernelfalcon.core.shapes import PROFILE_VALUE_DISTS

    return tuple(PlanTrial(base_seed + 100 + k, tuple(dist.transform), dist.name)
                 for k, dist in enumerate(PROFILE_VALUE_DISTS))


def around_trials(checker: Checker) -> tuple[PlanTrial, ...]:
    """The GPU's drawn-from plan: one trial at the task's values (the plan must run), then the value draws."""
    return (PlanTrial(checker.base_seed + 99, TASK_VALUES), *value_trials(checker.base_seed))


def task_trials(checker: Checker, with_values: bool) -> tuple[PlanTrial, ...]:
    """The task plan's trials: ``seeds`` at the task's values, then (``with_values``) the value draws."""
    plain = tuple(PlanTrial(s, TASK_VALUES) for s in checker.trial_seeds())
    return plain + (value_trials(checker.base_seed) if with_values else ())


def default_reference(checker: Checker, source: str, cancel: threading.Event | None) -> Reference | Verdict:
    """Run the default profile's reference jobs and return one reference (or the failing verdict)."""
    from pytest_kernelfalcon.core import shapes

    on_cpu = checker.device == "cpu"
    own = {"trials": task_trials(checker, with_values=on_cpu), "role": "task"}
    if on_cpu:
        base = checker.reference_job(source, shapes.scaled_plans(source), "first_fit", checker.budget(), cancel,
                                     extra=own)
    else:
        mode = "resident_reference" if checker.resident else "reference"
        base = checker.reference_job(source, [shapes.official_plan()], "first_fit", None, cancel, extra=own,
                                     mode=mode)
    if not isinstance(base, Reference):
        return base
    start = base.plan_of(base.cases[0])
    if not on_cpu:
        around = checker.reference_job(source, shapes.scaled_plans(source), "first_fit", PROFILE_GPU_BUDGET,
                                       cancel, extra={"trials": around_trials(checker), "role": "values",
                                                      "strong": False})
        if isinstance(around, Verdict):
            return around if around.category == Category.CANCELLED else with_extras(dropped(base, "values", around), None)
        start, base = around.plan_of(around.cases[0]), with_extras(base, around)
    draws = drawn_reference(checker, source, start, cancel)
    if isinstance(draws, Verdict):
        return draws if draws.category == Category.CANCELLED else dropped(base, "sizes/grow", draws)
    return with_extras(base, draws)


def dropped(base: Reference, roles: str, failed: Verdict) -> Reference:
    """``base`` with a failed drawn job's plans recorded as discarded, with the reason (the verdict names it)."""
    why = {"plan": {"role": roles}, "error": f"the {roles} reference job failed: {failed.detail[:300]}"}
    return replace(base, discarded=(*base.discarded, why))


def drawn_reference(checker: Checker, source: str, start: ShapePlan,
                    cancel: threading.Event | None) -> Reference | Verdict:
    """The drawn size plans' reference job: alternatives per group, one task-valued trial each.

    One ``sizes`` group, then one ``grow:NAME`` group per size constant (up to ``MAX_GROWN``; the
    others are listed as discarded, so the verdict says which constants were not grown)."""
    from pytest_kernelfalcon.core import shapes

    seed = checker.base_seed
    grow = shapes.grow_groups(source, start, seed + 7)
    groups = [(SIZE_GROUP, SIZE_GROUP, shapes.profile_size_plans(source, start, seed)),
              *((f"{GROW_GROUP}:{name}", GROW_GROUP, found) for name, found in grow[:MAX_GROWN])]
    plans, extras = [], []
    for k, (group, role, found) in enumerate(groups):
        trial = (PlanTrial(seed + 200 + k, TASK_VALUES),)
        for plan in found:
            plans.append(plan)
            extras.append({"trials": trial, "group": group, "role": role, "strong": False,
                           **({"grown": group.split(":", 1)[1]} if role == GROW_GROUP else {})})
    if not plans:
        return Verdict.failed(Category.REFERENCE_ERROR, "the task has no size constant to draw")
    budget = EXTRA_BUDGET_FACTOR * (checker.budget() if checker.device == "cpu" else PROFILE_GPU_BUDGET)
    found_ref = checker.reference_job(source, plans, "each", budget, cancel, last_exempt=False, extra=extras)
    skipped = tuple({"plan": {"role": GROW_GROUP, "constant": name}, "error": f"not grown: more than {MAX_GROWN} "
                     f"size constants (the least shrunk are grown)"} for name, _ in grow[MAX_GROWN:])
    return replace(found_ref, discarded=found_ref.discarded + skipped) if isinstance(found_ref, Reference) else found_ref


def with_extras(base: Reference, more: Reference | None) -> Reference:
    """``base`` with ``more``'s cases appended (its probes ignored: low signal is judged on the task's plan);
    ``more``'s plans follow ``base``'s and its cases' ``index`` is shifted to point at them.

    A resident base (official inputs stay on the device) keeps the extras apart: they run in a
    second candidate job through files.
    """
    base = mark_address_reuse(base)
    if more is None or more.resident:  # a drawn plan as large as the resident threshold: not a draw to keep
        return base
    discarded = base.discarded + more.discarded
    if base.resident:
        extras = more if base.extras is None else with_extras(base.extras, more)
        return replace(base, extras=replace(extras, probes=()), discarded=discarded)
    shift = len(base.plans)
    cases = base.cases + tuple(replace(case, index=case.index + shift) for case in more.cases)
    return replace(base, cases=cases, plans=base.plans + more.plans, discarded=discarded,
                   wall_s=base.wall_s + more.wall_s)


def mark_address_reuse(reference: Reference) -> Reference:
    """Mark the task plan's last task-valued trial (or its second trial) to reuse the previous one's inputs."""
    if not reference.cases or any(t.get("reuse_storage") for c in reference.cases for t in c.trials):
        return reference
    case = reference.cases[0]
    trials = [dict(t) for t in case.trials]
    plain = [k for k, t in enumerate(trials) if task_valued(t)]
    at = plain[-1] if len(plain) >= 2 else 1
    if at >= len(trials) or at == 0:
        return reference
    trials[at]["reuse_storage"] = True
    return replace(reference, cases=(replace(case, trials=tuple(trials)), *reference.cases[1:]))


def joined_verdict(reference: Reference, first: Verdict, second: Verdict) -> Verdict:
    """One verdict of a resident base's job (``first``, passed) and its extras' job (``second``)."""
    timings = dict(second.timings)
    for key, value in first.timings.items():
        timings[key] = timings.get(key, 0.0) + value
    audit = {**second.audit, "resident_base": first.audit}
    detail = second.detail if not second.passed else f"{first.detail}; drawn plans: {second.detail}"
    return replace(second, detail=detail, seeds=tuple(dict.fromkeys(first.seeds + second.seeds)),
                   shapes=first.shapes + second.shapes, low_signal=first.low_signal, timings=timings, audit=audit)


def all_cases(reference: Reference) -> list[Any]:
    """The reference's cases, then those of its extras (the drawn cases beside a resident base)."""
    return [*reference.cases, *(reference.extras.cases if reference.extras else ())]


def dropped_draws(reference: Reference) -> list[str]:
    """The value draws the reference could not take (non-finite or failing): reported, never judged."""
    found = []
    for case in all_cases(reference):
        for drop in case.dropped:
            found.append(f"values {drop['values']} seed {drop['seed']} at sizes "
                         f"{case.plan.get('overrides') or 'official'}: {drop['error']}")
    return found


def coverage(reference: Reference) -> str:
    """What the profile covered, for the verdict: plans by role, the constants grown, value draws, address reuse,
    and what was dropped and why."""
    cases = all_cases(reference)
    roles: dict[str, list[str]] = {}
    for case in cases:
        sizes = case.plan.get("overrides") or "official"
        role = case.plan.get("role", "task")
        if role != GROW_GROUP:
            roles.setdefault(role, []).append(str(sizes))
    values = sorted({t.get("values", "task") for c in cases for t in c.trials})
    reuse = any(t.get("reuse_storage") for c in cases for t in c.trials)
    parts = [f"{role} {', '.join(found)}" for role, found in roles.items()]
    grown = grown_constants(reference)
    if grown:
        parts.append("grow " + ", ".join(f"{name} {value}" for name, value in grown.items()))
    parts.append(f"values {'/'.join(values)}")
    if reuse:
        parts.append("address reuse")
    parts += _missing(reference, roles, grown)
    dropped_values = dropped_draws(reference)
    if dropped_values:
        parts.append(f"{len(dropped_values)} value draw(s) dropped (reference non-finite or failing)")
    return f"profile {PROFILE}: " + "; ".join(parts)


def grown_constants(reference: Reference) -> dict[str, int]:
    """The size constants a kept grow plan took past the task's own value, with that value."""
    return {str(c.plan["grown"]): int(dict(c.plan.get("overrides") or {}).get(c.plan["grown"], 0))
            for c in all_cases(reference) if c.plan.get("grown")}


def _discarded(reference: Reference) -> list[dict[str, Any]]:
    return [*reference.discarded, *(reference.extras.discarded if reference.extras else ())]


def _missing(reference: Reference, roles: dict[str, list[str]], grown: dict[str, int]) -> list[str]:
    """What the profile meant to run and did not, each with its reason (the first one found)."""
    why: dict[str, str] = {}
    for drop in _discarded(reference):
        plan = drop.get("plan") or {}
        name = plan.get("grown") or plan.get("constant")
        key = f"grow {name}" if name else str(plan.get("role", "?"))
        why.setdefault(key, str(drop.get("error", "")))
    parts = [f"not grown: {key[5:]} ({reason[:160]})" for key, reason in why.items()
             if key.startswith("grow ") and key[5:] not in grown]
    missing = [g for g in (SIZE_GROUP, GROW_GROUP) if g not in roles and not (g == GROW_GROUP and grown)]
    if missing:
        reasons = [r for k, r in why.items() if not k.startswith("grow ")] or ["see discarded"]
        parts.append(f"no {'/'.join(missing)} plan ran ({reasons[-1][:200]})")
    return parts
