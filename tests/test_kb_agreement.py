"""``benchmarks/kb_agreement.py`` and ``plain_check.py --kernelbench`` on the CPU, on a few corpus candidates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"


def test_plain_check_kernelbench_mode_draws_kernelbench_seeds_and_copies_no_state() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import plain_check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from pytest_kernelfalcon.core import kernelbench as kb

    assert plain_check.kb_seeds(kb.KB_SEED, kb.KB_TRIALS) == kb.kb_trial_seeds()  # written apart, the same facts
    args = plain_check.parse_args(["t.py", "c.py", "--kernelbench", "--device", "cpu"])
    assert (args.trials, args.atol, args.rtol) == (kb.KB_TRIALS, kb.KB_TOLERANCE, kb.KB_TOLERANCE)
    assert (plain_check.parse_args(["t.py", "c.py", "--device", "cpu"]).atol, args.seed) == (1e-4, kb.KB_SEED)


def test_agreement_on_a_result_cache_and_a_correct_kernel(tmp_path: Path) -> None:
    out = tmp_path / "agreement.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "kb_agreement.py"), "--device", "cpu", "-j", "2",
                           "--only", "own_scaled_add/pointer_cache.py", "--only", "own_scaled_add/correct.py",
                           "--json", str(out), "--timeout", "90"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    data = json.loads(out.read_text())
    rows = {r["name"]: r for r in data["rows"]}
    cache = rows["corpus/own_scaled_add/pointer_cache.py"]
    assert (cache["ours"], cache["kernelbench"], cache["plain"], cache["agree"]) == ("result_reuse", "pass", "pass",
                                                                                      True)
    assert cache["why"] == "address reuse" and cache["sizes"] == "cols=500, rows=18"
    assert rows["corpus/own_scaled_add/correct.py"]["agree"] is True
    assert data["summary"]["compared"] == data["summary"]["agree"] == 2 and "agree" in done.stdout


def test_past_its_budget_no_candidate_starts(tmp_path: Path) -> None:
    out = tmp_path / "agreement.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "kb_agreement.py"), "--device", "cpu",
                           "--only", "own_tanh/", "--budget", "0", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    data = json.loads(out.read_text())
    assert done.returncode == 0 and data["summary"]["compared"] == 0 and data["rows"], done.stderr
    assert all(r["note"] == "not run: budget" for r in data["rows"])
