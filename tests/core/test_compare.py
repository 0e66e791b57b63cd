"""Pure units for compare.py: tolerances, flattening, mismatch detail, low-signal probes."""

from __future__ import annotations

import pytest
import torch

from pytest_kernelfalcon.core.compare import (
    flatten_outputs,
    identical,
    low_signal_probes,
    numeric_mismatch,
    shape_mismatch,
    tolerance_for,
)


def test_tolerances_follow_kernelbench() -> None:
    assert (tolerance_for("fp32").atol, tolerance_for("fp32").rtol) == (1e-4, 1e-4)
    assert tolerance_for("bf16").atol == tolerance_for("fp16").rtol == 1e-2
    assert tolerance_for("fp16").policy == "kernelbench-fp16"
    with pytest.raises(ValueError):
        tolerance_for("fp64")


def test_flatten_nested_outputs() -> None:
    a, b = torch.zeros(2), torch.ones(3)
    assert flatten_outputs(a) == [a]
    flat = flatten_outputs((a, [b, 3], None))
    assert flat[0] is a and flat[1] is b and flat[2:] == [3, None]


def test_shape_mismatch_checks_count_type_and_every_shape() -> None:
    ref = [torch.zeros(2, 3), torch.zeros(4)]
    assert shape_mismatch(ref, [torch.zeros(2, 3), torch.zeros(4)]) is None
    assert shape_mismatch(ref, [torch.zeros(2, 3)]).kind == "count"  # type: ignore[union-attr]
    second = shape_mismatch(ref, [torch.zeros(2, 3), torch.zeros(5)])
    assert second is not None and second.output == 1 and "[4]" in second.detail and "[5]" in second.detail
    assert shape_mismatch(ref, [torch.zeros(2, 3), None]).kind == "type"  # type: ignore[union-attr]


def test_numeric_mismatch_reports_first_index_and_errors() -> None:
    ref = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    cand = ref.clone()
    cand[1, 2] += 0.5
    cand[2, 3] += 2.0
    found = numeric_mismatch([ref], [cand], tolerance_for("fp32"))
    assert found is not None and found.kind == "numeric"
    assert "index (1, 2)" in found.detail and "2/12 elements" in found.detail
    assert "max abs err 2" in found.detail and "kernelbench-fp32" in found.detail


def test_within_tolerance_passes_and_dtype_does_not_matter() -> None:
    ref = torch.linspace(-3, 3, 100)
    assert numeric_mismatch([ref], [(ref + 5e-5).double()], tolerance_for("fp32")) is None
    assert numeric_mismatch([ref], [ref + 5e-3], tolerance_for("fp32")) is not None
    assert numeric_mismatch([ref.half()], [(ref + 5e-3).half()], tolerance_for("fp16")) is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_inf_never_pass(bad: float) -> None:
    ref = torch.zeros(8)
    cand = ref.clone()
    cand[3] = bad
    found = numeric_mismatch([ref], [cand], tolerance_for("bf16"))
    assert found is not None and "1 NaN/inf" in found.detail and "index (3,)" in found.detail


def test_relative_check_catches_small_absolute_error_on_large_outputs() -> None:
    ref = torch.full((4,), 1e-3)
    cand = ref + 9e-5  # passes atol 1e-4, yet 9% off
    tol = tolerance_for("fp32")
    assert numeric_mismatch([ref], [cand], tol) is None
    found = numeric_mismatch([ref], [cand], tol, relative=True)
    assert found is not None and "relative check" in found.detail


def test_scalar_outputs_compare() -> None:
    tol = tolerance_for("fp32")
    assert numeric_mismatch([torch.tensor(2.0)], [2.00001], tol) is None
    assert numeric_mismatch([3.0], [3.5], tol) is not None


def test_identical_is_bitwise() -> None:
    a = torch.tensor([1.0, float("nan")])
    assert identical([a], [a.clone()])
    assert not identical([a], [a + 1e-7 * torch.tensor([1.0, 0.0]) + torch.tensor([1e-6, 0.0])])
    assert not identical([a], [a.double()])


def test_probes_flag_activation_on_positive_inputs() -> None:
    tol = tolerance_for("fp32")
    trials = []
    for seed in range(2):
        x = torch.rand(64, generator=torch.Generator().manual_seed(seed))
        trials.append(([x], [torch.relu(x)]))
    assert low_signal_probes(trials, tol) == ["output 0: identity(input 0)"]


def test_probes_flag_tiny_and_input_independent_outputs() -> None:
    tol = tolerance_for("fp32")
    x1, x2 = torch.randn(16), torch.randn(16)
    tiny = [([x1], [x1 * 1e-6]), ([x2], [x2 * 1e-6])]
    assert "output 0: zeros" in low_signal_probes(tiny, tol)
    fixed = torch.randn(16)
    same = [([x1], [fixed]), ([x2], [fixed])]
    assert "output 0: other trial's output" in low_signal_probes(same, tol)


def test_probes_do_not_flag_a_real_signal() -> None:
    tol = tolerance_for("fp32")
    trials = [([x], [torch.relu(x)]) for x in (torch.randn(64), torch.randn(64))]
    assert low_signal_probes(trials, tol) == []


def test_numbers_match_zero_dim_tensors_but_not_other_types() -> None:
    assert shape_mismatch([torch.tensor(1.5)], [1.5]) is None
    assert shape_mismatch([torch.zeros(1)], [1.5]).kind == "shape"  # type: ignore[union-attr]
    found = shape_mismatch([torch.zeros(2)], ["<unsupported output type dict>"])
    assert found is not None and found.kind == "type" and "dict" in found.detail


def test_value_draw_tolerance_follows_the_reference_float64_error() -> None:
    import torch

    from pytest_kernelfalcon.core.compare import (
        REF_ERROR_FACTOR,
        tolerance_for,
        value_draw_tolerance,
    )

    tol = tolerance_for("fp32")
    ref = [torch.full((4,), 3e4)]
    measured = value_draw_tolerance(tol, ref, [2e-3])
    assert measured.atol == pytest.approx(tol.atol + REF_ERROR_FACTOR * 2e-3) and measured.rtol == tol.rtol
    assert "float64" in measured.policy
    assert value_draw_tolerance(tol, ref, [0.0]) == tol  # exact there: KernelBench's own tolerance
    scaled = value_draw_tolerance(tol, ref, None)  # no float64 run: atol scaled by the largest output
    assert scaled.atol == pytest.approx(tol.atol * 3e4)
    assert value_draw_tolerance(tol, [torch.full((4,), 0.5)], None) == tol
