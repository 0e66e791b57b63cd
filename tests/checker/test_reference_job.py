"""The reference job (#17): low-signal probes are found in the job, on the tensors' device, and the
strengthened trials are run only where they are used (a low-signal task)."""

from __future__ import annotations

from pathlib import Path

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
from pytest_kernelfalcon.checker.options import Reference


def reference_of(task: Path) -> Reference:
    checker = Checker(CheckOptions(device="cpu", shapes="official", seeds=2, timeout_s=60.0))
    try:
        found = checker.reference(task.read_text())
    finally:
        checker.close()
    assert isinstance(found, Reference), found
    return found


def test_signed_inputs_are_not_low_signal_and_skip_the_strong_trials(relu_task: Path) -> None:
    ref = reference_of(relu_task)
    assert ref.probes == () and not ref.low_signal
    assert [len(c.strong_trials) for c in ref.cases] == [0] and ref.trial_count == 2
    assert set(ref.split) == {"reference_job_s", "reference_probes_s"}


def test_a_low_signal_task_gets_its_probes_and_strong_trials(positive_relu_task: Path) -> None:
    ref = reference_of(positive_relu_task)
    assert any("identity(input 0)" in p for p in ref.probes)
    assert all(len(c.strong_trials) == 2 for c in ref.cases) and ref.trial_count == 4
    assert all(t["strong"] for c in ref.cases for t in c.strong_trials)
