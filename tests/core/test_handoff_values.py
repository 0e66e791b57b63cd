"""The hand-over of task values through a real ``weights_only`` job file: every kind arrives unchanged."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_kernelfalcon.core.handoff import UncarriableValue, to_host


class Mode(enum.IntEnum):
    FAST = 3


def through_file(value: Any, tmp_path: Path) -> Any:
    """Carry ``value`` as the child does (``to_host``, ``torch.save``) and load it as the parent does."""
    torch.save({"value": to_host(value)}, tmp_path / "result.pt")
    return torch.load(tmp_path / "result.pt", weights_only=True)["value"]


VALUES = {
    "int": 7,
    "bool": True,
    "list": [400, 800, 10],
    "empty-list": [],
    "tuple": (64, 256, 256),
    "list-of-tuples": [(3, 3), (1, 1)],
    "nested": [[1, [2, (3, 4)]], ()],
    "dict": {"kernel_size": (3, 5), "name": "conv", 7: None},
    "str": "mean",
    "none": None,
    "bools": (True, False),
    "float": 1e-5,
    "complex": 1 + 2j,
    "bytes": b"\x00\xff",
    "dtype": torch.bfloat16,
    "device": torch.device("cpu"),
    "size": torch.Size([2, 3]),
}


@pytest.mark.parametrize("value", list(VALUES.values()), ids=list(VALUES))
def test_value_kinds_arrive_unchanged(value: Any, tmp_path: Path) -> None:
    got = through_file(value, tmp_path)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("tensor", [
    torch.arange(6, dtype=torch.int64).reshape(2, 3), torch.tensor([True, False]), torch.randn(3, 4).t(),
    torch.tensor([1, 2], dtype=torch.uint8), torch.zeros(0, 5, dtype=torch.float16),
], ids=["int64-targets", "bool-mask", "transposed", "uint8", "empty-fp16"])
def test_tensors_of_every_dtype_arrive_unchanged(tensor: torch.Tensor, tmp_path: Path) -> None:
    got = through_file((tensor, [tensor]), tmp_path)
    assert type(got[0]) is torch.Tensor and got[0].dtype == tensor.dtype and torch.equal(got[0], tensor)
    assert torch.equal(got[1][0], tensor)


def test_tensor_subclasses_and_gradients_arrive_as_plain_tensors(tmp_path: Path) -> None:
    param = torch.nn.Parameter(torch.ones(2))
    got = through_file([param], tmp_path)[0]
    assert type(got) is torch.Tensor and not got.requires_grad and torch.equal(got, torch.ones(2))


@pytest.mark.parametrize("value, kind", [(np.float64(0.5), float), (np.int64(7), int), (Mode.FAST, int)])
def test_number_subclasses_become_builtins(value: Any, kind: type, tmp_path: Path) -> None:
    got = through_file(value, tmp_path)
    assert type(got) is kind and got == value


@pytest.mark.parametrize("value, where", [
    ([1, (2, slice(0, 1))], "value[1][1] of type builtins.slice"),
    ({"f": lambda: 0}, "value['f'] of type builtins.function"),
    (np.zeros(3), "value of type numpy.ndarray"),
    ({(1, 2): 3}, "value of type builtins.dict"),
])
def test_uncarriable_values_are_refused_by_name(value: Any, where: str) -> None:
    with pytest.raises(UncarriableValue, match=f"^{__import__('re').escape(where)}"):
        to_host(value)


def test_nesting_is_bounded() -> None:
    deep: list[Any] = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(UncarriableValue, match="nested deeper"):
        to_host(deep)
