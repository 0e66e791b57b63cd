"""Units for the per-trial facts of compare.py: tensor_digest, trial_facts and ProbeTracker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from pytest_kernelfalcon.core.compare import (
    CHUNK,
    ProbeTracker,
    low_signal_probes,
    outputs_digest,
    tensor_digest,
    tolerance_for,
    trial_facts,
)

FP32 = tolerance_for("fp32")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- tensor_digest ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    torch.randn(37, 1001, generator=gen(0)),
    torch.randn(5, generator=gen(1)).to(torch.float16),
    torch.randint(-100, 100, (3, 3), generator=gen(2)),
    torch.tensor([True, False, True]),
    torch.arange(7, dtype=torch.uint8),
    torch.tensor(2.5),
    torch.empty(3, 0),
], ids=["fp32", "fp16", "int64", "bool", "uint8-odd", "0-d", "empty"])
def test_equal_tensors_have_equal_digests(value: torch.Tensor) -> None:
    twin = value.clone()
    assert twin.data_ptr() != value.data_ptr() or value.numel() == 0
    assert tensor_digest(value) == tensor_digest(twin)
    assert tensor_digest(value) == tensor_digest(value)  # deterministic


def test_layout_does_not_matter_only_values() -> None:
    x = torch.randn(64, 48, generator=gen(3))
    assert tensor_digest(x.t()) == tensor_digest(x.t().contiguous())


def test_digest_weights_come_from_a_fixed_seed() -> None:
    # a fresh weight cache (as in a new comparer process) gives the same digest
    from pytest_kernelfalcon.core import compare

    x = torch.randn(100, generator=gen(4))
    before = tensor_digest(x)
    compare._DIGEST_WEIGHTS.clear()
    assert tensor_digest(x) == before


@pytest.mark.parametrize("where", [0, 1, 500, -1], ids=["first", "second", "middle", "last"])
def test_one_changed_element_changes_the_digest(where: int) -> None:
    x = torch.randn(1001, generator=gen(5))
    y = x.clone()
    y[where] = torch.nextafter(y[where], torch.tensor(float("inf")))  # one ulp: the smallest change
    assert tensor_digest(x) != tensor_digest(y)


def test_one_changed_element_beyond_the_first_chunk_changes_the_digest() -> None:
    x = torch.zeros(CHUNK + 3, dtype=torch.float32)
    for where in (CHUNK - 1, CHUNK, CHUNK + 2):
        y = x.clone()
        y[where] = 1.0
        assert tensor_digest(x) != tensor_digest(y), where


def test_odd_byte_lengths_are_digested_by_bytes() -> None:
    x = torch.arange(7, dtype=torch.uint8)  # 7 bytes: not a whole number of 32-bit words
    y = x.clone()
    y[-1] = 0
    assert tensor_digest(x) != tensor_digest(y)
    z = torch.tensor([True, False, True])
    assert tensor_digest(z) != tensor_digest(torch.tensor([True, False, False]))


def test_swapped_elements_change_the_digest() -> None:
    x = torch.arange(10, dtype=torch.float32)
    y = x.clone()
    y[2], y[7] = x[7], x[2]
    assert torch.equal(x.sort().values, y.sort().values)
    assert tensor_digest(x) != tensor_digest(y)


def test_signed_zero_is_a_different_bit_pattern() -> None:
    assert tensor_digest(torch.tensor([0.0, 1.0])) != tensor_digest(torch.tensor([-0.0, 1.0]))


def test_same_bytes_different_dtype_differ() -> None:
    x = torch.arange(12, dtype=torch.int32)
    as_float = x.view(torch.float32)
    assert as_float.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    assert tensor_digest(x) != tensor_digest(as_float)
    assert tensor_digest(x.view(torch.uint8)) != tensor_digest(x)


def test_same_bytes_different_shape_differ() -> None:
    x = torch.arange(12, dtype=torch.float32)
    digests = {tensor_digest(x.reshape(shape)) for shape in [(12,), (3, 4), (4, 3), (1, 12), (2, 2, 3)]}
    assert len(digests) == 5


def test_non_tensor_values() -> None:
    assert tensor_digest(1.5) == tensor_digest(1.5) != tensor_digest(1.25)
    assert tensor_digest(None) != tensor_digest(0)
    assert tensor_digest(1.0) != tensor_digest(torch.tensor(1.0))


def test_outputs_digest_joins_every_output_in_order() -> None:
    a, b = torch.ones(3), torch.zeros(3)
    assert outputs_digest([a, b]) == outputs_digest([a.clone(), b.clone()])
    assert outputs_digest([a, b]) != outputs_digest([b, a])
    assert outputs_digest([a]) != outputs_digest([a, None])


@pytest.mark.parametrize("view", [
    torch.arange(10, dtype=torch.float16)[1:5],
    torch.arange(10, dtype=torch.uint8)[1:5],
], ids=["fp16-odd-offset", "uint8-odd-offset"])
def test_contiguous_view_at_an_unaligned_offset(view: torch.Tensor) -> None:
    assert view.is_contiguous() and view.storage_offset() % 2 == 1
    assert tensor_digest(view) == tensor_digest(view.clone())


# -- trial_facts ------------------------------------------------------------------------------


def test_matching_outputs() -> None:
    ref = [torch.randn(4, 5, generator=gen(6)), torch.tensor(3.0)]
    got = [r.clone() for r in ref]
    facts = trial_facts(ref, got, FP32, strong=False)
    assert facts["shape"] is None and facts["numeric"] is None and facts["right_relative"] is True
    assert facts["digest"] == facts["ref_digest"] == outputs_digest(ref)


def test_shape_mismatch_is_reported_and_stops_there() -> None:
    ref = [torch.zeros(2, 3)]
    facts = trial_facts(ref, [torch.zeros(3, 2)], FP32, strong=False)
    assert facts["shape"] is not None and "[2, 3]" in facts["shape"] and "[3, 2]" in facts["shape"]
    assert facts["numeric"] is None and facts["right_relative"] is False and facts["digest"] == ""
    assert facts["ref_digest"] == outputs_digest(ref)


def test_output_count_and_type_mismatches_are_shape_facts() -> None:
    ref = [torch.zeros(2), torch.zeros(2)]
    assert "expected 2 output(s), got 1" in trial_facts(ref, [torch.zeros(2)], FP32, False)["shape"]
    unsupported = trial_facts(ref, [torch.zeros(2), "<unsupported output type str>"], FP32, False)["shape"]
    assert "output 1" in unsupported and "unsupported output type str" in unsupported


def test_numeric_mismatch_names_the_first_mismatch() -> None:
    ref = [torch.ones(3), torch.arange(12, dtype=torch.float32).reshape(3, 4)]
    bad = ref[1].clone()
    bad[1, 2] += 0.5
    bad[2, 3] += 2.0
    facts = trial_facts(ref, [ref[0].clone(), bad], FP32, strong=False)
    assert facts["shape"] is None
    assert facts["numeric"] is not None
    assert facts["numeric"].startswith("output 1 (shape [3, 4]): first mismatch at index (1, 2)")
    assert "2/12 elements" in facts["numeric"] and "kernelbench-fp32" in facts["numeric"]
    assert facts["right_relative"] is False
    assert facts["digest"] == outputs_digest([ref[0], bad]) != facts["ref_digest"]


def test_nan_is_a_mismatch() -> None:
    ref = [torch.zeros(4)]
    got = torch.zeros(4)
    got[3] = float("nan")
    numeric = trial_facts(ref, [got], FP32, strong=False)["numeric"]
    assert numeric is not None and "first mismatch at index (3,)" in numeric and "1 NaN/inf" in numeric


def test_relative_check_only_on_strengthened_inputs() -> None:
    ref = [torch.full((8,), 1e-3)]
    got = [ref[0] + 5e-5]  # within atol elementwise, but 5% of the reference's magnitude
    plain = trial_facts(ref, got, FP32, strong=False)
    assert plain["numeric"] is None and plain["right_relative"] is False
    strong = trial_facts(ref, got, FP32, strong=True)
    assert strong["numeric"] is not None and "relative check on strengthened inputs" in strong["numeric"]
    assert "output 0" in strong["numeric"] and strong["right_relative"] is False


def test_small_errors_pass_the_relative_check_too() -> None:
    ref = [torch.randn(100, generator=gen(7)) * 10]
    got = [ref[0] + 1e-6]
    for strong in (False, True):
        facts = trial_facts(ref, got, FP32, strong=strong)
        assert facts["numeric"] is None and facts["right_relative"] is True


def test_right_relative_needs_every_output() -> None:
    ref = [torch.randn(10, generator=gen(8)), torch.full((4,), 1e-3)]
    got = [ref[0].clone(), ref[1] + 5e-5]
    facts = trial_facts(ref, got, FP32, strong=False)
    assert facts["numeric"] is None and facts["right_relative"] is False


def test_none_outputs_are_skipped_and_numbers_compare_with_zero_dim() -> None:
    facts = trial_facts([None, torch.tensor(2.0)], [None, 2.0], FP32, strong=True)
    assert facts["shape"] is None and facts["numeric"] is None and facts["right_relative"] is True
    wrong = trial_facts([None, torch.tensor(2.0)], [None, 2.5], FP32, strong=False)
    assert wrong["numeric"] is not None and wrong["numeric"].startswith("output 1")


# -- ProbeTracker against low_signal_probes --------------------------------------------------

Trial = tuple[list[Any], list[Any]]


def make_trials(forward: Callable[..., Any], draw: Callable[[torch.Generator], list[Any]],
                count: int = 3) -> list[Trial]:
    trials = []
    for seed in range(count):
        inputs = draw(gen(100 + seed))
        out = forward(*inputs)
        trials.append((inputs, list(out) if isinstance(out, tuple) else [out]))
    return trials


def tracked(trials: list[Trial]) -> list[str]:
    tracker = ProbeTracker(FP32)
    for inputs, outputs in trials:
        tracker.add(inputs, outputs)
    return tracker.found()


CASES: dict[str, tuple[Callable[..., Any], Callable[[torch.Generator], list[Any]], int, list[str]]] = {
    "relu-positive": (torch.relu, lambda g: [torch.rand(16, 32, generator=g)], 3,
                      ["output 0: identity(input 0)"]),
    "relu-positive-one-trial": (torch.relu, lambda g: [torch.rand(16, 32, generator=g)], 1,
                                ["output 0: identity(input 0)"]),
    "x*2+1": (lambda x: x * 2 + 1, lambda g: [torch.randn(16, 32, generator=g)], 3, []),
    "relu-signed": (torch.relu, lambda g: [torch.randn(16, 32, generator=g)], 3, []),
    "tiny-penalty": (lambda w: 1e-5 * torch.mean(w * w), lambda g: [torch.randn(64, 129, generator=g)], 3,
                     ["output 0: other trial's output", "output 0: zeros"]),
    "tiny-penalty-one-trial": (lambda w: 1e-5 * torch.mean(w * w),
                               lambda g: [torch.randn(64, 129, generator=g)], 1,
                               ["output 0: zeros"]),
    # a one-element output: the "constant" guess would be the answer itself (KernelBench's losses)
    "scalar-loss": (lambda x, y: torch.mean((x - y) ** 2), lambda g: [torch.randn(64, 9, generator=g),
                                                                      torch.randn(64, 9, generator=g)], 3, []),
    "two-outputs": (lambda x: (torch.relu(x), x * 2 + 1), lambda g: [torch.rand(8, 8, generator=g)], 3,
                    ["output 0: identity(input 0)"]),
    "constant-output": (lambda x: torch.ones(4, 4), lambda g: [torch.randn(4, 4, generator=g)], 3,
                        ["output 0: constant", "output 0: other trial's output"]),
    "number-output": (lambda x: 0.0, lambda g: [torch.randn(4, generator=g)], 3, []),
    "second-input": (lambda x, y: y.abs(), lambda g: [torch.randn(5, generator=g), torch.rand(5, generator=g)], 3,
                     ["output 0: identity(input 1)"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_probe_tracker_agrees_with_low_signal_probes(name: str) -> None:
    forward, draw, count, expected = CASES[name]
    trials = make_trials(forward, draw, count)
    assert low_signal_probes(trials, FP32) == expected
    assert tracked(trials) == expected


def test_probe_tracker_keeps_only_the_previous_trial() -> None:
    tracker = ProbeTracker(FP32)
    outputs = [[torch.rand(4, generator=gen(s))] for s in range(3)]
    for out in outputs:
        tracker.add([torch.randn(4)], out)
    assert tracker.trials == 3 and tracker.previous is outputs[-1]


def test_probe_tracker_one_mismatching_trial_removes_the_probe() -> None:
    tracker = ProbeTracker(FP32)
    x = torch.rand(10, generator=gen(9))
    tracker.add([x], [x.clone()])
    tracker.add([x + 1], [x + 1])
    assert tracker.found() == ["output 0: identity(input 0)"]
    signed = torch.randn(10, generator=gen(10))
    tracker.add([signed], [signed.relu()])
    assert tracker.found() == []
