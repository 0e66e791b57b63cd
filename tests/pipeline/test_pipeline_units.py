"""Pure units of the pipeline: code extraction, hashing, prompts, renaming, sources, run directory."""

from __future__ import annotations

import ast
import json
import threading
from pathlib import Path

import pipeline_tiny as tiny
import pytest

from pytest_kernelfalcon.pipeline.codeblock import FormatError, code_digest, extract_code
from pytest_kernelfalcon.pipeline.compose import Kernel, compose_source
from pytest_kernelfalcon.pipeline.config import PipelineConfig
from pytest_kernelfalcon.pipeline.context import BudgetExceeded, TaskBudget
from pytest_kernelfalcon.pipeline.prompts import TEMPLATE_NAMES, load_prompts, template_hash
from pytest_kernelfalcon.pipeline.rename import prefix_kernel
from pytest_kernelfalcon.pipeline.rundir import RunDir, atomic_write_text
from pytest_kernelfalcon.pipeline.sources import fused_file, spec_task_source


def test_extract_code_takes_the_single_python_block() -> None:
    block = extract_code(tiny.answer(tiny.KERNEL), required=("ModelNew",))
    assert block.code == tiny.KERNEL
    assert block.digest == code_digest(tiny.KERNEL)


@pytest.mark.parametrize("text, message", [
    ("no code here", "no ```python"),
    ("```python\nx = 1\n```\n```python\ny = 2\n```\n", "2 ```python blocks"),
    ("```python\ndef f(:\n```\n", "does not parse"),
    ("```python\nclass Other: pass\n```\n", "does not define ModelNew"),
])
def test_extract_code_rejects_unusable_answers(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message.replace("(", r"\(")):
        extract_code(text, required=("ModelNew",))


def test_digest_ignores_comments_and_layout_but_not_code() -> None:
    noisy = "# a comment\n" + tiny.KERNEL.replace("    x = x.contiguous()", "    x = x.contiguous()  # c\n\n")
    assert code_digest(noisy) == code_digest(tiny.KERNEL)
    assert code_digest(tiny.WRONG_KERNEL) != code_digest(tiny.KERNEL)


def test_prompts_render_hash_and_override(tmp_path: Path) -> None:
    bundled = load_prompts()
    assert set(bundled.texts) == set(TEMPLATE_NAMES)
    text = bundled.render("feedback", category="compile_error", detail="line 3: boom", round=1, max_rounds=4)
    assert "compile_error" in text and "line 3: boom" in text
    with pytest.raises(KeyError):
        bundled.render("feedback", category="x")
    (tmp_path / "feedback.md").write_text("custom $category")
    custom = load_prompts(tmp_path)
    assert custom.render("feedback", category="c") == "custom c"
    assert custom.hashes()["feedback"] == template_hash("custom $category") != bundled.hashes()["feedback"]
    assert custom.hashes()["fuse"] == bundled.hashes()["fuse"]


def test_prefix_kernel_renames_top_level_names_consistently() -> None:
    renamed = prefix_kernel(tiny.KERNEL, "sg3_")
    assert set(renamed.renamed) == {"BLOCK", "scale_relu_kernel", "ModelNew"}
    tree = ast.parse(renamed.body)
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert top == {"sg3_scale_relu_kernel", "sg3_ModelNew"}
    assert "sg3_scale_relu_kernel[" in renamed.body and "BLOCK=sg3_BLOCK" in renamed.body
    assert "BLOCK: tl.constexpr" in renamed.body  # the parameter shadowing BLOCK is left alone
    assert "import triton.language as tl" in renamed.imports


