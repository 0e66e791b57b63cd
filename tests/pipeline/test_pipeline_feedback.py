"""Feedback that names the fix, and the prompts' Triton names checked against the installed Triton."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from pytest_kernelfalcon.pipeline.feedback import (
    feedback_detail,
    mismatch_lines,
    unlaunched_kernels,
)
from pytest_kernelfalcon.pipeline.prompts import load_prompts
from pytest_kernelfalcon.pipeline.triton_names import (
    COMMON_OPS,
    missing_names,
    nearest,
    public_names,
)

TL_ERROR = 'candidate.py:30: InterpreterError: AttributeError("module \'triton.language\' has no attribute \'{}\'")'


def test_a_name_triton_lacks_is_named_with_the_nearest_names_that_exist() -> None:
    import triton.language as tl

    text = feedback_detail("compile_error", TL_ERROR.format("exp2f"))
    assert text.startswith(TL_ERROR.format("exp2f"))
    assert "`tl.exp2f` does not exist in the installed Triton" in text
    listed = re.findall(r"`tl\.(\w+)`", text.split("Nearest names that exist there: ")[1])
    assert "exp2" in listed and all(hasattr(tl, n) for n in listed)


@pytest.mark.parametrize("op", sorted(COMMON_OPS))
def test_a_common_op_triton_lacks_gets_its_expression(op: str) -> None:
    import triton.language as tl

    text = feedback_detail("compile_error", TL_ERROR.format(op))
    if hasattr(tl, op):  # this Triton has it: no such feedback for it
        assert missing_names(text) and "does not exist" in text  # (the error text still says so)
    assert f"For {op} of a block `x`, write `{COMMON_OPS[op]}`." in text


def test_only_triton_modules_are_read() -> None:
    assert public_names("os") == [] and "load" in public_names("triton.language")
    assert nearest("maximun", public_names("triton.language"))[0] == "maximum"


def test_a_numeric_mismatch_is_a_few_lines() -> None:
    detail = ("seed 42, sizes {'batch_size': 16, 'dim': 1536}, input shapes [[16, 1536]]: output 0 (shape [16, "
              "1536]): first mismatch at index (0, 0): got 0.145597, expected 0.872908; 24573/24576 elements out "
              "of tolerance; max abs err 98.5, max rel err 9.81e+03 (kernelbench-fp32: atol=0.0001 rtol=0.0001)")
    lines = feedback_detail("numeric_mismatch", detail).splitlines()
    assert lines[:4] == [
        "- where: output 0 (shape [16, 1536]), first wrong element at index (0, 0)",
        "- got 0.145597, expected 0.872908",
        "- how many: 24573/24576 elements out of tolerance; max abs err 98.5, max rel err 9.81e+03 "
        "(kernelbench-fp32: atol=0.0001 rtol=0.0001)",
        "- the plan that was run: seed 42, sizes {'batch_size': 16, 'dim': 1536}, input shapes [[16, 1536]]"]
    assert mismatch_lines("output 0: NaN where 3.0 was expected") == "output 0: NaN where 3.0 was expected"


KERNEL_CALLED = '''import triton
import triton.language as tl

@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    pass

def helper(x):
    return relu_kernel(x, x, 1, BLOCK=8)

class ModelNew:
    def forward(self, x):
        relu_kernel[(1,)](x, x, 1, BLOCK=8)
        return relu_kernel(x, x, 1, BLOCK=8)
'''


def test_a_kernel_called_like_a_function_is_named_with_its_line() -> None:
    assert unlaunched_kernels(KERNEL_CALLED) == [("relu_kernel", 9), ("relu_kernel", 14)]
    text = feedback_detail("compile_error", "candidate.py:14: InterpreterError: ...", KERNEL_CALLED)
    assert "Line 14 calls the `@triton.jit` kernel `relu_kernel(...)` like a Python function" in text
    assert "`relu_kernel[(triton.cdiv(n, BLOCK),)](..., BLOCK=BLOCK)`" in text
    assert feedback_detail("numeric_mismatch", "x", KERNEL_CALLED) == "x"


def test_every_triton_name_in_the_prompts_exists_in_the_installed_triton() -> None:
    import triton
    import triton.language as tl

    prompts = load_prompts()
    text = "\n".join(prompts.texts.values()) + "\n".join(COMMON_OPS.values())
    used = set(re.findall(r"\btl\.(\w+)", text))
    assert {"load", "store", "exp", "maximum", "sum", "max", "where", "arange", "program_id"} <= used
    assert [n for n in used if not hasattr(tl, n)] == []
    top = set(re.findall(r"\btriton\.(\w+)", text)) - {"language"}
    assert {"jit", "cdiv", "next_power_of_2"} <= top and [n for n in top if not hasattr(triton, n)] == []


KERNELS = '''import triton
import triton.language as tl
{kernels}'''
ONE = '''

@triton.jit
def k_{name}(x_ptr, out_ptr, n, negative_slope, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, {expr}, mask=mask)
'''


def test_every_common_op_expression_computes_the_op_in_the_installed_triton(tmp_path: Path) -> None:
    import torch
    import torch.nn.functional as F

    path = tmp_path / "common_ops_kernels.py"
    path.write_text(KERNELS.format(kernels="".join(ONE.format(name=n, expr=e) for n, e in COMMON_OPS.items())))
    spec = importlib.util.spec_from_file_location("common_ops_kernels", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # triton.jit reads the kernels' source through their module
    spec.loader.exec_module(module)
    torch_ops = {"relu": torch.relu, "sigmoid": torch.sigmoid, "gelu": F.gelu, "silu": F.silu,
                 "tanh": torch.tanh, "softplus": F.softplus, "leaky_relu": lambda x: F.leaky_relu(x, 0.05)}
    assert set(torch_ops) == set(COMMON_OPS)
    x = torch.cat([torch.randn(1000) * 4, torch.tensor([-30.0, -0.0, 0.0, 30.0])])
    for name, op in torch_ops.items():
        out = torch.empty_like(x)
        getattr(module, f"k_{name}")[(triton_cdiv(x.numel(), 256),)](x, out, x.numel(), 0.05, BLOCK=256)
        torch.testing.assert_close(out, op(x), atol=1e-5, rtol=1e-5, msg=name)


def triton_cdiv(a: int, b: int) -> int:
    import triton

    return int(triton.cdiv(a, b))


def test_the_line_an_error_points_at_is_quoted() -> None:
    code = "import torch\n\n\ndef f(x):\n    x, = x.contiguous()\n    return x\n"
    detail = "candidate.py:5: ValueError: too many values to unpack (expected 1) [profile default: ...]"
    assert feedback_detail("runtime_error", detail, code) == f"{detail}\nLine 5 of your file is: `x, = x.contiguous()`"
    assert feedback_detail("runtime_error", "candidate.py:99: boom", code) == "candidate.py:99: boom"
    assert feedback_detail("runtime_error", "no line here", code) == "no line here"
