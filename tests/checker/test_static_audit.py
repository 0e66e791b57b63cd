"""Static audit of candidate source: each cheat found with its category and line, realistic code left alone."""

from __future__ import annotations

import textwrap

import pytest

from pytest_kernelfalcon.checker.static_audit import Finding, static_audit
from pytest_kernelfalcon.core.verdict import Category

RELU = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.where(x > 0, x, 0.0), mask=mask)


class ModelNew(nn.Module):
    """ReLU with one Triton kernel."""

    def __init__(self):
        super(ModelNew, self).__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        grid = lambda meta: (triton.cdiv(n, meta["BLOCK_SIZE"]),)
        relu_kernel[grid](x, out, n, BLOCK_SIZE=1024)
        return out
'''

MATMUL = '''
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.autotune(
    configs=[
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    ],
    key=["M", "N", "K"],
)
@triton.jit
def linear_kernel(a_ptr, w_ptr, b_ptr, c_ptr, M, N, K,
                  stride_am, stride_ak, stride_wn, stride_wk, stride_cm, stride_cn,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        kk = k * BLOCK_K + rk
        a = tl.load(a_ptr + rm[:, None] * stride_am + kk[None, :] * stride_ak,
                    mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
        w = tl.load(w_ptr + rn[None, :] * stride_wn + kk[:, None] * stride_wk,
                    mask=(rn[None, :] < N) & (kk[:, None] < K), other=0.0)
        acc += tl.dot(a, w)
    bias = tl.load(b_ptr + rn, mask=rn < N, other=0.0)
    acc = acc + bias[None, :]
    acc = tl.maximum(acc, 0.0)
    tl.store(c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn, acc,
             mask=(rm[:, None] < M) & (rn[None, :] < N))


def fused_linear_relu(x, weight, bias):
    M, K = x.shape
    N = weight.shape[0]
    out = torch.empty((M, N), device=x.device, dtype=x.dtype)
    grid = lambda META: (triton.cdiv(M, META["BLOCK_M"]), triton.cdiv(N, META["BLOCK_N"]))
    linear_kernel[grid](x, weight, bias, out, M, N, K,
                        x.stride(0), x.stride(1), weight.stride(0), weight.stride(1),
                        out.stride(0), out.stride(1))
    return out


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return fused_linear_relu(x.reshape(-1, x.shape[-1]), self.weight, self.bias).view(*x.shape[:-1], -1)
'''

SOFTMAX = '''
import torch
from torch import nn
import triton
import triton.language as tl

try:
    from triton.language.extra import libdevice
except ImportError:
    libdevice = None


@triton.jit
def softmax_kernel(out_ptr, in_ptr, in_row_stride, out_row_stride, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(in_ptr + row * in_row_stride + cols, mask=mask, other=-float("inf"))
    x = x - tl.max(x, axis=0)
    num = tl.exp(x)
    tl.store(out_ptr + row * out_row_stride + cols, num / tl.sum(num, axis=0), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        rows, cols = x.shape
        y = torch.empty_like(x)
        block = triton.next_power_of_2(cols)
        softmax_kernel[(rows,)](y, x, x.stride(0), y.stride(0), cols, BLOCK=block, num_warps=4)
        return y
'''

CONV_BIAS = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
import triton
import triton.language as tl


@triton.jit
def bias_relu_kernel(x_ptr, b_ptr, y_ptr, n, hw, c, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    ch = (offs // hw) % c
    x = tl.load(x_ptr + offs, mask=mask)
    b = tl.load(b_ptr + ch, mask=mask)
    tl.store(y_ptr + offs, tl.maximum(x + b, 0.0), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, bias_shape):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.bias = nn.Parameter(torch.randn(bias_shape))
        self.block = 256

    def forward(self, x):
        y = torch.empty(x.shape[0], self.bias.shape[0], 4, 4, device=x.device, dtype=x.dtype)
        n = y.numel()
        hw = y.shape[2] * y.shape[3]
        bias_relu_kernel[(triton.cdiv(n, self.block),)](x, self.bias, y, n, hw, y.shape[1], BLOCK=self.block)
        return y.permute(0, 1, 2, 3).contiguous()
'''


@pytest.mark.parametrize("source", [RELU, MATMUL, SOFTMAX, CONV_BIAS], ids=["relu", "matmul", "softmax", "conv"])
def test_realistic_triton_candidates_have_no_findings(source: str) -> None:
    assert static_audit(source) == ()


CHEATS = [
    # fallback
    ("def forward(self, x):\n    try:\n        k[g](x)\n    except Exception:\n        return torch.relu(x)\n",
     Category.FALLBACK, 2),
    ("def run(x):\n    try:\n        return launch(x)\n    except RuntimeError:\n        return slow(x)\n",
     Category.FALLBACK, 2),
    ("def forward(self, x):\n    try:\n        k[g](x)\n    finally:\n        return x\n", Category.FALLBACK, 2),
    ("import torch\ntry:\n    import mykern\nexcept ImportError:\n    out = torch.relu(x)\n", Category.FALLBACK, 2),
    ("import contextlib\ndef forward(self, x):\n    with contextlib.suppress(Exception):\n        k[g](x)\n",
     Category.FALLBACK, 3),
    # reference reuse
    ("class ModelNew(Model):\n    pass\n", Category.REFERENCE_REUSE, 1),
    ("def forward(self, x):\n    return Model()(x)\n", Category.REFERENCE_REUSE, 2),
    ("from task import Model\n", Category.REFERENCE_REUSE, 1),
    ("import task\nm = task.Model()\n", Category.REFERENCE_REUSE, 2),
    ("ref = globals()['Model']\n", Category.REFERENCE_REUSE, 1),
    ("class Model:\n    pass\n", Category.REFERENCE_REUSE, 1),
    ("import importlib\nmod = importlib.import_module('19_ReLU')\n", Category.REFERENCE_REUSE, 2),
    ("mod = __import__('task')\n", Category.REFERENCE_REUSE, 1),
    ("src = open('task.py').read()\n", Category.REFERENCE_REUSE, 1),
    ("from pathlib import Path\ntext = Path('task.py').read_text()\n", Category.REFERENCE_REUSE, 2),
    ("import torch\nexpected = torch.load('out.pt')\n", Category.REFERENCE_REUSE, 2),
    # checker tamper: frame introspection
    ("import sys\nf = sys._getframe(1)\n", Category.CHECKER_TAMPER, 2),
    ("from sys import _getframe as g\nf = g()\n", Category.CHECKER_TAMPER, 1),
    ("import inspect\nouter = inspect.stack()[1]\n", Category.CHECKER_TAMPER, 2),
    ("import inspect as ins\nf = ins.currentframe()\n", Category.CHECKER_TAMPER, 2),
    ("import gc\nobjs = gc.get_referrers(x)\n", Category.CHECKER_TAMPER, 2),
    ("def forward(self, x):\n    ref = frame.f_back.f_locals['expected']\n", Category.CHECKER_TAMPER, 2),
    ("try:\n    1 / 0\nexcept Exception as e:\n    fr = e.__traceback__.tb_frame\n", Category.CHECKER_TAMPER, 4),
    ("f = getattr(sys, '_getframe')\n", Category.CHECKER_TAMPER, 1),
    # checker tamper: monkey-patching
    ("import torch\ntorch.allclose = lambda *a, **k: True\n", Category.CHECKER_TAMPER, 2),
    ("import torch\ntorch.Tensor.__eq__ = lambda a, b: True\n", Category.CHECKER_TAMPER, 2),
    ("import torch.nn.functional as F\nF.relu = my_relu\n", Category.CHECKER_TAMPER, 2),
    ("from torch import nn\nnn.Module.__call__ = fake\n", Category.CHECKER_TAMPER, 2),
    ("import triton\ntriton.runtime.jit.JITFunction.run = counting\n", Category.CHECKER_TAMPER, 2),
    ("import torch\nsetattr(torch, 'equal', lambda a, b: True)\n", Category.CHECKER_TAMPER, 2),
    ("import builtins\nbuiltins.print = quiet\n", Category.CHECKER_TAMPER, 2),
    ("__builtins__['open'] = fake_open\n", Category.CHECKER_TAMPER, 1),
    ("out.__class__ = FakeTensor\n", Category.CHECKER_TAMPER, 1),
    ("import torch\nT = torch.Tensor\nT.cpu = fake\n", Category.CHECKER_TAMPER, 3),
    ("import sys\nsys.modules['torch'] = fake\n", Category.CHECKER_TAMPER, 2),
    ("import sys\nsys.modules.pop('pytest_kernelfalcon.child.runtime')\n", Category.CHECKER_TAMPER, 2),
    ("import os\nos.environ['TRITON_INTERPRET'] = '0'\n", Category.CHECKER_TAMPER, 2),
    # checker tamper: dispatch machinery, tracing, processes
    ("from torch.utils._python_dispatch import TorchDispatchMode\n", Category.CHECKER_TAMPER, 1),
    ("import torch\nclass M(torch.utils._python_dispatch.TorchDispatchMode):\n    pass\n", Category.CHECKER_TAMPER, 2),
    ("class T(torch.Tensor):\n    def __torch_dispatch__(cls, func, types, args, kwargs):\n        pass\n",
     Category.CHECKER_TAMPER, 2),
    ("import torch\ntorch._C._set_dispatch_mode(None)\n", Category.CHECKER_TAMPER, 2),
    ("import torch\nmodes = torch._C._len_torch_dispatch_stack()\n", Category.CHECKER_TAMPER, 2),
    ("import torch\nlib = torch.library.Library('aten', 'IMPL')\n", Category.CHECKER_TAMPER, 2),
    ("import sys\nsys.settrace(tracer)\n", Category.CHECKER_TAMPER, 2),
    ("import threading\nthreading.setprofile(p)\n", Category.CHECKER_TAMPER, 2),
    ("env = open('/proc/1/environ').read()\n", Category.CHECKER_TAMPER, 1),
    ("import ctypes\n", Category.CHECKER_TAMPER, 1),
    ("import subprocess\n", Category.CHECKER_TAMPER, 1),
    ("import os\nos._exit(0)\n", Category.CHECKER_TAMPER, 2),
    ("import sys\nsys.exit(0)\n", Category.CHECKER_TAMPER, 2),
    ("exec(code)\n", Category.CHECKER_TAMPER, 1),
    ("import pytest_kernelfalcon.child.runtime as c\n", Category.CHECKER_TAMPER, 1),
]


@pytest.mark.parametrize(("source", "category", "line"), CHEATS, ids=[c[0].splitlines()[-1][:40] for c in CHEATS])
def test_cheats_are_found_with_category_and_line(source: str, category: Category, line: int) -> None:
    findings = static_audit(source)
    hits = [f for f in findings if f.category is category and f.line == line]
    assert hits, findings
    assert all(f.message.startswith(f"line {f.line}: ") for f in findings)
    assert "`" in hits[0].message or "'" in hits[0].message  # the construct is named


def test_cheat_embedded_in_a_realistic_candidate_is_found_at_its_line() -> None:
    cheat = RELU.replace(
        "        relu_kernel[grid](x, out, n, BLOCK_SIZE=1024)\n",
        "        try:\n            relu_kernel[grid](x, out, n, BLOCK_SIZE=1024)\n"
        "        except Exception:\n            return torch.relu(x)\n",
    )
    line = cheat.splitlines().index("        try:") + 1
    assert static_audit(cheat) == (
        Finding(Category.FALLBACK, static_audit(cheat)[0].message, line),
    )
    assert "function `forward`" in static_audit(cheat)[0].message


def test_reraising_handlers_and_module_level_import_guards_are_allowed() -> None:
    source = textwrap.dedent("""
        try:
            import triton
        except ImportError:
            triton = None

        def forward(self, x):
            try:
                return launch(x)
            except RuntimeError as exc:
                raise RuntimeError("kernel failed") from exc
    """)
    assert static_audit(source) == ()


def test_unparsable_candidate_is_a_compile_error() -> None:
    (finding,) = static_audit("def forward(self, x:\n    return x\n")
    assert finding.category is Category.COMPILE_ERROR and finding.line == 1


def test_findings_are_sorted_and_unique() -> None:
    source = "import sys\nf = sys._getframe(1)\ng = sys._getframe(2)\nclass ModelNew(Model):\n    pass\n"
    findings = static_audit(source)
    assert [f.line for f in findings] == sorted(f.line for f in findings)
    assert len(set(findings)) == len(findings)
    assert {f.category for f in findings} == {Category.CHECKER_TAMPER, Category.REFERENCE_REUSE}
