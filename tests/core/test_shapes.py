"""Shape plans: official, scaled (shrunk consistently) and fuzz (Hypothesis-drawn, seeded)."""

from __future__ import annotations

import ast
import dataclasses
import json

import pytest

from pytest_kernelfalcon.core.shapes import (
    BATCH_FLOOR,
    FLOOR,
    MAX_SCALED_PLANS,
    VALUE_DISTS,
    ShapePlan,
    ValueDist,
    fuzz_plans,
    official_plan,
    plan_shapes,
    scaled_plans,
    value_dist,
)
from pytest_kernelfalcon.core.tasks import rewrite_constants, size_constants

ATTENTION = """\
batch_size = 128
seq_len = 512
embed_dim = 768
num_heads = 12
kernel_size = 16
stride = 2
dim = 1
num_layers = 6
"""


def elements(plan: ShapePlan, source: str) -> int:
    """Return the product of all size-like constants under ``plan`` (a proxy for work)."""
    sizes = {**size_constants(source), **plan.overrides}
    product = 1
    for name in ("batch_size", "seq_len", "embed_dim"):
        product *= sizes[name]
    return product


def test_value_dists_are_named_and_apply_to_floating_tensors_only() -> None:
    import torch

    assert {d.name for d in VALUE_DISTS} >= {"task", "signed", "large", "signed_large"}
    signed = value_dist("signed")
    x = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(signed.apply(x), torch.tensor([-1.0, 0.0, 1.0]))
    ints = torch.tensor([1, 2])
    assert value_dist("large").apply(ints) is ints
    assert value_dist("task").apply(x) is x
    assert value_dist("large").apply(3) == 3
    with pytest.raises(ValueError, match="unknown value distribution"):
        value_dist("gaussian")