def test_fused_file_appends_task_inputs_and_drops_model() -> None:
    source = fused_file(tiny.FUSED, tiny.TASK)
    names = {n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert names == {"ScaleRelu", "FusedModel", "get_inputs", "get_init_inputs"}
    assert "batch_size = 16" in source


def test_spec_task_source_shares_size_constants() -> None:
    spec = {"id": "sg0", "class_name": "ScaleRelu", "init_args_py": "[64, 2.0, (3, 3)]",
            "init_names": ["features", "scale", "kernel_size"],
            "inputs": [{"kind": "tensor", "shape": [16, 64], "dtype": "float32", "nonneg": True},
                       {"kind": "tensor", "shape": [16], "dtype": "int64", "low": 0, "high": 9}]}
    source = spec_task_source(spec, fused_file(tiny.FUSED, tiny.TASK))
    namespace: dict[str, object] = {}
    exec(compile(source, "spec.py", "exec"), namespace)
    assert namespace["Model"] is namespace["ScaleRelu"]
    assert namespace["get_init_inputs"]() == [64, 2.0, (3, 3)]  # type: ignore[operator]
    x, idx = namespace["get_inputs"]()  # type: ignore[operator]
    assert tuple(x.shape) == (16, 64) and bool((x >= 0).all()) and int(idx.max()) <= 9
    assert "size_64 = 64" in source and "get_init_inputs():\n    return [size_64, 2.0, (3, 3)]" in source


def test_a_shape_argument_shares_the_size_constants_it_holds() -> None:
    spec = {"id": "sg0", "class_name": "ScaleRelu", "init_args_py": "[512, (512,), [512, 1], ()]",
            "init_names": ["features", "bias_shape", "sizes", "empty"],
            "inputs": [{"kind": "tensor", "shape": [16, 512], "dtype": "float32"}]}
    source = spec_task_source(spec, fused_file(tiny.FUSED, tiny.TASK))
    assert "return [size_512, (size_512,), [size_512, 1], ()]" in source  # scaled together with the input
    namespace: dict[str, object] = {}
    exec(compile(source, "spec.py", "exec"), namespace)
    assert namespace["get_init_inputs"]() == [512, (512,), [512, 1], ()]  # type: ignore[operator]


def test_compose_source_rebinds_subgraph_classes(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel.py"
    kernel.write_text(tiny.KERNEL)
    source = compose_source(fused_file(tiny.FUSED, tiny.TASK), tiny.TASK, [Kernel("sg0", "ScaleRelu", kernel)])
    tree = ast.parse(source)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes == {"sg0_ModelNew", "FusedModel", "ModelNew"}  # the torch subgraph class is gone
    assert "ScaleRelu = sg0_ModelNew" in source and "class ModelNew(FusedModel):" in source
    assert source.count("import torch\n") == 1  # the fused model's imports joined the header
    assert "def get_inputs" in source and "def get_init_inputs" in source


def test_budget_counts_calls_and_dollars() -> None:
    from pytest_kernelfalcon.llm.base import Completion, TokenUsage

    budget = TaskBudget(PipelineConfig(max_llm_calls=2, budget_usd=1.0))
    answer = Completion("x", "m", None, TokenUsage(10, 5), 0.4, 0.0, "scripted")
    budget.before_call()
    budget.charge(answer)
    budget.before_call()
    budget.charge(answer)
    with pytest.raises(BudgetExceeded, match="LLM calls"):
        budget.before_call()
    assert budget.usage.calls == 2 and budget.usage.input_tokens == 20
    dollars = TaskBudget(PipelineConfig(budget_usd=0.5))
    dollars.charge(Completion("x", "m", None, TokenUsage(), 0.6, 0.0, "live"))
    with pytest.raises(BudgetExceeded, match="dollars"):
        dollars.before_call()
    assert TaskBudget(PipelineConfig(task_timeout_s=0.0)).remaining_s() <= 0


def test_temperatures_spread_over_workers() -> None:
    config = PipelineConfig(workers=4)
    temps = [config.temperature(w) for w in range(4)]
    assert temps[0] == 0.2 and temps[-1] == 1.0 and temps == sorted(set(temps))


def test_rundir_events_from_threads_are_whole_lines(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path)

    def emit(worker: int) -> None:
        for i in range(50):
            run.event({"type": "x", "worker": worker, "i": i, "pad": "y" * 500})

    threads = [threading.Thread(target=emit, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = run.events_path.read_text().splitlines()
    assert len(lines) == 200 and all(json.loads(line)["type"] == "x" for line in lines)
    assert RunDir.open(run.run_id, tmp_path).path == run.path


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path: Path) -> None:
    target = tmp_path / "a" / "f.txt"
    atomic_write_text(target, "old")

    with pytest.raises(TypeError):
        atomic_write_text(target, 123)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]  # no temp file left behind


def test_run_json_records_resumes(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    run.write_run_json({"prompts": {"fuse": "abc"}})
    RunDir.open("r1", tmp_path).write_run_json({"prompts": {"fuse": "abc"}})
    data = json.loads((run.path / "run.json").read_text())
    assert data["prompts"] == {"fuse": "abc"} and len(data["resumed"]) == 1
