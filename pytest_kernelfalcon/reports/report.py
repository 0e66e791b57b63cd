"""The JSON run report (schema ``kernelfalcon-report/1``), its Markdown summary, plot and tables.

Layout of a report::

    {"schema": "kernelfalcon-report/1",
     "meta": {"config": {...}, "versions": {...}, "gpu": str|None, "prompt_hashes": {name: sha256},
              "provider": str|None, "model": str|None, "source": str|None,
              "shard": {"index": I, "count": N}|None, "started": str|None, "finished": str|None},
     "aggregation": {name: how it is computed},
     "levels": {level: aggregate}, "total": aggregate,
     "tasks": [TaskOutcome.to_json(), ...]}          # sorted by task_id

Aggregates are computed from the tasks alone, so a report rebuilt from the
same tasks (one run, or merged shards) has the same aggregates.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.core.outcome import TaskOutcome
from pytest_kernelfalcon.reports.comparable import AGGREGATION as COMPARABLE_AGGREGATION
from pytest_kernelfalcon.reports.comparable import (
    comparable_rate,
    differing_table,
    hybrid_count,
    kernelbench_aggregate,
    kernelbench_cell,
)

SCHEMA = "kernelfalcon-report/1"
FAST_P = (0.0, 1.0, 1.5, 2.0)
BASELINES = ("eager", "compile")
BASELINE_COLOURS = {"eager": "tab:blue", "compile": "tab:orange"}  # one colour per legend entry, set, not cycled
AGGREGATION = {
    "pass_rate": "passed tasks / tasks in the level",
    "fast_p": "tasks that passed with speedup > p / tasks in the level (KernelBench fast_p); "
    "speedup = baseline median time / ModelNew median time, per baseline (eager, compile)",
    "geomean_speedup": "geometric mean of the speedups of the passed, timed tasks, per baseline",
    "wall_s": "sum of per-task wall times (not the elapsed time of the run)",
    "cost_usd": "sum of per-task costs; cost_complete is false when a task's price was unknown; shown n/a "
                "(paid false) when no answer came live (replayed, scripted or judged: nothing spent by this run)",
    **COMPARABLE_AGGREGATION,
}
META_DEFAULTS: dict[str, Any] = {
    "config": {},
    "gpu": None,
    "prompt_hashes": {},
    "provider": None,
    "model": None,
    "source": None,
    "shard": None,
    "started": None,
    "finished": None,
}


class ReportError(ValueError):
    """A report file is missing, unreadable, or of another schema."""


def package_versions() -> dict[str, str | None]:
    """Return the versions of python, torch, triton, pytest and pytest-kernelfalcon (no imports)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("torch", "triton", "pytest", "pytest-kernelfalcon", "anthropic", "openai"):
        try:
            found[name.replace("-", "_")] = version(name)
        except PackageNotFoundError:
            found[name.replace("-", "_")] = None
    if found["pytest_kernelfalcon"] is None:  # run from a source tree, not installed
        from pytest_kernelfalcon import __version__

        found["pytest_kernelfalcon"] = __version__
    return found


def prompt_hashes(templates: Mapping[str, str]) -> dict[str, str]:
    """Return ``{template name: sha256 of its text}``."""
    return {name: hashlib.sha256(text.encode("utf-8")).hexdigest() for name, text in sorted(templates.items())}


