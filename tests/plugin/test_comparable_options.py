"""``--falcon-allow-torch`` and ``--falcon-precision`` through pytester, and the KernelBench-comparable summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_kernelfalcon.config import FalconConfig

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
ARGS = ("-p", "no:cacheprovider", "--falcon-device", "cpu", "--falcon-seeds", "2")


@pytest.fixture
def hybrid(pytester: pytest.Pytester) -> pytest.Pytester:
    """A conv + ReLU task and its hybrid candidate (torch's convolution, a Triton epilogue)."""
    pytester.makepyfile(**{"kb/level2/1_conv_relu": (CORPUS / "tasks" / "conv_relu.py").read_text(),
                           "cands/level2/1_conv_relu": (CORPUS / "own_conv_relu" / "hybrid_conv.py").read_text()})
    return pytester


def test_the_strict_default_rejects_the_hybrid_and_says_kernelbench_would_pass_it(hybrid: pytest.Pytester) -> None:
    report = hybrid.path / "r.json"
    result = hybrid.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands", "--falcon-report",
                                         str(report), *ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*level*tasks*passed*failed*pass rate (ours)*KernelBench-comparable*hybrid*",
                                 "*level2*1*0*1*0.0%*100.0%*0*",
                                 "*level2/1_conv_relu*pass*torch_compute*audit: torch_compute: forward ran torch compute: aten.conv*"])
    task = json.loads(report.read_text())["tasks"][0]
    assert task["kernelbench"]["passed"] is True and task["kernelbench"]["why"] == "audit"
    assert task["allowed_torch"] == []


def test_allow_torch_convolution_passes_the_hybrid_and_marks_it(hybrid: pytest.Pytester) -> None:
    report = hybrid.path / "r.json"
    result = hybrid.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands", "--falcon-report",
                                         str(report), "--falcon-allow-torch", "convolution", *ARGS)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["falcon: judging candidates from *torch allowed: convolution*",
                                 "*level2*1*1*0*100.0%*100.0%*1*"])
    data = json.loads(report.read_text())
    task = data["tasks"][0]
    assert task["allowed_torch"][0].startswith("aten.convolution.default x") and "1_conv_relu.py:" in \
        task["allowed_torch"][0]
    assert data["total"]["hybrid"] == 1 and data["meta"]["config"]["falcon_allow_torch"] == ["convolution"]
    assert data["meta"]["config"]["falcon_precision"] == "fp32"
    assert "passed (hybrid)" in report.with_suffix(".md").read_text()


@pytest.mark.parametrize("option, value, message", [
    ("--falcon-allow-torch", "convolution,convolutoin", "*--falcon-allow-torch: unknown aten op 'convolutoin'*"),
    ("--falcon-precision", "fp64", "*--falcon-precision must be one of fp32, tf32; got 'fp64'*"),
    ("-o", "falcon_allow_torch=os.system", "*--falcon-allow-torch: unknown aten op 'os.system'*"),
])
def test_bad_policies_are_usage_errors(hybrid: pytest.Pytester, option: str, value: str, message: str) -> None:
    result = hybrid.runpytest_subprocess("--falcon", "kb", "--falcon-candidates", "cands", *ARGS, option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ini_keys_are_normalised_once_into_the_check_options(pytester: pytest.Pytester) -> None:
    from pytest_kernelfalcon.session import FalconSession

    (pytester.path / "cands").mkdir()
    pytester.makeini("[pytest]\nfalcon_allow_torch = aten.convolution.default, addmm\nfalcon_precision = tf32\n")
    cfg = FalconConfig.from_pytest(pytester.parseconfig("--falcon", "--falcon-candidates", "cands"))
    assert cfg.falcon_allow_torch == ("convolution", "addmm") and cfg.falcon_precision == "tf32"
    options = FalconSession(cfg, pytester.path, "run").check_options()
    assert options.allow_torch == ("convolution", "addmm") and options.precision == "tf32"
    cli = FalconConfig.from_pytest(pytester.parseconfig("--falcon", "--falcon-candidates", "cands",
                                                        "--falcon-precision", "fp32"))
    assert cli.falcon_precision == "fp32"  # the command line before the ini key
