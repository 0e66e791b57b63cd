"""Task facts: what a reference's trials and one repeated forward say about the task (``core/facts.py``)."""

from __future__ import annotations

from typing import Any

import torch

from pytest_kernelfalcon.child.reference import reference_forward
from pytest_kernelfalcon.child.taskfacts import case_facts
from pytest_kernelfalcon.core.facts import input_kind, output_facts, summarize
from pytest_kernelfalcon.core.protocol import PlanFile, ReferenceCase, ReferenceJob

JOB = ReferenceJob(device="cpu", dtype="fp32", construct_seed=1, plans=(PlanFile("task_0.py", 0, {}, (1.0, 0.0)),),
                   pick="first_fit", budget_numel=None, last_exempt=True, seeds=(1, 2), strong_seeds=(),
                   strong=(4.0, -2.0), resident_above=None)


def _trials(model: torch.nn.Module, make: Any, seeds: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    trials = []
    for seed in seeds:
        torch.manual_seed(seed)
        inputs = make()
        outputs, _ = reference_forward(model, inputs, seed)
        trials.append({"seed": seed, "inputs": inputs, "outputs": outputs})
    return trials


def facts_of(model: torch.nn.Module, make: Any) -> Any:
    trials = _trials(model, make, JOB.seeds)
    case = ReferenceCase(plan={}, index=0, construct_seed=JOB.construct_seed, init_inputs=((4, 4), [1, 2], "mean"),
                         trials=(), strong_trials=(),
                         facts=case_facts(reference_forward, model, make, JOB, (1.0, 0.0), trials))
    return summarize([ReferenceCase.from_wire(case.to_wire())], ["output 0: zeros"])  # as a job's result.pt holds it


class Lambda(torch.nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs: Any) -> Any:
        return self.fn(*xs)


class Counter(torch.nn.Module):
    """Keeps state across calls: the same seed and inputs give another output the second time."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * self.calls


def test_kinds_of_values() -> None:
    assert [input_kind(v) for v in (torch.ones(1), torch.ones(1, dtype=torch.int64), torch.ones(1) > 0, 3, "s")] \
        == ["float", "int", "bool", "int", "str"]


def test_output_facts_zero_constant_and_one_element() -> None:
    assert output_facts(torch.zeros(3, 2)) | {"digest": ""} == {"zero": True, "constant": True, "digest": ""}
    assert output_facts(torch.full((4,), 2.5))["constant"] and not output_facts(torch.full((4,), 2.5))["zero"]
    assert not output_facts(torch.tensor(2.5))["constant"]  # a scalar loss is not "constant"
    assert not output_facts(torch.arange(3.0))["constant"]


def test_a_plain_task_has_no_flags_and_reports_kinds_time_and_memory() -> None:
    facts = facts_of(Lambda(lambda x, m: (x.relu(), x.masked_fill(m, 0.0))),
                     lambda: [torch.randn(8, 8), torch.rand(8, 8) > 0.5])
    assert facts.degenerate == [] and facts.nondeterministic == []
    assert facts.input_kinds == ["bool", "float"] and facts.init_kinds == ["list", "str", "tuple"]
    assert facts.output_count == 2 and facts.low_signal == ["output 0: zeros"]
    assert facts.reference_s is not None and facts.reference_s > 0 and facts.peak_bytes and facts.peak_bytes > 0


def test_degenerate_outputs_are_named() -> None:
    make = lambda: [torch.randn(8, 8)]  # noqa: E731
    assert facts_of(Lambda(lambda x: x * 0), make).degenerate == ["output 0 all zero"]
    assert facts_of(Lambda(lambda x: torch.ones_like(x)), make).degenerate == ["output 0 constant"]
    fixed = torch.randn(8, 8)
    assert facts_of(Lambda(lambda x: fixed + 0 * x), make).degenerate == ["output 0 independent of the inputs"]


def test_random_numbers_and_state_are_told_apart() -> None:
    make = lambda: [torch.randn(64, 64)]  # noqa: E731
    dropout = facts_of(Lambda(lambda x: torch.nn.functional.dropout(x, 0.5, training=True)), make)
    assert len(dropout.nondeterministic) == 1 and "same RNG stream" in dropout.nondeterministic[0]
    stateful = facts_of(Counter(), make)
    assert len(stateful.nondeterministic) == 1 and "differs from itself" in stateful.nondeterministic[0]