def build_report(outcomes: Iterable[TaskOutcome], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return the report dict for ``outcomes`` and run ``meta`` (missing meta keys get defaults)."""
    ordered = sorted(outcomes, key=lambda o: o.task_id)
    ids = [o.task_id for o in ordered]
    if len(ids) != len(set(ids)):
        dupes = sorted(t for t, n in Counter(ids).items() if n > 1)
        raise ReportError(f"duplicate task ids in one report: {dupes}")
    full_meta = {**META_DEFAULTS, "versions": package_versions(), **dict(meta)}
    by_level: dict[str, list[TaskOutcome]] = {}
    for outcome in ordered:
        by_level.setdefault(outcome.level, []).append(outcome)
    return {
        "schema": SCHEMA,
        "meta": full_meta,
        "aggregation": dict(AGGREGATION),
        "levels": {level: aggregate(group) for level, group in sorted(by_level.items())},
        "total": aggregate(ordered),
        "tasks": [o.to_json() for o in ordered],
    }


def aggregate(outcomes: Sequence[TaskOutcome]) -> dict[str, Any]:
    """Return the aggregate numbers of one group of outcomes (a level, or the whole run)."""
    n = len(outcomes)
    passed = sum(o.passed for o in outcomes)
    failed = [o for o in outcomes if not o.passed]
    return {
        "tasks": n,
        "passed": passed,
        "failed": n - passed,
        "pass_rate": passed / n if n else 0.0,
        "kernelbench": kernelbench_aggregate(outcomes),
        "hybrid": hybrid_count(outcomes),
        "low_signal": sum(o.low_signal for o in outcomes),
        "failures_by_stage": dict(sorted(Counter(o.stage or "unknown" for o in failed).items())),
        "failures_by_category": dict(sorted(Counter(o.category or "unknown" for o in failed).items())),
        "llm": usage_totals(outcomes),
        "wall_s": sum(o.wall_s for o in outcomes),
        "speed": speed_stats(outcomes),
    }


def usage_totals(outcomes: Sequence[TaskOutcome]) -> dict[str, Any]:
    """Return summed LLM calls, tokens and cost (known costs only; see ``cost_complete``)."""
    fields = ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "unreported_calls")
    totals: dict[str, Any] = {f: sum(getattr(o.usage, f) for o in outcomes) for f in fields}
    totals["cost_usd"] = sum(o.usage.cost_usd or 0.0 for o in outcomes)
    totals["cost_complete"] = all(o.usage.cost_usd is not None for o in outcomes)
    totals["paid"] = any(o.source == "live" for o in outcomes)  # replayed, scripted, judged: nothing spent now
    return totals


def speedup_of(outcome: TaskOutcome, baseline: str) -> float | None:
    """Return the outcome's speedup against ``baseline`` ("eager" or "compile")."""
    return outcome.speedup_eager if baseline == "eager" else outcome.speedup_compile


def speed_stats(outcomes: Sequence[TaskOutcome]) -> dict[str, Any] | None:
    """Return fast_p and geometric-mean speedups per baseline, or ``None`` when nothing was timed."""
    if not any(o.speedup_eager is not None or o.speedup_compile is not None for o in outcomes):
        return None
    n = len(outcomes)
    stats: dict[str, Any] = {}
    for baseline in BASELINES:
        speeds = [s for o in outcomes if o.passed and (s := speedup_of(o, baseline)) is not None]
        stats[baseline] = {
            "timed": len(speeds),
            "fast_p": {f"{p:g}": (sum(s > p for s in speeds) / n if n else 0.0) for p in FAST_P},
            "geomean_speedup": geomean(speeds),
        }
    return stats


def geomean(values: Sequence[float]) -> float | None:
    """Return the geometric mean of positive ``values``, ``None`` when empty."""
    positive = [v for v in values if v > 0]
    if not positive:
        return None
    return math.exp(sum(math.log(v) for v in positive) / len(positive))


def outcomes_of(report: Mapping[str, Any]) -> list[TaskOutcome]:
    """Return the report's tasks as ``TaskOutcome`` objects."""
    return [TaskOutcome.from_json(t) for t in report["tasks"]]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(path: str | os.PathLike[str], report: Mapping[str, Any]) -> list[Path]:
    """Write the JSON report, a Markdown summary beside it and, with matplotlib, a PNG; return the paths."""
    target = Path(path)
    atomic_write(target, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    markdown = target.with_suffix(".md")
    atomic_write(markdown, markdown_summary(report).encode("utf-8"))
    written = [target, markdown]
    plot = write_plot(target.with_suffix(".png"), report)
    return written + ([plot] if plot else [])


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the report at ``path``; raise ``ReportError`` when unreadable or of another schema."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"cannot read report {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not JSON: {exc}") from exc
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != SCHEMA:
        found = f"schema {schema!r}" if schema else "no 'schema' key"
        raise ReportError(f"{path} is not a {SCHEMA} report ({found}); this version reads {SCHEMA}")
    from pytest_kernelfalcon.reports.validate import report_problem

    problem = report_problem(data)
    if problem is not None:
        raise ReportError(f"{path} is malformed: {problem}")
    return data


def _rate(value: float | None) -> str:
    """Format a fraction as a percentage."""
    return "-" if value is None else f"{100 * value:.1f}%"


def _speed(value: float | None) -> str:
    """Format a speedup."""
    return "-" if value is None else f"{value:.2f}x"


def _groups(report: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Return ``(name, aggregate)`` rows: each level, then the total."""
    return [*report["levels"].items(), ("total", report["total"])]


def summary_tables(report: Mapping[str, Any], tablefmt: str = "simple") -> str:
    """Return the report's tables (pass rates, failures, LLM use, speed) as text."""
    from tabulate import tabulate

    groups = _groups(report)
    parts = [
        tabulate(
            [(n, a["tasks"], a["passed"], a["failed"], _rate(a["pass_rate"]), _rate(comparable_rate(a)),
              a.get("hybrid", "-"), a["low_signal"]) for n, a in groups],
            headers=["level", "tasks", "passed", "failed", "pass rate (ours)", "KernelBench-comparable", "hybrid",
                     "low signal"],
            tablefmt=tablefmt,
        )
    ]
    if (differ := differing_table(report, tablefmt)) is not None:
        parts.append(differ)
    failures = [(n, kind, name, count) for n, a in report["levels"].items()
                for kind in ("stage", "category") for name, count in a[f"failures_by_{kind}"].items()]
    if failures:
        parts.append(tabulate(failures, headers=["level", "by", "failure", "tasks"], tablefmt=tablefmt))
    parts.append(tabulate([_usage_row(n, a) for n, a in groups],
                          headers=["level", "LLM calls", "tokens in", "tokens out", "cost $", "wall s"],
                          tablefmt=tablefmt))
    if report["total"].get("speed"):
        parts.append(speed_table(groups, tablefmt))
    return "\n\n".join(parts)


def _usage_row(name: str, agg: Mapping[str, Any]) -> tuple[Any, ...]:
    """Return one row of the LLM-use table."""
    llm = agg["llm"]
    if not llm.get("paid", True):
        cost = "n/a"
    else:
        cost = f"{llm['cost_usd']:.4f}" + ("" if llm["cost_complete"] else " (partial)")
    unreported = llm.get("unreported_calls", 0)
    tokens_out = f"{llm['output_tokens']}" + (f" ({unreported} call(s) unreported)" if unreported else "")
    return (name, llm["calls"], llm["input_tokens"], tokens_out, cost, f"{agg['wall_s']:.1f}")


def speed_table(groups: Sequence[tuple[str, Mapping[str, Any]]], tablefmt: str) -> str:
    """Return the fast_p / geometric-mean table, one row per level and baseline."""
    from tabulate import tabulate

    rows = []
    for name, agg in groups:
        for baseline, stats in (agg.get("speed") or {}).items():
            fast = [_rate(stats["fast_p"][f"{p:g}"]) for p in FAST_P]
            rows.append((name, baseline, stats["timed"], *fast, _speed(stats["geomean_speedup"])))
    headers = ["level", "vs", "timed", *(f"fast_{p:g}" for p in FAST_P), "geomean"]
    return tabulate(rows, headers=headers, tablefmt=tablefmt)


def markdown_summary(report: Mapping[str, Any]) -> str:
    """Return the Markdown summary written beside the JSON report."""
    meta = report["meta"]
    lines = ["# kernelfalcon report", ""]
    for key in ("source", "provider", "model", "gpu", "shard", "started", "finished"):
        lines.append(f"- {key}: {meta.get(key) if meta.get(key) is not None else '-'}")
    versions = ", ".join(f"{k} {v}" for k, v in sorted((meta.get("versions") or {}).items()))
    config = meta.get("config") or {}
    policy = (f"precision {config.get('falcon_precision', 'fp32')}, torch allowed: "
              f"{', '.join(config.get('falcon_allow_torch') or ()) or 'none'}")
    lines += [f"- versions: {versions}", f"- check profiles: {_profiles(report)}", f"- policy: {policy}", "",
              summary_tables(report, tablefmt="github"), ""]
    lines += ["## How the numbers are aggregated", ""]
    lines += [f"- {k}: {v}" for k, v in report["aggregation"].items()]
    lines += _task_lines(report) + _failed_lines(report) + _flag_lines(report)
    return "\n".join(lines) + "\n"


def profile_of(task: Mapping[str, Any]) -> str:
    """The check profile that judged a task (``default``, ``official``, ...), from its shape plans."""
    shapes = task.get("shapes") or []
    return str(shapes[0].get("profile", "-")) if shapes and isinstance(shapes[0], Mapping) else "-"


def strength_of(task: Mapping[str, Any]) -> str:
    """How hard the check of a task was: its profile, and under the default one the drawn plans that ran
    (``sizes``, the constants grown) or that none did."""
    shapes = [s for s in task.get("shapes") or [] if isinstance(s, Mapping)]
    profile = profile_of(task)
    if profile != "default" or not shapes:
        return profile
    roles = {str(s.get("role", "task")) for s in shapes}
    grown = sorted({str(s["grown"]) for s in shapes if s.get("grown")})
    drawn = (["sizes"] if "sizes" in roles else []) + ([f"grow {', '.join(grown)}"] if grown else [])
    return "default: " + ("; ".join(drawn) if drawn else "task plan only (every drawn plan dropped)")


def _profiles(report: Mapping[str, Any]) -> str:
    counts = Counter(profile_of(t) for t in report["tasks"])
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "-"


def _task_lines(report: Mapping[str, Any]) -> list[str]:
    """Return the Markdown table with one row per task."""
    from tabulate import tabulate

    rows = [(f"`{t['task_id']}`", ("passed" + (" (hybrid)" if t.get("allowed_torch") else "")) if t["passed"]
             else "FAILED", "-" if t["passed"] else f"{t.get('stage') or '-'}/{t.get('category') or '-'}",
             kernelbench_cell(t), strength_of(t), t.get("rounds", 0), f"{float(t.get('wall_s') or 0.0):.1f}",
             _speed(t.get("speedup_eager")), _speed(t.get("speedup_compile"))) for t in report["tasks"]]
    table = tabulate(rows, headers=["task", "result", "failed at", "KernelBench", "strength", "rounds", "wall s",
                                    "vs eager",
                                    "vs compile"], tablefmt="github")
    return ["", "## Tasks", "", table]


def _failed_lines(report: Mapping[str, Any]) -> list[str]:
    """Return the Markdown list of failed tasks."""
    failed = [t for t in report["tasks"] if not t["passed"]]
    if not failed:
        return []
    lines = ["", "## Failed tasks", ""]
    for task in failed:
        detail = (task.get("detail") or "").splitlines()[:1]
        lines.append(f"- `{task['task_id']}`: {task.get('stage')}/{task.get('category')} {' '.join(detail)}")
    return lines


def _flag_lines(report: Mapping[str, Any]) -> list[str]:
    """Return the Markdown list of speed-ups the timer flagged as implausible."""
    flagged = [(t["task_id"], (t.get("extra") or {}).get("bench", {}).get("flags")) for t in report["tasks"]]
    flagged = [(tid, flags) for tid, flags in flagged if flags]
    if not flagged:
        return []
    return ["", "## Flagged speed-ups", "", *(f"- `{tid}`: {'; '.join(flags)}" for tid, flags in flagged)]


PLOT_SKIPPED = "no PNG plot: matplotlib is not installed (pip install matplotlib, or pip install -e '.[plot]')"


def plot_note(written: Sequence[Path]) -> str | None:
    """The one line that says a report was written without its PNG (no matplotlib), else ``None``."""
    wrote_report = any(p.suffix == ".json" for p in written)
    return PLOT_SKIPPED if wrote_report and not any(p.suffix == ".png" for p in written) else None


def write_plot(path: Path, report: Mapping[str, Any]) -> Path | None:
    """Write a PNG of pass rate and geomean speed-ups per level; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    levels = list(report["levels"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(levels, [100 * report["levels"][lv]["pass_rate"] for lv in levels])
    left.set(title="pass rate per level", ylabel="% passed", ylim=(0, 100))
    _plot_speed(right, levels, report)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, image.getvalue())
    return path


def _plot_speed(axis: Any, levels: list[str], report: Mapping[str, Any]) -> None:
    """Draw grouped geomean speed-up bars (eager, compile) per level on ``axis``, each from 1x to its value."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    width, shown = 0.4, [1.0]
    for shift, baseline in enumerate(BASELINES):
        values = [((report["levels"][lv].get("speed") or {}).get(baseline) or {}).get("geomean_speedup")
                  for lv in levels]
        xs = [i + shift * width for i, v in enumerate(values) if v]
        ys = [float(v) for v in values if v]
        bars = axis.bar(xs, [y - 1.0 for y in ys], width, bottom=1.0, label=f"vs {baseline}",
                        color=BASELINE_COLOURS[baseline])
        axis.bar_label(bars, labels=[f"{y:.2f}x" for y in ys], fontsize=8)
        shown += ys
    axis.axhline(1.0, color="grey", linewidth=1)
    axis.set_yscale("log")  # speed-ups are ratios: 0.5x and 2x sit equally far from 1x
    span = max(max(shown), 1 / min(shown)) * 1.3
    axis.set_ylim(1 / span, span)
    axis.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}x"))
    axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_xticks([i + width / 2 for i in range(len(levels))], levels)
    axis.set(title="geomean speed-up per level (passed, timed tasks)", ylabel="speed-up")
    axis.legend()
