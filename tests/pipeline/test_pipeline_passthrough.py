"""Fuse only where it helps: the AST decision on real KernelBench tasks and the fused file that keeps the
task's module; a fuse answer's constructor checked against ``Model``'s before it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pytest_kernelfalcon.pipeline.fuse import constructor_problem, init_signature
from pytest_kernelfalcon.pipeline.passthrough import fuse_plan, passthrough_fused

FORWARD = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, n):
        super(Model, self).__init__()
        self.n = n

    def forward(self, x):
{body}


def get_inputs():
    return [torch.randn(4, 4)]


def get_init_inputs():
    return [3]
'''


def task(body: str) -> str:
    return FORWARD.format(body="\n".join(f"        {line}" for line in body.splitlines()))


@pytest.mark.parametrize("name, skip, why", [
    ("level1/19_ReLU", True, "one op (relu)"),
    ("level1/21_Sigmoid", True, "one op (sigmoid)"),
    ("level1/23_Softmax", True, "one op (softmax)"),
    ("level2/76_Gemm_Add_ReLU", True, "a chain of 3 ops (self.gemm, add, relu)"),
    ("level2/99_Matmul_GELU_Softmax", False, "a contraction (self.linear) and a reduction (softmax)"),
    ("level3/11_VGG16", False, "2 contractions"),
    ("level3/10_ResNet101", False, "other classes (Bottleneck)"),
])
def test_the_fuse_call_is_skipped_only_where_forward_is_one_subgraph(kernelbench_dir: Path, name: str,
                                                                     skip: bool, why: str) -> None:
    plan = fuse_plan((kernelbench_dir / f"{name}.py").read_text())
    assert plan.skip is skip and why in plan.reason, plan


@pytest.mark.parametrize("body, why", [
    ("if x.sum() > 0:\n    return x\nreturn -x", "If at line"),
    ("for _ in range(self.n):\n    x = torch.tanh(x)\nreturn x", "For at line"),
    ("return torch.stack([torch.relu(t) for t in x])", "ListComp"),
    ("return torch.matmul(x, x) @ x", "2 contractions"),
    ("return x", "computes nothing"),
])
def test_control_flow_and_several_contractions_go_to_the_fuse_stage(body: str, why: str) -> None:
    plan = fuse_plan(task(body))
    assert not plan.skip and why in plan.reason, plan


def test_views_are_not_ops_and_a_chain_is_one_subgraph() -> None:
    plan = fuse_plan(task("y = x.view(-1).contiguous()\nreturn torch.clamp(y * self.n, min=0.0).sum()"))
    assert plan.skip and "a chain of 3 ops (clamp, sum, mult)" in plan.reason, plan


def test_the_kept_module_is_the_task_renamed_with_its_constructor_passed_on() -> None:
    fused = passthrough_fused(task("return torch.relu(x) * self.n"))
    tree = ast.parse(fused)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes == ["TaskModule", "FusedModel"]
    assert "super(TaskModule, self).__init__()" in fused and "Model(" not in fused.replace("FusedModel(", "")
    namespace: dict[str, object] = {}
    exec(compile(fused, "fused.py", "exec"), namespace)  # our own file, built from our own task text
    import torch

    model = namespace["FusedModel"](*namespace["get_init_inputs"]())  # type: ignore[operator]
    x = torch.randn(4, 4)
    assert torch.equal(model(x), torch.relu(x) * 3) and model.body.n == 3


def test_a_name_the_task_already_binds_is_not_reused() -> None:
    source = task("return torch.relu(x)").replace("def get_inputs", "TaskModule = None\n\n\ndef get_inputs")
    assert "class TaskModule_" in passthrough_fused(source)


def test_renaming_keeps_non_ascii_text_in_place() -> None:
    source = task("return torch.relu(x)").replace("        super(Model", "        größe = 'ß'; super(Model")
    assert "        größe = 'ß'; super(TaskModule, self).__init__()\n" in passthrough_fused(source)


FUSED = '''import torch.nn as nn
class Body(nn.Module):
    def forward(self, x):
        return x
class FusedModel(nn.Module):
    def __init__(self{params}):
        super().__init__()
        self.body = Body()
'''


@pytest.mark.parametrize("params, ok", [(", n", True), (", n, m=2", True), ("", False), (", n, m", False),
                                        (", *args", True), (", n, *args", True)])
def test_a_fuse_answer_must_take_models_constructor_arguments(params: str, ok: bool) -> None:
    problem = constructor_problem(FUSED.format(params=params), task("return torch.relu(x)"))
    assert (problem is None) is ok, problem
    if not ok:
        assert problem is not None and "Model has `def __init__(self, n)`" in problem


def test_init_signature_drops_annotations_and_keeps_defaults() -> None:
    source = "class Model:\n    def __init__(self, a: int, b: float = 1.0, *rest, k=3, **kw):\n        pass\n"
    assert init_signature(source, "Model") == "def __init__(self, a, b=1.0, *rest, k=3, **kw)"
    assert init_signature("class Model:\n    pass\n", "Model") == "def __init__(self)"
