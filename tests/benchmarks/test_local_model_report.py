"""``benchmarks/local_model.py report`` on the recorded 2026-12-05 local-model run: the per-task and per-stage
token columns take the server's own counts where the stream carried no usage."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent.parent
RUN = REPO / "benchmarks" / "results" / "2026-12-05-cpu-local-model" / "staged"


def local_model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_model", REPO / "benchmarks" / "local_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_task_tokens_come_from_the_server_log_where_the_stream_carried_none() -> None:
    lm = local_model()
    run_dir = next((RUN / "runs").glob("*/"))
    calls = lm.per_call(run_dir, RUN / "server.log", "2026-12-05T19:04:36Z")
    rows = {r["task"]: r for r in lm.task_rows(run_dir, ["level1/19_ReLU", "level1/21_Sigmoid"],
                                               lm.server_tokens(calls))}
    sigmoid = rows["level1/21_Sigmoid"]  # fuse 498 read / 242 generated, generate 1206 / 247 (server log)
    assert (sigmoid["tokens_in"], sigmoid["tokens_out"]) == (498 + 1206, 242 + 247)
    assert (sigmoid["server_counted"], sigmoid["unreported_calls"]) == (2, 0)
    relu = rows["level1/19_ReLU"]  # its fuse call was answered by the server of the run before the resume
    assert (relu["tokens_in"], relu["tokens_out"], relu["unreported_calls"]) == (1334, 245, 1)
    assert lm.token_note(relu) == " (1 call(s) from the server log; 1 call(s) without usage)"


def test_stage_rows_and_the_markdown_show_the_server_counts() -> None:
    lm = local_model()
    run_dir = next((RUN / "runs").glob("*/"))
    server = lm.server_tokens(lm.per_call(run_dir, RUN / "server.log", "2026-12-05T19:04:36Z"))
    stages = {(s["task"], s["stage"]): s for s in lm.stage_rows(run_dir, server)}
    generate = stages[("level1/21_Sigmoid", "generate")]
    assert (generate["tokens_in"], generate["tokens_out"], generate["server_counted"]) == (1206, 247, 1)
    assert stages[("level1/21_Sigmoid", "extract")]["calls"] == 0
