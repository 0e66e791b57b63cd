"""Sum ``kernelfalcon selftest --json`` files into the numbers issue #13 asks for (markdown on stdout).

usage: python3 benchmarks/selftest_summary.py RUN.json [RUN.json ...]

Prints, per file and in total: tasks, ok, passed as their own candidate (a), torch copy rejected (b),
defects, cannot run (grouped by reason), not run, low-signal / degenerate / nondeterministic / int-or-bool
input counts; then each defect, each degenerate and each nondeterministic task with its reason.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

KEYS = ("tasks", "ok", "own_passed", "copy_rejected", "defect", "cannot_run", "not_run", "low_signal",
        "degenerate", "nondeterministic", "int_or_bool_inputs")


def reason(detail: str) -> str:
    """A cannot-run detail without its task-specific parts, to group tasks by cause."""
    if "Hugging Face" in detail or "from_pretrained" in detail:
        return "needs transformers and a Hugging Face hub download (from_pretrained)"
    missing = re.search(r"the task imports ([\w.,' ]+?)[,;]? (not installed|which this machine lacks)", detail)
    if missing:
        return f"missing package: {missing.group(1).strip(chr(39))}"
    if re.search(r"out of memory", detail, re.IGNORECASE):
        return "out of memory"
    return detail[:120]


def main(paths: list[str]) -> int:
    """Print the summary of the given self-test JSON files."""
    total: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    print("| run | complete | " + " | ".join(KEYS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in KEYS) + " |")
    for path in paths:
        body = json.loads(Path(path).read_text())
        counts, meta = body["counts"], body["meta"]
        total.update({k: counts.get(k, 0) for k in KEYS})
        rows += body["tasks"]
        print(f"| {Path(path).stem} | {meta.get('complete')} | " + " | ".join(str(counts.get(k, 0)) for k in KEYS)
              + " |")
    print("| **total** | | " + " | ".join(f"**{total[k]}**" for k in KEYS) + " |\n")
    causes = Counter(reason(r["detail"]) for r in rows if r["status"] == "cannot_run")
    print("cannot run here, by reason:" + ("" if causes else " none"))
    for cause, n in causes.most_common():
        print(f"- {n}: {cause}")
    for title, pick in (("defects", lambda r: r["status"] == "defect"),
                        ("degenerate", lambda r: r["facts"] and r["facts"]["degenerate"]),
                        ("nondeterministic", lambda r: r["facts"] and r["facts"]["nondeterministic"]),
                        ("low-signal", lambda r: r["facts"] and r["facts"]["low_signal"])):
        picked = [r for r in rows if pick(r)]
        print(f"\n{title} ({len(picked)}):")
        for r in picked:
            f = r["facts"] or {}
            why = r["detail"] if title == "defects" else "; ".join(
                {"degenerate": f.get("degenerate", []), "nondeterministic": f.get("nondeterministic", []),
                 "low-signal": f.get("low_signal", [])}[title])
            print(f"- {r['task']}: {why}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: selftest_summary.py RUN.json [RUN.json ...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
