"""Extract stage in a real child process: shapes from a forward, repeated subgraphs merged, control flow."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_kernelfalcon.pipeline.extract import ExtractRequest, extract_subgraphs

TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.a = nn.Linear(features, features)
        self.b = nn.Linear(features, features)

    def forward(self, x):
        x = torch.relu(self.a(x))
        if x.sum() > 0:
            x = torch.relu(self.b(x))
        return x


batch_size = 8
features = 16


def get_inputs():
    return [torch.rand(batch_size, features)]


def get_init_inputs():
    return [features]
'''

FUSED = '''import torch
import torch.nn as nn


class LinearRelu(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.lin = nn.Linear(features, features)

    def forward(self, x):
        return torch.relu(self.lin(x))


class Positive(nn.Module):
    def forward(self, x):
        return x.sum() > 0


class FusedModel(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.a = LinearRelu(features)
        self.b = LinearRelu(features)
        self.pos = Positive()

    def forward(self, x):
        x = self.a(x)
        if self.pos(x).item():
            x = self.b(x)
        return x * 1.0
'''


def test_extract_merges_repeats_follows_control_flow_and_flags_outside_compute(tmp_path: Path) -> None:
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "fused.py").write_text(FUSED + "\n" + TASK.split("batch_size = 8")[1].join(["batch_size = 8", ""]))
    out = tmp_path / "out"
    result = extract_subgraphs(ExtractRequest(tmp_path / "task.py", tmp_path / "fused.py", out))
    assert result.error is None, result.error
    assert [(s.id, s.class_name, s.count) for s in result.specs] == [("sg0", "LinearRelu", 2), ("sg1", "Positive", 1)]
    sg0 = result.specs[0].data
    assert sg0["init_args"] == [16] and sg0["inputs"][0]["shape"] == [8, 16] and sg0["paths"] == ["a", "b"]
    assert {p["name"]: p["shape"] for p in sg0["parameters"]} == {"lin.weight": [16, 16], "lin.bias": [16]}
    assert dict(result.outside_ops) == {"mul": 1}  # FusedModel's own ``x * 1.0`` is reported
    data = json.loads((out / "specs.json").read_text())
    assert data["traced_on"] == "cpu" and ".item()" in FUSED  # meta cannot branch on data: real run
    namespace: dict[str, object] = {}
    exec(compile((out / "subgraphs" / "sg0.py").read_text(), "sg0.py", "exec"), namespace)
    model = namespace["Model"](*namespace["get_init_inputs"]())  # type: ignore[operator]
    assert tuple(model(*namespace["get_inputs"]()).shape) == (8, 16)  # type: ignore[operator]
    again = extract_subgraphs(ExtractRequest(tmp_path / "task.py", tmp_path / "fused.py", out))
    assert again.resumed and again.specs == result.specs
