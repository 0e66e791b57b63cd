"""``kernelfalcon report show|compare|merge``: print, compare and merge JSON run reports.

Exit codes: 0 ok; 1 ``compare`` found a regression (a task that passed in OLD
fails in NEW by our verdict: the KernelBench-comparable one is shown, never gated, or with ``--fail-on-slower`` a speed-up that dropped beyond the
threshold); 2 usage error, unreadable report, or reports that cannot be merged
(overlapping tasks, different config/provider/model/prompts).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_kernelfalcon.reports.gate import Comparison, compare_reports
from pytest_kernelfalcon.reports.report import (
    ReportError,
    build_report,
    load_report,
    outcomes_of,
    plot_note,
    summary_tables,
    write_report,
)

# config keys allowed to differ between the shards of one run
PER_SHARD_CONFIG = frozenset({
    "falcon_shard", "falcon_report", "falcon_baseline", "falcon_fail_under", "falcon_run_dir", "falcon_resume",
    "shard", "report", "baseline", "run_dir",
})
SHARD_CONFIG = ("falcon_shard", "shard")
# meta keys that must agree between shards
SHARED_META = ("provider", "model", "prompt_hashes")
# meta keys kept per shard in the merged report's ``merged_from``
MERGED_FROM = ("shard", "run_id", "run_dir", "gpu", "started", "finished", "versions")


def _parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``kernelfalcon report``."""
    parser = argparse.ArgumentParser(prog="kernelfalcon report", description=plain_text(__doc__ or ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print a report as tables")
    show.add_argument("report")
    compare = sub.add_parser("compare", help="compare two reports task by task")
    compare.add_argument("old")
    compare.add_argument("new")
    compare.add_argument("--threshold", type=float, default=0.1,
                         help="relative speed-up change that counts (default 0.1 = 10%%)")
    compare.add_argument("--fail-on-slower", action="store_true",
                         help="also exit 1 when a task's speed-up dropped beyond the threshold")
    merge = sub.add_parser("merge", help="merge the reports of shards into one")
    merge.add_argument("-o", "--output", required=True, help="where to write the merged report")
    merge.add_argument("reports", nargs="+")
    return parser


def plain_text(doc: str) -> str:
    """Return a docstring as plain text for ``--help`` (reST literals unquoted)."""
    return doc.replace("``", "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kernelfalcon report``; return the exit code."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help exits 0, a usage error 2
        return int(exc.code or 0)
    try:
        if args.command == "show":
            return show(args.report)
        if args.command == "compare":
            return compare(args.old, args.new, args.threshold, args.fail_on_slower)
        return merge(args.output, args.reports)
    except ReportError as exc:
        print(f"kernelfalcon report: {exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, AttributeError) as exc:  # a field the structural check does not cover
        print(f"kernelfalcon report: malformed report: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


def show(path: str) -> int:
    """Print the report at ``path`` as tables; return 0."""
    report = load_report(path)
    meta = report["meta"]
    head = [f"{k}: {meta.get(k)}" for k in ("source", "provider", "model", "gpu", "shard") if meta.get(k)]
    print("\n".join([f"report {path}", *head, "", summary_tables(report)]))
    return 0


def compare(old_path: str, new_path: str, threshold: float, fail_on_slower: bool) -> int:
    """Print the differences between two reports; return 1 on a regression."""
    result = compare_reports(load_report(old_path), load_report(new_path), threshold)
    print(format_comparison(result, threshold))
    regressed = bool(result.newly_failing) or (fail_on_slower and bool(result.slower))
    return 1 if regressed else 0


def format_comparison(result: Comparison, threshold: float) -> str:
    """Return the human-readable text of a comparison."""
    lines = [
        f"newly failing: {len(result.newly_failing)}, newly passing: {len(result.newly_passing)}, "
        f"faster: {len(result.faster)}, slower: {len(result.slower)} (threshold {100 * threshold:g}%)"
    ]
    for title, ids in (("newly failing", result.newly_failing), ("newly passing", result.newly_passing),
                       ("only in old", result.only_old), ("only in new", result.only_new)):
        lines += [f"{title}: {task_id}" for task_id in ids]
    for title, changes in (("faster", result.faster), ("slower", result.slower)):
        lines += [f"{title}: {t} {old:.2f}x -> {new:.2f}x" for t, old, new in changes]
    if result.prompts_changed:
        lines.append(f"prompts changed: {', '.join(result.prompts_changed)}")
    lines.append(f"pass rate (ours, gated): {_pct(result.pass_rates[0])} -> {_pct(result.pass_rates[1])}; "
                 f"KernelBench-comparable (not gated): {_pct(result.comparable_rates[0])} -> "
                 f"{_pct(result.comparable_rates[1])}")
    return "\n".join(lines)


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def merge(output: str, paths: Sequence[str]) -> int:
    """Merge the shard reports at ``paths`` into ``output``; return 0."""
    merged = merge_reports([load_report(p) for p in paths])
    written = write_report(output, merged)
    print(f"merged {len(paths)} report(s), {len(merged['tasks'])} task(s): {', '.join(map(str, written))}")
    if (note := plot_note(written)) is not None:
        print(note)
    return 0


def merge_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return one report holding the tasks of ``reports``; raise ``ReportError`` when they don't fit."""
    if not reports:
        raise ReportError("nothing to merge")
    _check_compatible(reports)
    _check_disjoint(reports)
    outcomes = [o for r in reports for o in outcomes_of(r)]
    return build_report(outcomes, _merged_meta(reports))


def _shared_config(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return the run config without the keys each shard sets for itself."""
    return {k: v for k, v in (meta.get("config") or {}).items() if k not in PER_SHARD_CONFIG}


def _check_compatible(reports: Sequence[Mapping[str, Any]]) -> None:
    """Raise ``ReportError`` when the reports come from differently configured runs."""
    first = reports[0]["meta"]
    for index, report in enumerate(reports[1:], start=2):
        meta = report["meta"]
        if _shared_config(meta) != _shared_config(first):
            keys = sorted(k for k in set(_shared_config(meta)) | set(_shared_config(first))
                          if _shared_config(meta).get(k) != _shared_config(first).get(k))
            raise ReportError(f"report {index} was run with another config than report 1 (keys: {keys})")
        for key in SHARED_META:
            if meta.get(key) != first.get(key):
                raise ReportError(f"report {index} differs from report 1 in {key!r}")


def _check_disjoint(reports: Sequence[Mapping[str, Any]]) -> None:
    """Raise ``ReportError`` when a task appears in more than one report."""
    seen: dict[str, int] = {}
    for index, report in enumerate(reports, start=1):
        for task in report["tasks"]:
            if task["task_id"] in seen:
                raise ReportError(
                    f"task {task['task_id']} is in report {seen[task['task_id']]} and report {index}")
            seen[task["task_id"]] = index


def _common(values: list[Any]) -> Any:
    """Return the value all entries share, else the distinct values as a list."""
    distinct = [v for i, v in enumerate(values) if v not in values[:i]]
    return distinct[0] if len(distinct) == 1 else distinct


def _merged_config(metas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return the shared config; a per-shard key keeps its value only where every shard agrees."""
    configs = [m.get("config") or {} for m in metas]
    merged = dict(configs[0])
    for key in PER_SHARD_CONFIG & set(merged):
        values = [c.get(key) for c in configs]
        merged[key] = values[0] if key not in SHARD_CONFIG and _common(values) == values[0] else None
    return merged


def _merged_meta(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return the merged meta: shared fields, the span of times, what each shard had for itself."""
    metas = [r["meta"] for r in reports]
    keys = [k for m in metas for k in m if k != "merged_from"]
    merged = {k: _common([m.get(k) for m in metas]) for k in dict.fromkeys(keys)}
    started = [m["started"] for m in metas if m.get("started")]
    finished = [m["finished"] for m in metas if m.get("finished")]
    merged.update(
        config=_merged_config(metas),
        shard=None,
        started=min(started) if started else None,
        finished=max(finished) if finished else None,
        merged_from=[{k: m.get(k) for k in MERGED_FROM} | {"config": {k: v for k, v in (m.get("config") or {}).items()
                                                                       if k in PER_SHARD_CONFIG}}
                     for m in metas],
    )
    return merged


if __name__ == "__main__":
    raise SystemExit(main())
