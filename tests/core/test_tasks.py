"""Task discovery and size-constant reading/rewriting, by AST only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pytest_kernelfalcon.child.runtime import exec_file
from pytest_kernelfalcon.core.tasks import (
    discover_tasks,
    is_task_source,
    rewrite_constants,
    size_constants,
    task_level,
)

TASK = """\
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, out_channels, bias_shape):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x):
        return x + self.bias

batch_size = 128  # rows
out_channels = 16
depth = 32; height = width = 64
n: int = 4
M = 1024 * 2
flag = True
scale = 2.0
neg = -1
D, H, W = (8, 16, 32)
input_shape = (32768,)
bias_shape = (out_channels, 1, 1)

def get_inputs():
    local = 99
    return [torch.rand(batch_size, out_channels, height, width)]

def get_init_inputs():
    return [out_channels, bias_shape]
"""


def write(path: Path, text: str = TASK) -> Path:
    """Write ``text`` to ``path`` (creating parents) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_is_task_source_needs_all_three_top_level_names() -> None:
    assert is_task_source(TASK)
    assert not is_task_source(TASK.replace("def get_init_inputs", "def other"))
    assert not is_task_source(TASK.replace("class Model", "class Other"))
    assert not is_task_source("def f():\n    class Model: pass\ndef get_inputs(): pass\ndef get_init_inputs(): pass\n")
    assert not is_task_source("class Model(:\n")


def test_is_task_source_accepts_model_assignment() -> None:
    source = "class Foo: pass\nModel = Foo\ndef get_inputs(): return []\ndef get_init_inputs(): return []\n"
    assert is_task_source(source)


def test_discover_tasks_walks_directories_in_natural_order(tmp_path: Path) -> None:
    for name in ("10_B.py", "2_C.py", "1_A.py"):
        write(tmp_path / "level1" / name)
    write(tmp_path / "level2" / "sub" / "3_D.py")
    write(tmp_path / "level1" / "__pycache__" / "9_X.py")
    write(tmp_path / "level1" / ".hidden" / "9_Y.py")
    write(tmp_path / "level1" / "conftest.py")
    write(tmp_path / "level1" / "test_9_Z.py")
    write(tmp_path / "level1" / "helper.py", "x = 1\n")
    write(tmp_path / "level1" / "broken.py", TASK + "\ndef (:\n")
    (tmp_path / "level1" / "latin1.py").write_bytes(b"x = '\xe9'\n")
    tasks = discover_tasks([tmp_path])
    assert [t.id for t in tasks] == ["level1/1_A", "level1/2_C", "level1/10_B", "level2/3_D"]
    assert tasks[0].name == "1_A" and tasks[0].level == "level1"
    assert tasks[0].path == tmp_path / "level1" / "1_A.py"


def test_discover_tasks_accepts_files_and_drops_duplicates(tmp_path: Path) -> None:
    task = write(tmp_path / "mine" / "relu.py")
    tasks = discover_tasks([task, tmp_path, task])
    assert [t.id for t in tasks] == ["mine/relu"]
    assert discover_tasks([tmp_path / "missing"]) == []


def test_task_level_uses_nearest_level_directory(tmp_path: Path) -> None:
    assert task_level(tmp_path / "level3" / "deep" / "x.py") == "level3"
    assert task_level(tmp_path / "corpus" / "x.py") == "corpus"


def test_missing_packages_are_reported_without_importing(tmp_path: Path) -> None:
    source = "import os, torch\nfrom kf_surely_absent_pkg.sub import thing\nfrom . import local\n" + TASK
    task = discover_tasks([write(tmp_path / "level4" / "1_T.py", source)])[0]
    assert task.missing == ("kf_surely_absent_pkg",)
    assert discover_tasks([write(tmp_path / "level1" / "1_T.py")])[0].missing == ()


def test_size_constants_reads_literal_integer_assignments() -> None:
    assert size_constants(TASK) == {
        "batch_size": 128, "out_channels": 16, "depth": 32, "height": 64, "width": 64, "n": 4,
        "M": 2048, "neg": -1, "D": 8, "H": 16, "W": 32, "input_shape[0]": 32768,
        "bias_shape[1]": 1, "bias_shape[2]": 1,
    }


def test_size_constants_last_assignment_wins_and_division_is_not_integer() -> None:
    assert size_constants("x = 4\nx = 8\ny = 8 / 2\nz = 2 ** 100\n") == {"x": 8}


def test_rewrite_keeps_everything_else_and_derived_values_follow(tmp_path: Path) -> None:
    out = rewrite_constants(TASK, {"batch_size": 2, "out_channels": 4, "M": 8, "input_shape[0]": 7, "H": 3})
    assert "batch_size = 2  # rows" in out
    assert "M = 8\n" in out and "input_shape = (7,)" in out and "D, H, W = (8, 3, 32)" in out
    assert size_constants(out)["out_channels"] == 4
    (tmp_path / "task.py").write_text(out)
    assert exec_file(tmp_path / "task.py", "kf_rewritten_task").bias_shape == (4, 1, 1)


def test_rewrite_chained_assignment_same_and_different_values() -> None:
    same = rewrite_constants(TASK, {"height": 8, "width": 8})
    assert "depth = 32; height = width = 8" in same
    split = rewrite_constants(TASK, {"height": 8})
    assert "depth = 32; height = 8; width = 64" in split
    assert size_constants(split)["width"] == 64 and size_constants(split)["height"] == 8


def test_rewrite_handles_non_ascii_columns_and_negatives() -> None:
    source = 'label = "größe"; size = 64\nshift = -1\n'
    out = rewrite_constants(source, {"size": 5, "shift": -3})
    assert out == 'label = "größe"; size = 5\nshift = (-3)\n'
    ast.parse(out)


def test_rewrite_rejects_unknown_names_and_non_integers() -> None:
    with pytest.raises(ValueError, match="local"):
        rewrite_constants(TASK, {"local": 3})
    with pytest.raises(ValueError, match="flag"):
        rewrite_constants(TASK, {"flag": 3})
    with pytest.raises(ValueError, match="int"):
        rewrite_constants(TASK, {"n": True})


def test_rewrite_changes_every_top_level_assignment_of_a_name() -> None:
    assert rewrite_constants("x = 4\nx = 8\n", {"x": 2}) == "x = 2\nx = 2\n"


def test_task_files_run_under_a_private_module_name(tmp_path: Path) -> None:
    source = "from dataclasses import dataclass\n@dataclass\nclass C:\n    n: int = 3\nname = __name__\nvalue = C().n\n"
    (tmp_path / "t.py").write_text(source)
    module = exec_file(tmp_path / "t.py", "kf_private_task")
    assert module.name == "kf_private_task" != "__main__"
    assert module.value == 3 and module.__file__ == str(tmp_path / "t.py")
