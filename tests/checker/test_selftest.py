"""The benchmark-wide self-test (``kernelfalcon selftest``) and what it relies on: a real subprocess CLI run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pytest_kernelfalcon.checker.selftest import torch_copy_source
from pytest_kernelfalcon.core.tasks import cannot_run_here, follow_plan

REPO = Path(__file__).resolve().parents[2]
RELU = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super(Model, self).__init__()

    def forward(self, x):
        return torch.relu(x)


batch_size = 64
dim = 96


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
'''
# state built from a module-level size constant: a correct copy must see the plan's sizes
STATEFUL = RELU.replace("        super(Model, self).__init__()\n",
                        "        super(Model, self).__init__()\n        self.h = torch.ones(batch_size, dim)\n")
STATEFUL = STATEFUL.replace("return torch.relu(x)", "return torch.relu(x) + self.h")
# dropout in training mode: both sides draw from the same seeded RNG stream, so the task is judgeable
DROPOUT = RELU.replace("return torch.relu(x)", "return torch.nn.functional.dropout(x, 0.5, training=True)")
# output from the clock: no seed makes it agree with itself, and the self-test must list it
CLOCK = "import time\n" + RELU.replace("return torch.relu(x)", "return x * 0 + float(time.perf_counter_ns() % 1000003)")
MISSING = "import kf_no_such_package_here\n" + RELU
# the machine's memory, not the harness: judged again alone, then listed as cannot run
NO_MEMORY = RELU.replace("return torch.relu(x)", "raise MemoryError('out of memory for this test')")
# a string init input and a tuple output (no level 1-3 task has either), and an all-zero second output
STRING_TUPLE = RELU.replace("    def __init__(self):\n        super(Model, self).__init__()\n",
                            "    def __init__(self, how):\n        super(Model, self).__init__()\n        self.how = how\n")
STRING_TUPLE = STRING_TUPLE.replace("return torch.relu(x)",
                                    "return (torch.relu(x) if self.how == 'relu' else x, x * 0)")
STRING_TUPLE = STRING_TUPLE.replace("    return []\n", "    return ['relu']\n")


def selftest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pytest_kernelfalcon.cli", "selftest", *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)


def test_torch_copy_renames_every_reference_to_model() -> None:
    copy = torch_copy_source(RELU)
    assert "class ModelNew(nn.Module)" in copy and "super(ModelNew, self)" in copy
    assert "Model(" not in copy.replace("ModelNew(", "")


def test_candidate_constants_follow_the_plan_by_name_only() -> None:
    candidate = "batch_size = 64\nwidth = 96\nclass ModelNew: pass\n"
    assert follow_plan(candidate, {"batch_size": 4, "dim": 8}) == "batch_size = 4\nwidth = 96\nclass ModelNew: pass\n"
    assert follow_plan("def broken(:\n", {"batch_size": 4}) == "def broken(:\n"


def test_a_missing_task_package_is_named_with_the_install_hint() -> None:
    reason = cannot_run_here(MISSING)
    assert reason is not None and "kf_no_such_package_here" in reason and "pip install" in reason
    assert cannot_run_here(RELU) is None


def test_selftest_lists_defects_and_unrunnable_tasks_apart(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name, source in {"1_relu": RELU, "2_stateful": STATEFUL, "3_clock": CLOCK, "4_missing": MISSING,
                         "5_dropout": DROPOUT, "6_string_tuple": STRING_TUPLE, "7_no_memory": NO_MEMORY}.items():
        (tasks / f"{name}.py").write_text(source)
    out = tmp_path / "selftest.json"
    done = selftest(str(tasks), "--device", "cpu", "-j", "2", "--json", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {row["task"].split("/")[-1]: row for row in json.loads(out.read_text())["tasks"]}
    assert rows["1_relu"]["status"] == "ok" and rows["1_relu"]["torch_copy"] in ("torch_compute", "no_triton_launch")
    assert rows["2_stateful"]["status"] == "ok", rows["2_stateful"]  # scaled plan reached the own candidate
    assert rows["3_clock"]["status"] == "defect" and rows["3_clock"]["own"] == "numeric_mismatch"
    assert rows["5_dropout"]["status"] == "ok", rows["5_dropout"]
    assert "same RNG stream" in rows["5_dropout"]["facts"]["nondeterministic"][0]
    assert rows["1_relu"]["facts"]["nondeterministic"] == [] and rows["1_relu"]["facts"]["degenerate"] == []
    string_tuple = rows["6_string_tuple"]
    assert string_tuple["status"] == "ok" and string_tuple["facts"]["init_kinds"] == ["str"], string_tuple
    assert string_tuple["facts"]["output_count"] == 2 and string_tuple["facts"]["degenerate"] == ["output 1 all zero"]
    assert rows["4_missing"]["status"] == "cannot_run" and "kf_no_such_package_here" in rows["4_missing"]["detail"]
    assert rows["4_missing"]["facts"] is None
    assert rows["7_no_memory"]["status"] == "cannot_run" and "even alone" in rows["7_no_memory"]["detail"]
    assert "[7/7]" in done.stderr  # progress while it runs
    assert "defects (1):" in done.stdout and "cannot run here (2):" in done.stdout


def test_selftest_usage_errors_exit_2_in_one_line(tmp_path: Path) -> None:
    done = selftest(str(tmp_path), "--device", "cpu")
    assert done.returncode == 2 and "no task files" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "1_relu.py").write_text(RELU)
    done = selftest(str(tmp_path / "1_relu.py"), str(tmp_path / "2_typo.py"), "--device", "cpu")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "2_typo.py" in done.stderr, done.stderr
    for bad in (("--shard", "3/2"), ("--shard", "x"), ("--budget", "0")):
        done = selftest(str(tmp_path), "--device", "cpu", *bad)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (bad, done.stderr)


def test_a_spent_budget_lists_tasks_as_not_run_and_a_shard_takes_every_nth(tmp_path: Path) -> None:
    for k in range(1, 5):
        (tmp_path / f"{k}_relu.py").write_text(RELU)
    out = tmp_path / "selftest.json"
    done = selftest(str(tmp_path), "--device", "cpu", "--executor", "cold", "--shard", "2/2", "--budget", "1e-9",
                    "--json", str(out))
    body = json.loads(out.read_text())
    assert done.returncode == 0 and body["meta"]["complete"], done.stdout + done.stderr
    assert [row["task"].split("/")[-1] for row in body["tasks"]] == ["2_relu", "4_relu"]
    assert body["counts"]["not_run"] == 2 and body["counts"]["ok"] == 0


def test_progress_shows_the_last_line_of_a_long_detail() -> None:
    from pytest_kernelfalcon.cli.selftest import brief

    detail = "reference process exited with code 3; stderr tail: Traceback\n" + "  File x\n" * 40 \
        + "torch.OutOfMemoryError: CUDA out of memory"
    assert brief(detail).endswith("torch.OutOfMemoryError: CUDA out of memory") and len(brief(detail)) < 260


def test_a_verdict_on_a_task_drawing_random_numbers_says_how_it_was_compared(tmp_path: Path) -> None:
    task = tmp_path / "dropout.py"
    task.write_text(DROPOUT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pytest_kernelfalcon.cli", "verify", str(task), str(task),
                           "--entry", "Model", "--no-audit", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0 and "same RNG stream" in done.stdout, done.stdout + done.stderr


# real tasks, one per kind of value the hand-over carries (level 1-3 have no string init input and no tuple
# output: the synthetic tasks above cover those): plain tensors, tuple init inputs (LayerNorm), a tuple bias
# shape (level 2), a list init input (MLP layer sizes), integer targets (CrossEntropy), a bool mask
# (masked cumsum), dropout in training mode (nondeterministic), state from size constants (VanillaRNN)
SUBSET = ("level1/19_ReLU.py", "level1/40_LayerNorm.py", "level1/95_CrossEntropyLoss.py",
          "level1/93_masked_cumsum.py", "level2/76_Gemm_Add_ReLU.py", "level2/66_Matmul_Dropout_Softmax.py",
          "level3/1_MLP.py", "level3/33_VanillaRNN.py")


def test_selftest_on_real_kernelbench_tasks_finds_no_defect(kernelbench_dir: Path, tmp_path: Path) -> None:
    paths = [str(kernelbench_dir / p) for p in SUBSET]
    out = tmp_path / "selftest.json"
    done = selftest(*paths, "--device", "cpu", "-j", "2", "--json", str(out), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(out.read_text())
    counts, n = body["counts"], len(SUBSET)
    assert body["meta"]["complete"] and {k: counts[k] for k in ("tasks", "ok", "defect", "own_passed",
                                                                "copy_rejected")} == dict.fromkeys(
        ("tasks", "ok", "own_passed", "copy_rejected"), n) | {"defect": 0}
    facts = {row["task"]: row["facts"] for row in body["tasks"]}
    assert "tuple" in facts["level1/40_LayerNorm"]["init_kinds"] and "list" in facts["level3/1_MLP"]["init_kinds"]
    assert "int" in facts["level1/95_CrossEntropyLoss"]["input_kinds"]
    assert "bool" in facts["level1/93_masked_cumsum"]["input_kinds"]
    assert facts["level2/66_Matmul_Dropout_Softmax"]["nondeterministic"]
    assert counts["int_or_bool_inputs"] == 2 and counts["nondeterministic"] == 1


CLAMPED = RELU.replace("torch.relu(x)", "torch.clamp(x, max=-1.0)").replace("torch.randn(", "torch.rand(")


def test_degenerate_is_judged_on_the_task_values_not_the_value_draws() -> None:
    """Constant on the task's own inputs (rand in [0, 1) clamped to -1), not on the default profile's drawn values:
    the task is degenerate (a constant kernel passes KernelBench's own check), whatever the draws show."""
    from pytest_kernelfalcon.checker.checker import Checker, CheckOptions
    from pytest_kernelfalcon.checker.options import Reference
    from pytest_kernelfalcon.core.facts import summarize

    checker = Checker(CheckOptions(device="cpu", shapes="default", timeout_s=120))
    try:
        reference = checker.reference(CLAMPED)
    finally:
        checker.close()
    assert isinstance(reference, Reference), reference
    task_case = next(c for c in reference.cases if c.facts)
    drawn = [t for t in task_case.trials if t["values"] != "task"]
    assert drawn and any(len(set(t["outputs"][0].flatten().tolist())) > 1 for t in drawn)  # the draws vary
    assert summarize(reference.cases, reference.probes).degenerate == ["output 0 constant"]
