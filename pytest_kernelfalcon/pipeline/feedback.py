"""Feedback that names the fix: a verdict's detail made into what the LLM reads after a failed round.

The verdict itself is saved unchanged; only the feedback text says more: a name the installed Triton
does not have is named as such, with the nearest names that exist and the expression for common ops
(``triton_names``); a numeric mismatch is laid out in a few lines (where, got, expected, how much, the
plan that was run).
"""

from __future__ import annotations

import re

from pytest_kernelfalcon.pipeline.triton_names import missing_hint, missing_names

MISMATCH = re.compile(r"^(?P<plan>.*?): output (?P<output>\d+) \(shape (?P<shape>\[[^\]]*\])\): "
                      r"first mismatch at index (?P<index>\([^)]*\)): got (?P<got>[^,]+), expected (?P<want>[^;]+); "
                      r"(?P<rest>.*)$", re.DOTALL)


def feedback_detail(category: str, detail: str) -> str:
    """Return ``detail`` as the LLM should read it for a failure of ``category``."""
    if category == "numeric_mismatch":
        return mismatch_lines(detail)
    hints = [missing_hint(m) for m in missing_names(detail)]
    return "\n".join([detail, *hints]) if hints else detail


def mismatch_lines(detail: str) -> str:
    """Return a numeric mismatch's detail in a few lines (the detail as it is when its form is not known)."""
    found = MISMATCH.match(detail)
    if found is None:
        return detail
    got, want = found["got"].strip(), found["want"].strip()
    return "\n".join([
        f"- where: output {found['output']} (shape {found['shape']}), first wrong element at index "
        f"{found['index']}",
        f"- got {got}, expected {want}",
        f"- how many: {found['rest'].strip()}",
        f"- the plan that was run: {found['plan'].strip()}",
        "Check the formula in your kernel against the module's forward at that element."])
