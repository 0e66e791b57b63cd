"""Whose failure is it: a job that failed because of the harness or the machine, not the code it judged.

A missing package that the harness itself needs (torch, triton, numpy, this package), or any
module missing for an import made outside the candidate's and the task's own files (inside
torch or triton, or the child's own modules before the candidate was imported), is a
``harness_error``: never charged to the candidate, never fed back to the LLM.
"""

from __future__ import annotations

import re
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_kernelfalcon.executor.base import JobResult

HARNESS_PACKAGES = frozenset({"torch", "triton", "numpy", "pytest_kernelfalcon"})
JOB_FILES = re.compile(r"(^|/)(candidate|task_\d+|fused|kernel)\.py$")
MISSING = re.compile(r"(ModuleNotFoundError|ImportError): No module named '([^']+)'")
TASK_FILE = re.compile(r"(^|/)task_\d+\.py$")
FRAME = re.compile(r'File "([^"]+)", line \d+')
HUB_FAILURE = re.compile(r"huggingface\.co|couldn't connect to|LocalEntryNotFoundError|HF_HUB_OFFLINE|"
                         r"not a valid model identifier", re.IGNORECASE)


DISK_FULL = re.compile(r"No space left on device|\[Errno 28\]|Disk quota exceeded|PytorchStreamWriter failed writing|"
                       r"inline_container\.cc:\d+\]? ?\. unexpected pos \d+ vs \d+")  # torch's zip writer, short write


def harness_cause(result: JobResult, reference: bool = False) -> str | None:
    """Return the one-line cause when a failed job is the harness's or the machine's fault, else ``None``.

    In a ``reference`` job only trusted code runs (the task and the harness), so any module
    missing there is the machine's, wherever the import was made. A disk that filled up while
    the job wrote its files is the machine's too."""
    if result.timed_out or result.cancelled:
        return None
    failure = _failure_text(result)
    if failure is None:
        return None
    return _missing_module(*failure, reference) or disk_full(result)


def disk_full(result: JobResult) -> str | None:
    """The cause when a job failed because the machine's disk ran out of space (torch's zip writer says
    ``unexpected pos`` after a short write), else None."""
    text = " ".join(t for t in ((_failure_text(result) or ("", ""))[1], result.stderr_tail or "") if t)
    found = DISK_FULL.search(text)
    if found is None:
        return None
    return (f"cannot run here: the job's files could not be written, the machine's disk ran out of space "
            f"({found.group(0)}); free space in {tempfile.gettempdir()} or set TMPDIR")


def _failure_text(result: JobResult) -> tuple[str, str] | None:
    """A failed job's (message, traceback): its reported error, else (the child broke before its job ran)
    its stderr tail as both; None when the job did not fail."""
    error = (result.report or {}).get("error") if isinstance(result.report, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", "")), str(error.get("traceback", ""))
    if result.report is None and result.returncode not in (0, None):
        return result.stderr_tail or "", result.stderr_tail or ""
    return None


def hub_cause(result: JobResult) -> str | None:
    """For a reference job only: the task's download from the Hugging Face hub failed (no network, no copy).

    Never asked of a candidate job, whose error text the candidate controls.
    """
    failure = _failure_text(result)
    if failure is not None and HUB_FAILURE.search(" ".join(failure)):
        return "cannot run here: the task downloads a pretrained model from the Hugging Face hub " \
               "(from_pretrained), which this machine cannot reach and has no local copy of"
    return None


def _missing_module(message: str, traceback: str, reference: bool = False) -> str | None:
    found = MISSING.search(message) or MISSING.search(traceback)
    if found is None:
        return None
    module = found.group(2)
    frames = FRAME.findall(traceback)
    importer = frames[-1] if frames else ""
    top = module.split(".")[0]
    if (reference or (importer and TASK_FILE.search(importer))) and top not in HARNESS_PACKAGES:
        return f"cannot run here: the task imports {module!r}, which this machine lacks; install it " \
               f"(pip install {top}; pip install -e '.[kernelbench]' has what KernelBench's tasks import)"
    if top in HARNESS_PACKAGES or (importer and not JOB_FILES.search(importer)):
        where = f" (imported from {importer})" if importer else ""
        return f"this machine lacks the Python module {module!r}{where}; install it in the environment that runs " \
               f"the checker (e.g. pip install -e .)"
    return None
