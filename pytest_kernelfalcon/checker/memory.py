"""Device memory of checks: leases sized by the task's measured peak, out of memory retried alone.

Out of memory is the machine's problem until shown otherwise. Each job on a GPU holds a lease
(``executor.leases``) for its run: a task's jobs are sized from the peak its reference measured
(``TaskFacts.peak_bytes``); a task whose peak is not known yet (its first reference job) runs
alone. A job that runs out of device memory while other leases held the card is run again
alone; one that still does alone is ``out_of_memory`` for a candidate and a ``harness_error``
(cannot run here) for a reference, with the bytes it asked for and what was free.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_kernelfalcon.checker.options import Reference
    from pytest_kernelfalcon.executor.base import Executor, Job, JobResult
    from pytest_kernelfalcon.executor.leases import Card

GIB = 1 << 30
CONTEXT_BYTES = GIB  # one CUDA process: the context, torch's and Triton's modules, the allocator's slack
REFERENCE_FACTOR = 1.25  # the reference again, with the caching allocator's fragmentation
CANDIDATE_FACTOR = 1.5  # a candidate's own buffers beside the task's inputs and outputs
RESIDENT_FACTOR = 2.5  # the resident path: the comparer's inputs and references beside the candidate

OUT_OF_MEMORY = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|cudaErrorMemoryAllocation|"
                           r"CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|CUDA_ERROR_OUT_OF_MEMORY")
ASKED = re.compile(r"Tried to allocate ([\d.]+ [KMGT]?i?B)")
FREE = re.compile(r"of which ([\d.]+ [KMGT]?i?B) (?:is )?free")


@dataclass(frozen=True)
class OutOfMemory:
    """A job's device out-of-memory error: what it asked for and what was free (as the error said)."""

    asked: str | None
    free: str | None
    line: str

    def describe(self) -> str:
        """One line: asked and free, where the error said."""
        parts = [f"asked {self.asked}" if self.asked else "", f"free {self.free}" if self.free else ""]
        said = ", ".join(p for p in parts if p)
        return f"{said}: {self.line}" if said else self.line


def out_of_memory(result: JobResult) -> OutOfMemory | None:
    """The device out-of-memory error a failed job reported (its error message or stderr), else None."""
    if result.timed_out or result.cancelled:
        return None
    error = (result.report or {}).get("error") if isinstance(result.report, dict) else None
    texts = [str(error.get("message", "")), str(error.get("traceback", ""))] if isinstance(error, dict) else []
    if result.returncode != 0 or error:
        texts.append(result.stderr_tail or "")
    for text in texts:
        found = OUT_OF_MEMORY.search(text)
        if found:
            line = next((ln.strip() for ln in text.splitlines() if OUT_OF_MEMORY.search(ln)), found.group(0))
            asked, free = ASKED.search(text), FREE.search(text)
            return OutOfMemory(asked.group(1) if asked else None, free.group(1) if free else None, line[:300])
    return None


def exhausted(result: JobResult) -> str | None:
    """What a failed job ran out of, in a few words (device memory, or the disk for its files), else None."""
    from pytest_kernelfalcon.checker.blame import disk_full

    found = out_of_memory(result)
    if found is not None:
        return f"out of device memory ({found.describe()})"
    return "out of disk space for its files" if disk_full(result) is not None else None


def task_peak(reference: Reference) -> int | None:
    """The task's measured peak device bytes (its own plan's repeat forward), None when not measured."""
    peaks = [int(c.facts["repeat"]["peak_bytes"]) for c in reference.cases
             if isinstance(c.facts.get("repeat"), dict) and c.facts["repeat"].get("peak_bytes") is not None]
    return max(peaks) if peaks else None


BYTES_PER_BUDGET_ELEMENT = 32  # a budgeted plan's inputs (fp32) and what the model makes of them, generously
FILES_FACTOR = 4  # a files-path job: its inputs and outputs (known to the parent) and the buffers beside them


def reference_need(peak: int | None, budget_numel: int | None = None) -> int | None:
    """Bytes a reference job of a task with ``peak`` leases (None: not measured yet, so it runs alone); a job
    whose plans' inputs are held under ``budget_numel`` elements (the drawn plans) needs no more than those."""
    if peak is None:
        return None
    need = int(peak * REFERENCE_FACTOR) + CONTEXT_BYTES
    if budget_numel is not None:
        need = min(need, BYTES_PER_BUDGET_ELEMENT * budget_numel + CONTEXT_BYTES)
    return need


def candidate_need(peak: int | None, resident: bool, tensor_bytes: int | None = None) -> int | None:
    """Bytes a candidate job leases (the resident path runs two processes on the device); a files-path job
    whose largest trial's inputs and outputs are ``tensor_bytes`` needs no more than a few times those."""
    if peak is None:
        return None
    if resident:
        return int(peak * RESIDENT_FACTOR) + 2 * CONTEXT_BYTES
    need = int(peak * CANDIDATE_FACTOR) + CONTEXT_BYTES
    if tensor_bytes is not None:
        need = min(need, FILES_FACTOR * tensor_bytes + CONTEXT_BYTES)
    return need


def trial_bytes(reference: Reference) -> int | None:
    """The bytes of the largest trial's inputs and reference outputs (host tensors of the files path)."""
    sizes = [sum(_nbytes(v) for v in (*t.get("inputs", ()), *t.get("outputs", ())))
             for c in reference.cases for t in reference.trials_of(c)]
    return max(sizes) if sizes and not reference.resident else None


def _nbytes(value: object) -> int:
    numel, size = getattr(value, "numel", None), getattr(value, "element_size", None)
    return int(numel() * size()) if callable(numel) and callable(size) else 0


def run_leased(executor: Executor, job: Job, cancel: threading.Event | None, card: Card | None,
               need: int | None) -> JobResult:
    """Run ``job`` under a lease of ``need`` bytes (None: alone); out of memory beside others: again, alone."""
    if card is None:
        return executor.run(job, cancel)
    from pytest_kernelfalcon.executor.leases import lease

    with lease(card, need, cancel) as held:
        result = executor.run(job, cancel)
    crowded = exhausted(result)
    if crowded is None or held.nbytes is None:  # not beside others: this is the job's own failure
        return result
    with lease(card, None, cancel, stage="the whole card (out of memory beside other checks: again, alone)"):
        again = executor.run(job, cancel)
    note = f"{crowded} beside other checks ({held.beside} when granted), run again alone"
    return dataclasses.replace(again, notes=(*again.notes, note))
