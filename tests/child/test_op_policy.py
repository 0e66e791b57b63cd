"""The child's run-time op policy and integrity snapshot, on real dispatch-mode op names."""

from __future__ import annotations

import pytest

from pytest_kernelfalcon.child import op_policy
from pytest_kernelfalcon.child.integrity import integrity_changes, integrity_snapshot
from pytest_kernelfalcon.child.op_policy import is_allowed_op


@pytest.mark.parametrize("name", [
    "aten::empty.memory_format", "aten.empty_like.default", "aten::empty_strided", "aten.new_zeros.default",
    "aten::full", "aten.scalar_tensor.default", "aten::randn", "aten.normal_.default", "aten.uniform_.default",
    "aten::view", "aten._unsafe_view.default", "aten.reshape.default", "aten::as_strided", "aten.permute.default",
    "aten.transpose.int", "aten::t", "aten.expand.default", "aten::squeeze.dim", "aten.unsqueeze.default",
    "aten.slice.Tensor", "aten.select.int", "aten::narrow", "aten.split.Tensor", "aten.unbind.int",
    "aten::alias", "aten.detach.default", "aten.lift_fresh.default", "aten::contiguous", "aten.clone.default",
    "aten.copy_.default", "aten._to_copy.default", "aten.fill_.Scalar", "aten.zero_.default", "aten::set_",
    "aten.resize_.default", "aten._local_scalar_dense.default", "aten::is_nonzero", "aten.sym_size.int",
    "aten::stride", "aten::dim", "aten.record_stream.default", "view",
])
def test_allocation_views_copies_and_metadata_are_allowed(name: str) -> None:
    assert is_allowed_op(name)


@pytest.mark.parametrize("name", [
    "aten::relu", "aten.relu.default", "aten.add.Tensor", "aten::add_.Tensor", "aten.mul.Tensor",
    "aten.sum.dim_IntList", "aten.mm.default", "aten::addmm", "aten.bmm.default", "aten.convolution.default",
    "aten._softmax.default", "aten.index.Tensor", "aten.index_put_.default", "aten.cat.default",
    "aten.where.self", "aten.gelu.default", "aten.max.dim", "aten.exp.default", "aten.masked_fill_.Scalar",
    "aten.gather.default", "prims::add", "relu",
])
def test_compute_ops_are_not_allowed(name: str) -> None:
    assert not is_allowed_op(name)


def test_policy_matches_op_names_a_real_dispatch_mode_records() -> None:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    x = torch.randn(4, 6)
    with Recorder() as allowed:
        out = torch.empty_like(x)
        out.copy_(x.t().contiguous().t())
        x.view(-1).reshape(6, 4).unsqueeze(0).permute(0, 2, 1)[0, 1:3]
        torch.zeros(3).fill_(2.0)[0].item()
    assert allowed.ops and all(is_allowed_op(op) for op in allowed.ops), allowed.ops
    for compute in (lambda: torch.relu(x), lambda: x + 1, lambda: x @ x.t(), lambda: x.sum(), lambda: torch.cat([x, x])):
        with Recorder() as recorder:
            compute()
        assert not all(is_allowed_op(op) for op in recorder.ops), recorder.ops


def test_integrity_snapshot_is_stable_and_names_replaced_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    snapshot = integrity_snapshot()
    assert {"torch.allclose", "torch.Tensor.__eq__", "builtins.open", "triton.runtime.jit.JITFunction.run",
            "pytest_kernelfalcon.child.op_policy.is_allowed_op"} <= set(snapshot)
    assert integrity_changes(snapshot) == []
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self: self)
    monkeypatch.setattr(op_policy.op_base_name, "__code__", (lambda name: "view").__code__)
    assert integrity_changes(snapshot) == [
        "pytest_kernelfalcon.core.ops.op_base_name.__code__", "torch.Tensor.cpu", "torch.allclose",
    ]
