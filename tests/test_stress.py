"""Many checks at once end with the verdicts they get alone (issue 22): several ``kernelfalcon verify``
processes and an xdist plugin run side by side, warm executors, GPU memory leases on one simulated card."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pytest_kernelfalcon.executor.leases import SIMULATED_ENV

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
VERIFIED = [("scaled_add", "own_scaled_add/correct.py"), ("scaled_add", "own_scaled_add/off_by_one_mask.py"),
            ("tanh_rows", "own_tanh/correct.py"), ("softmax_rows", "own_softmax_rows/fixed_length.py")]
PLUGIN = [("rms_rows", "own_rms_rows/correct.py"), ("weight_penalty", "own_weight_penalty/zeros_kernel.py"),
          ("tanh_rows", "own_tanh/exp_formula.py")]
LIMIT_S = 900


def _env(card: str) -> dict[str, str]:
    return {**os.environ, SIMULATED_ENV: f"{card}:{4 << 30}", "PYTHONPATH": str(ROOT)}


def _verify(task: str, candidate: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pytest_kernelfalcon.cli", "verify",
                             str(CORPUS / "tasks" / f"{task}.py"), str(CORPUS / candidate), "--device", "cpu",
                             "--executor", "warm", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _category(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=LIMIT_S)
    assert proc.returncode in (0, 1), err[-2000:]
    verdict = json.loads(out)
    return "pass" if verdict["passed"] else str(verdict["category"])


def _plugin(tmp: Path, env: dict[str, str], workers: int) -> subprocess.Popen[str]:
    tasks, cands = tmp / "tasks" / "level9", tmp / "cands"
    tasks.mkdir(parents=True, exist_ok=True)
    cands.mkdir(exist_ok=True)
    for task, candidate in PLUGIN:
        shutil.copy(CORPUS / "tasks" / f"{task}.py", tasks / f"{task}.py")
        shutil.copy(CORPUS / candidate, cands / f"{task}.py")
    args = ["--falcon", str(tmp / "tasks"), "--falcon-candidates", str(cands), "--falcon-device", "cpu",
            "--falcon-report", str(tmp / f"report-{workers}.json"), "--falcon-run-dir", str(tmp / "runs"),
            "-p", "no:cacheprovider", "-q", *(["-n", str(workers)] if workers > 1 else [])]
    return subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _plugin_categories(proc: subprocess.Popen[str], report: Path) -> dict[str, str]:
    out, _ = proc.communicate(timeout=LIMIT_S)
    assert proc.returncode in (0, 1), out[-3000:]
    tasks = json.loads(report.read_text())["tasks"]
    return {t["task_id"]: "pass" if t["passed"] else str(t["category"]) for t in tasks}


@pytest.mark.slow
def test_many_checks_at_once_get_the_verdicts_they_get_alone(tmp_path: Path) -> None:
    env = _env(f"stress-{uuid.uuid4().hex[:8]}")
    alone = [_category(_verify(task, cand, env)) for task, cand in VERIFIED]
    alone_plugin = _plugin_categories(_plugin(tmp_path, env, 1), tmp_path / "report-1.json")
    assert "pass" in alone and "numeric_mismatch" in alone  # a real mix of verdicts

    together = [_verify(task, cand, env) for task, cand in VERIFIED]
    plugin = _plugin(tmp_path, env, 2)
    assert [_category(p) for p in together] == alone
    assert _plugin_categories(plugin, tmp_path / "report-2.json") == alone_plugin


def test_a_plugin_item_waiting_on_the_card_ends_at_its_deadline(tmp_path: Path) -> None:
    """``--falcon-timeout`` bounds an item's waits too: a card held by another process ends it as harness_error."""
    import time

    from pytest_kernelfalcon.executor.leases import Card, lease

    name = f"held-{uuid.uuid4().hex[:8]}"
    env = {**_env(name), SIMULATED_ENV: f"{name}:{4 << 30}"}
    tasks, cands = tmp_path / "tasks" / "level9", tmp_path / "cands"
    tasks.mkdir(parents=True)
    cands.mkdir()
    shutil.copy(CORPUS / "tasks" / "scaled_add.py", tasks / "scaled_add.py")
    shutil.copy(CORPUS / "own_scaled_add" / "correct.py", cands / "scaled_add.py")
    args = ["--falcon", str(tmp_path / "tasks"), "--falcon-candidates", str(cands), "--falcon-device", "cpu",
            "--falcon-timeout", "8", "--falcon-report", str(tmp_path / "r.json"), "--falcon-run-dir",
            str(tmp_path / "runs"), "-p", "no:cacheprovider", "-q"]
    with lease(Card(f"simulated-{name}", 4 << 30), None):
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=LIMIT_S)
        took = time.monotonic() - start
    task = json.loads((tmp_path / "r.json").read_text())["tasks"][0]
    assert task["category"] == "harness_error", done.stdout[-2000:]
    assert "passed while waiting for GPU memory" in task["detail"]
    assert took < 8 + 40  # the deadline, then the session's start and end