def test_shape_plan_is_frozen_hashable_and_describes_itself() -> None:
    plan = ShapePlan("scaled", {"b": 2, "a": 1}, value_dist("signed"))
    same = ShapePlan("scaled", {"a": 1, "b": 2}, ValueDist("signed", 2.0, -1.0))
    assert plan == same and hash(plan) == hash(same) and len({plan, same}) == 1
    assert plan.overrides["a"] == 1 and dict(plan.overrides) == {"a": 1, "b": 2} == plan.as_dict()
    assert plan.overrides == {"a": 1, "b": 2} and plan != ShapePlan("scaled", {"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.kind = "fuzz"  # type: ignore[misc]
    description = plan.describe()
    assert description == {"kind": "scaled", "overrides": {"a": 1, "b": 2},
                           "values": {"name": "signed", "scale": 2.0, "shift": -1.0}}
    json.dumps(description)
    assert official_plan() == ShapePlan("official") and official_plan().as_dict() == {}


def uniform(plans: list[ShapePlan]) -> list[ShapePlan]:
    """Return the uniformly shrunk plans (those that change more than the batch size)."""
    return [p for p in plans if set(p.overrides) != {"batch_size"}]


def test_scaled_plans_shrink_from_least_to_most_aggressive() -> None:
    plans = uniform(scaled_plans(ATTENTION))
    assert 6 <= len(plans) <= MAX_SCALED_PLANS
    sizes = [elements(p, ATTENTION) for p in plans]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert plans[0].as_dict() == {"batch_size": 64, "seq_len": 256, "embed_dim": 384, "num_heads": 6}
    assert all(p.kind == "scaled" and p.values.name == "task" for p in plans)


def test_scaled_plans_end_with_batch_only_fallbacks() -> None:
    plans = scaled_plans(ATTENTION)
    tail = [p.as_dict() for p in plans[len(uniform(plans)):]]
    assert tail == [{"batch_size": 64}, {"batch_size": 16}, {"batch_size": BATCH_FLOOR}]
    assert len(set(plans)) == len(plans)


def test_scaled_plans_keep_small_and_window_constants() -> None:
    for plan in scaled_plans(ATTENTION):
        assert not {"kernel_size", "stride", "dim", "num_layers"} & set(plan.overrides)


def test_scaled_plans_keep_divisibility_while_values_stay_divisible() -> None:
    for plan in scaled_plans(ATTENTION)[:2]:
        assert plan.overrides["embed_dim"] % plan.overrides["num_heads"] == 0


def test_scaled_plans_end_at_the_floors() -> None:
    last = uniform(scaled_plans(ATTENTION))[-1].as_dict()
    assert last == {"batch_size": BATCH_FLOOR, "seq_len": FLOOR, "embed_dim": FLOOR, "num_heads": FLOOR}


def test_scaled_plans_stop_at_the_plan_limit_for_huge_sizes() -> None:
    plans = uniform(scaled_plans("batch_size = 4096\ndim = 393216\n"))
    assert len(plans) == MAX_SCALED_PLANS
    assert plans[-1].as_dict() == {"batch_size": BATCH_FLOOR, "dim": 393216 >> MAX_SCALED_PLANS}


def test_scaled_plans_without_size_constants_is_one_unchanged_plan() -> None:
    assert scaled_plans("dim = 1\nkernel_size = 3\n") == [ShapePlan("scaled")]
    assert [p.as_dict() for p in scaled_plans("batch_size = 16\n")] == [{"batch_size": n} for n in (8, 4, 2)]


def test_scaled_plans_rewrite_into_valid_source() -> None:
    for plan in scaled_plans(ATTENTION):
        ast.parse(rewrite_constants(ATTENTION, plan.overrides))


def test_fuzz_plans_are_deterministic_per_seed() -> None:
    base = scaled_plans(ATTENTION)[3]
    first = fuzz_plans(ATTENTION, 12, seed=7, base=base)
    assert first == fuzz_plans(ATTENTION, 12, seed=7, base=base)
    assert first != fuzz_plans(ATTENTION, 12, seed=8, base=base)
    assert len(first) == 12 and all(p.kind == "fuzz" for p in first)


def test_fuzz_plans_vary_sizes_and_values_around_the_base() -> None:
    base = scaled_plans(ATTENTION)[3]
    plans = fuzz_plans(ATTENTION, 30, seed=1, base=base)
    assert len(set(plans)) == 30
    drawn = [v for p in plans for v in p.overrides.values()]
    assert any(v % 2 == 1 for v in drawn)
    assert {p.values.name for p in plans} - {"task"}
    assert all(v >= 2 for v in drawn)
    for plan in plans:
        assert set(plan.overrides) == set(base.overrides)
        assert plan.overrides["embed_dim"] <= base.overrides["embed_dim"] * 3 // 2 + 4
        ast.parse(rewrite_constants(ATTENTION, plan.overrides))


def test_fuzz_plans_without_base_draw_around_official_sizes() -> None:
    plans = fuzz_plans("batch_size = 64\nkernel_size = 9\n", 5, seed=3)
    assert all(set(p.overrides) <= {"batch_size"} for p in plans)
    assert all(2 <= p.overrides.get("batch_size", 64) <= 96 for p in plans)


def test_fuzz_plans_pad_to_n_when_few_draws_are_possible() -> None:
    plans = fuzz_plans("dim = 1\n", 10, seed=0)
    assert len(plans) == 10 and len(set(plans)) <= len(VALUE_DISTS)
    assert fuzz_plans("dim = 1\n", 0, seed=0) == []


def test_plan_shapes_picks_the_kind() -> None:
    assert plan_shapes(ATTENTION, "official") == [official_plan()]
    assert plan_shapes(ATTENTION, "scaled") == scaled_plans(ATTENTION)
    assert plan_shapes(ATTENTION, "fuzz", n=3, seed=5) == fuzz_plans(ATTENTION, 3, 5)
    with pytest.raises(ValueError, match="unknown shape plan kind"):
        plan_shapes(ATTENTION, "huge")


def test_profile_size_plans_are_odd_seeded_and_change_every_or_one_constant() -> None:
    from pytest_kernelfalcon.core.shapes import PROFILE_ALTERNATIVES, profile_size_plans

    base = scaled_plans(ATTENTION)[2]
    plans = profile_size_plans(ATTENTION, base, seed=3)
    assert plans == profile_size_plans(ATTENTION, base, seed=3)
    assert 1 <= len(plans) <= PROFILE_ALTERNATIVES
    every = plans[0].overrides
    changed = {k: v for k, v in every.items() if v != base.overrides[k]}
    assert set(changed) == {"batch_size", "seq_len", "embed_dim", "num_heads"}
    assert all(v % 2 == 1 for v in changed.values()), every
    for plan in plans[1:]:
        assert sum(plan.overrides[k] != base.overrides[k] for k in base.overrides) == 1
    assert all(plan.kind == "profile" for plan in plans)


def test_every_size_constant_has_a_grow_group_taking_it_alone_past_the_task_own_value() -> None:
    from pytest_kernelfalcon.core.shapes import grow_groups, is_size_like

    official = size_constants(ATTENTION)
    base = scaled_plans(ATTENTION)[2]
    groups = grow_groups(ATTENTION, base, seed=5)
    assert groups == grow_groups(ATTENTION, base, seed=5)
    assert sorted(name for name, _ in groups) == sorted(k for k, v in official.items() if is_size_like(k, v))
    for name, plans in groups:
        assert plans
        for plan in plans:
            grown = [k for k, v in plan.overrides.items() if v > official[k]]
            assert grown == [name] and plan.overrides[name] % 2 == 1
            others = {k: v for k, v in plan.overrides.items() if k != name}
            assert all(v <= base.overrides[k] for k, v in others.items()), plan


def test_profile_value_transforms_negative_and_mixed() -> None:
    import torch

    from pytest_kernelfalcon.core.shapes import PROFILE_VALUE_DISTS, apply_transform

    assert [d.name for d in PROFILE_VALUE_DISTS] == ["large", "negative", "near_zero", "mixed"]
    x = torch.randn(1000)
    assert bool((value_dist("negative").apply(x) < 0).all())
    torch.manual_seed(0)
    mixed = apply_transform(x, value_dist("mixed").transform)
    torch.manual_seed(0)
    assert torch.equal(mixed, apply_transform(x, ["3.0", 0.0, "mixed"]))
    ratio = (mixed / x).abs()
    assert float(ratio.max()) > 100 and float(ratio.min()) < 0.01
    with pytest.raises(ValueError, match="unknown value transform"):
        apply_transform(x, [1.0, 0.0, "gaussian"])

