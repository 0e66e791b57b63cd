"""Pure units: KernelBench's eval as facts (seeds, comparison), hybrid op names, the TF32 precision class."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_kernelfalcon.core.kernelbench import KB_TOLERANCE, kb_mismatch, kb_trial_seeds
from pytest_kernelfalcon.core.ops import is_accepted, op_base_name, parse_allowed
from pytest_kernelfalcon.core.precision import precision_note, tf32_round, tf32_tolerance
from pytest_kernelfalcon.core.verdict import Category, KernelBenchVerdict, Tolerance, Verdict


def test_trial_seeds_are_drawn_from_the_seeded_generator_and_leave_it_reproducible() -> None:
    seeds = kb_trial_seeds(42, 5)
    torch.manual_seed(42)
    assert seeds == [int(torch.randint(0, 2**32 - 1, (1,)).item()) for _ in range(5)]
    assert kb_trial_seeds(42, 5) == seeds and len(set(seeds)) == 5 and kb_trial_seeds(43, 5) != seeds


def test_kb_mismatch_is_allclose_at_its_tolerance_after_count_shape_and_dtype() -> None:
    ref = torch.randn(1000)
    assert kb_mismatch([ref], [ref + 0.9 * KB_TOLERANCE]) is None
    assert "output mismatch, max abs diff" in str(kb_mismatch([ref], [ref + 3 * KB_TOLERANCE * (1 + ref.abs())]))
    assert kb_mismatch([ref], [ref, ref]) == "expected 1 output(s), got 2"
    assert "output shape mismatch" in str(kb_mismatch([ref], [ref.reshape(10, 100)]))
    assert "did not match" in str(kb_mismatch([ref], [ref.double()]))  # torch.allclose raises: the eval fails
    nan = ref.clone()
    nan[7] = float("nan")
    assert kb_mismatch([ref], [nan]) is not None and kb_mismatch([ref], [ref.clone()]) is None


def test_kb_mismatch_in_chunks_says_what_one_allclose_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_kernelfalcon.core import kernelbench

    monkeypatch.setattr(kernelbench, "CHUNK", 64)
    ref = torch.randn(1000)
    bad = ref.clone()
    bad[999] += 1.0  # in the last chunk only
    assert kb_mismatch([ref], [bad]) is not None and kb_mismatch([ref], [ref + 1e-3]) is None


@pytest.mark.parametrize(("given", "base"), [
    ("aten.convolution.default", "convolution"), ("aten::addmm", "addmm"), ("softmax", "softmax"),
    ("aten._softmax.default", "_softmax"),
])
def test_op_base_names(given: str, base: str) -> None:
    assert op_base_name(given) == base


def test_a_policy_name_accepts_its_in_place_and_implementation_ops_only() -> None:
    assert is_accepted("aten._softmax.default", ["softmax"]) and is_accepted("aten.relu_.default", ["relu"])
    assert is_accepted("aten.convolution.default", ["convolution"])
    assert not is_accepted("aten.addmm.default", ["convolution"]) and not is_accepted("aten.mm.default", ["addmm"])
    assert not is_accepted("aten.convolution.default", [])


def test_parse_allowed_normalises_once_and_names_an_unknown_op() -> None:
    assert parse_allowed(" convolution, aten.addmm.default ,convolution") == ("convolution", "addmm")
    assert parse_allowed(None) == () and parse_allowed("") == () and parse_allowed(["prod"]) == ("prod",)
    with pytest.raises(ValueError, match="unknown aten op 'convolutoin'"):
        parse_allowed("convolutoin")
    with pytest.raises(ValueError, match="unknown aten op"):
        parse_allowed("os.system")


def test_tf32_round_keeps_ten_mantissa_bits_to_nearest() -> None:
    x = torch.randn(10000) * 1e3
    rounded = tf32_round(x)
    rel = ((rounded - x).abs() / x.abs()).max().item()
    assert 0 < rel <= 2.0**-11  # half a TF32 ulp at most
    assert torch.equal(tf32_round(rounded), rounded)  # already TF32: unchanged
    assert torch.equal(tf32_round(torch.tensor([1.0, 0.5, -3.0])), torch.tensor([1.0, 0.5, -3.0]))
    special = torch.tensor([float("inf"), float("-inf"), float("nan")])
    assert torch.equal(tf32_round(special).nan_to_num(), special.nan_to_num())
    ints = torch.arange(5)
    assert tf32_round(ints) is ints and tf32_round(x.double()).dtype == torch.float64


def test_tf32_tolerance_widens_atol_by_the_measured_class() -> None:
    tol = Tolerance("kernelbench-fp32", 1e-4, 1e-4)
    wider = tf32_tolerance(tol, [1e-3, math.inf, 2e-3])
    assert wider is not None and wider.atol == pytest.approx(1e-4 + 10 * 2e-3) and wider.rtol == 1e-4
    assert "tf32" in wider.policy and tf32_tolerance(tol, None) is None and tf32_tolerance(tol, []) is None


def test_precision_note_puts_the_error_against_the_references_own() -> None:
    note = precision_note(4e-3, [2e-5], 4e-2)
    assert "max abs err 0.004, 200x the reference's own fp32 error (2e-05)" in note and "atol 0.04" in note
    assert "--falcon-precision tf32" in note and "x the reference's own fp32" not in precision_note(4e-3, None, 4e-2)


def test_verdict_json_carries_the_kernelbench_verdict_and_renames_the_candidate() -> None:
    kb = KernelBenchVerdict(True, "passed 3 trial(s)", "trials", 3, {"N": 128}, "p", "audit",
                            "audit: torch_compute: aten.mm.default x3 at /tmp/kf-cand-abc/candidate.py:9")
    verdict = Verdict.failed(Category.TORCH_COMPUTE, "aten.mm.default x3 at candidate.py:9", kernelbench=kb,
                             allowed_torch=("aten.convolution.default x1 at candidate.py:4",)).naming("mine.py")
    data = verdict.to_json()
    assert data["kernelbench"]["reason"].endswith("at mine.py:9") and data["allowed_torch"] == [
        "aten.convolution.default x1 at mine.py:4"]
    assert KernelBenchVerdict.from_json(data["kernelbench"]) == verdict.kernelbench
    assert verdict.kernelbench is not None and verdict.kernelbench.sizes_text() == "N=128"
    assert KernelBenchVerdict.from_json(None) is None and KernelBenchVerdict(None, "").label() == "?"

