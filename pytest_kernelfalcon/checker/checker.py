"""The trusted checker: reference and candidate each run in a child; the parent compares.

Neither the task module nor the candidate is imported here. The parent writes job
directories, runs them through an ``Executor``, loads ``result.pt`` weights-only, and
judges (``judge.py``). A ``Checker`` caches
reference runs per (task source, plan, seeds, dtype, device) so many candidates of
one task reuse them.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pytest_kernelfalcon.checker import memory
from pytest_kernelfalcon.checker.judge import job_failure, judge_candidate
from pytest_kernelfalcon.checker.options import (
    CPU_BUDGET_NUMEL,
    DEFAULT_SEED,
    FUZZ_TRIALS,
    GPU_BUDGET_NUMEL,
    RESIDENT_MARGIN_S,
    RESIDENT_NUMEL,
    STATIC_REJECT,
    STRONG_TRANSFORM,
    STRONG_TRIALS,
    CheckOptions,
    Reference,
    resident_fits,
    validate,
)
from pytest_kernelfalcon.core.gpus import resolve_device
from pytest_kernelfalcon.core.protocol import (
    CandidateCase,
    CandidateJob,
    JobRecord,
    PlanFile,
    ReferenceJob,
    ReferenceResult,
    ResidentCase,
    ResidentJob,
    TrialDraw,
    TrialInputs,
    task_valued,
)
from pytest_kernelfalcon.core.verdict import Category, Verdict
from pytest_kernelfalcon.executor.base import Executor, Job, JobResult
from pytest_kernelfalcon.executor.cold import ColdExecutor
from pytest_kernelfalcon.executor.deadline import (
    DeadlinePassed,
    WaitCancelled,
    raise_if_passed,
    waiting,
)


def _read(path: Path) -> str | None:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def static_rejection(source: str) -> Verdict | None:
    """Return a failing verdict for a static-audit finding that rejects without running, else None."""
    from pytest_kernelfalcon.checker import static_audit as audit

    for finding in audit.static_audit(source):
        if finding.category in STATIC_REJECT:
            detail = f"{finding.message} (static audit, candidate.py:{finding.line})"
            return Verdict.failed(finding.category, detail)
    return None


def _save_job(jobdir: Path, job: JobRecord) -> None:
    import torch

    torch.save(job.to_wire(), jobdir / "job.pt")


class Checker:
    """Verifies candidates against tasks; holds the executor and a reference cache.

    An executor passed in belongs to the caller (several checkers may share one warm pool);
    ``close`` ends only the executor the checker made itself.
    """

    def __init__(self, options: CheckOptions | None = None, executor: Executor | None = None) -> None:
        self.options = options or CheckOptions()
        validate(self.options)
        self.device = resolve_device(self.options.device)
        self.executor: Executor = executor or ColdExecutor()
        self._owns_executor = executor is None
        self._references: dict[tuple[Any, ...], Reference | Verdict] = {}
        self._peaks: dict[str, int] = {}  # task source sha256 -> the peak device bytes its reference measured
        self._fuzz_seed = secrets.randbelow(2**31)
        self.resident = self.options.data_path == "resident"
        if self.resident and not resident_fits(self.options.shapes, self.device):
            raise ValueError("the resident data path checks official shapes only (default: on cuda)")
        official_cuda = self.device == "cuda" and self.options.shapes in ("official", "default")
        self._resident_above = RESIDENT_NUMEL if self.options.data_path == "auto" and official_cuda else None
        from pytest_kernelfalcon.checker.refcache import candidates_own_uid, open_store

        self.store = open_store(self.options.reference_cache, candidates_own_uid(self.executor))

    def close(self) -> None:
        """Finish writing cache entries; release the executor if this checker made it (a shared one stays
        open for its owner)."""
        if self.store is not None:
            self.store.flush()
        if self._owns_executor:
            self.executor.close()

    @functools.cached_property
    def card(self) -> Any:
        """The GPU memory card this checker's jobs lease (``executor.leases.Card``), None where none applies."""
        from pytest_kernelfalcon.executor.leases import card_for

        return card_for(self.device, self.options.gpu)

    @property
    def base_seed(self) -> int:
        """The base seed of every trial (random per checker for fuzz unless given)."""
        if self.options.seed is not None:
            return self.options.seed
        return self._fuzz_seed if self.options.shapes == "fuzz" else DEFAULT_SEED

    def verify(self, task: Path, candidate: Path, cancel: threading.Event | None = None,
               comparable: bool = True) -> Verdict:
        """Judge ``candidate`` against ``task`` and return the verdict (never raises for bad candidates);
        ``comparable``: with what KernelBench's own eval says of it (``checker/comparable.py``).

        ``cancel`` may be a ``Deadline``: past it the verdict is a ``harness_error`` naming the stage that was
        waiting (a lock, a lease, a worker's start, a job), and every job it started is killed."""
        try:
            verdict = self._verify(task, candidate, cancel, comparable)
            if not comparable:
                return verdict
            from pytest_kernelfalcon.checker.comparable import completed

            return completed(self, verdict, Path(task), Path(candidate), cancel)
        except DeadlinePassed as exc:
            return Verdict.failed(Category.HARNESS_ERROR, str(exc), device=self.device, dtype=self.options.dtype,
                                  audit={"deadline": {"stage": exc.stage, "seconds": exc.seconds}})
        except WaitCancelled as exc:
            return Verdict.failed(Category.CANCELLED, f"cancelled while waiting for {exc}", device=self.device,
                                  dtype=self.options.dtype)

    def _verify(self, task: Path, candidate: Path, cancel: threading.Event | None, comparable: bool) -> Verdict:
        device, dtype = self.device, self.options.dtype
        source = _read(Path(candidate))
        if source is None:
            detail = f"cannot read candidate {candidate}"
            return Verdict.failed(Category.MISSING_CANDIDATE, detail, device=device, dtype=dtype)
        task_source = _read(Path(task))
        if task_source is None:
            return Verdict.failed(Category.REFERENCE_ERROR, f"cannot read task {task}", device=device, dtype=dtype)
        if self.options.audit:
            rejected = static_rejection(source)
            if rejected is not None:
                return replace(rejected, device=device, dtype=dtype)
        reference = self._unrunnable(task_source) or self.reference(task_source, cancel)
        if isinstance(reference, Verdict):
            return reference
        return self._run_candidate(source, reference, cancel, task_source, comparable)

    def _unrunnable(self, task_source: str) -> Verdict | None:
        """A harness_error verdict when the task imports a package this machine lacks (never the candidate's)."""
        from pytest_kernelfalcon.core.tasks import cannot_run_here

        reason = cannot_run_here(task_source)
        if reason is None:
            return None
        return Verdict.failed(Category.HARNESS_ERROR, reason, device=self.device, dtype=self.options.dtype)

    # -- reference -------------------------------------------------------------------------
    def reference(self, task_source: str, cancel: threading.Event | None = None) -> Reference | Verdict:
        """Return the (cached; then ``wall_s`` 0) reference run of a task source, or a failing verdict."""
        opts = self.options
        key = (hashlib.sha256(task_source.encode()).hexdigest(), opts.shapes, self.base_seed,
               opts.seeds, opts.dtype, self.device, opts.data_path)
        if key in self._references:
            cached = self._references[key]
            return replace(cached, wall_s=0.0) if isinstance(cached, Reference) else cached
        found = self._stored_or_computed(task_source, cancel)
        if not (isinstance(found, Verdict) and found.category == Category.CANCELLED):
            self._references[key] = found
        return found

    def _stored_or_computed(self, source: str, cancel: threading.Event | None) -> Reference | Verdict:
        """The reference from the persistent store (``refcache``) when it holds it, else computed and stored."""
        from pytest_kernelfalcon.checker import refcache

        opts = self.options
        fields = {"shapes": opts.shapes, "base_seed": self.base_seed, "seeds": opts.seeds, "dtype": opts.dtype,
                  "data_path": opts.data_path, "resident_above": self._resident_above}
        key = None if self.store is None or opts.shapes == "fuzz" else refcache.entry_key(
            source, fields, self.device, self.options.gpu)
        if self.store is None or key is None:
            return self._compute_reference(source, cancel)
        with self.store.claim(key, cancel):
            start = time.monotonic()
            payload = self.store.load(key)
            found = None if payload is None else refcache.reference_of(payload)
            if found is not None:
                return replace(found, wall_s=time.monotonic() - start)
            computed = self._compute_reference(source, cancel)
            if isinstance(computed, Reference):
                self.store.save(key, refcache.payload_of(computed))
            return computed

    def _compute_reference(self, source: str, cancel: threading.Event | None) -> Reference | Verdict:
        from pytest_kernelfalcon.core import shapes

        start = time.monotonic()
        if self.options.shapes == "default":
            from pytest_kernelfalcon.checker.profile import default_reference

            found = default_reference(self, source, cancel)
        elif self.resident:
            found = self.reference_job(source, [shapes.official_plan()], "first_fit", None, cancel,
                                        mode="resident_reference")
        elif self.options.shapes == "official":
            found = self.reference_job(source, [shapes.official_plan()], "first_fit", None, cancel)
        else:  # scaled, and fuzz: draws are made around the chosen scaled plan
            found = self.reference_job(source, shapes.scaled_plans(source), "first_fit",
                                        self.budget(), cancel)
        if self.options.shapes == "fuzz" and isinstance(found, Reference):
            found = self._fuzz_reference(source, found.plan_of(found.cases[0]), cancel)
        if isinstance(found, Reference):
            found = replace(found, wall_s=time.monotonic() - start)
        return found

    def _fuzz_reference(self, source: str, base: Any, cancel: threading.Event | None) -> Reference | Verdict:
        from pytest_kernelfalcon.core import shapes

        plans = shapes.fuzz_plans(source, max(self.options.seeds, 1), self.base_seed, base)
        return self.reference_job(source, plans, "each", 4 * self.budget(), cancel, last_exempt=False)

    def budget(self) -> int:
        """The numel budget of a scaled plan's inputs on this device."""
        return CPU_BUDGET_NUMEL if self.device == "cpu" else GPU_BUDGET_NUMEL

    def trial_seeds(self) -> list[int]:
        """The seeds of a plan's trials at the task's values."""
        n = min(self.options.seeds, FUZZ_TRIALS) if self.options.shapes == "fuzz" else self.options.seeds
        return [self.base_seed + i for i in range(max(n, 1))]

    def reference_job(self, source: str, plans: list[Any], pick: str, budget: int | None,
                      cancel: threading.Event | None, last_exempt: bool = True,
                      mode: str = "reference", extra: dict[str, Any] | list[dict[str, Any]] | None = None,
                      ) -> Reference | Verdict:
        """Run one reference job over ``plans``; ``extra`` (one dict, or one per plan) joins each plan's entry
        (``trials``, ``group``, ``strong``; its ``role`` goes into the plan's description)."""
        from pytest_kernelfalcon.core.tasks import rewrite_constants

        jobdir = Path(tempfile.mkdtemp(prefix="kf-ref-"))
        try:
            entries = []
            for k, plan in enumerate(plans):
                (jobdir / f"task_{k}.py").write_text(rewrite_constants(source, plan.overrides))
                more = dict((extra[k] if isinstance(extra, list) else extra) or {})
                described = {**plan.describe(), "profile": self.options.shapes,
                             **{k: more.pop(k) for k in ("role", "grown") if k in more}}
                entries.append(PlanFile(file=f"task_{k}.py", index=k, plan=described,
                                        transform=tuple(plan.values.transform), **more))
            job = ReferenceJob(mode=mode, device=self.device, dtype=self.options.dtype,
                               construct_seed=self.base_seed, plans=tuple(entries), pick=pick,
                               budget_numel=budget, last_exempt=last_exempt, seeds=tuple(self.trial_seeds()),
                               strong_seeds=tuple(self.base_seed + 1000 + i for i in range(STRONG_TRIALS)),
                               strong=STRONG_TRANSFORM, resident_above=self._resident_above)
            with waiting(cancel, "the hand-over (writing the reference job)"):
                _save_job(jobdir, job)
            need = memory.reference_need(self._peaks.get(_digest(source)), budget)
            result = self._run(jobdir, cancel, "the reference job", need)
            found = self._reference_from(result, plans)
            self._note_peak(source, found)
            return found
        finally:
            shutil.rmtree(jobdir, ignore_errors=True)

    def _task_peak(self, reference: Reference, task_source: str) -> int | None:
        """The task's measured peak device bytes: from this reference's facts, else from an earlier reference job."""
        return memory.task_peak(reference) or self._peaks.get(_digest(task_source))

    def _note_peak(self, source: str, found: Reference | Verdict) -> None:
        """Remember the task's measured peak device memory: its later jobs lease that much, not the card."""
        peak = memory.task_peak(found) if isinstance(found, Reference) else None
        if peak is not None:
            self._peaks[_digest(source)] = max(peak, self._peaks.get(_digest(source), 0))

    def _reference_from(self, result: JobResult, plans: list[Any]) -> Reference | Verdict:
        from pytest_kernelfalcon.core.compare import low_signal_probes, tolerance_for

        failed = job_failure(result, "reference")
        if failed is not None:
            kept = (Category.CANCELLED, Category.HARNESS_ERROR)
            category = failed.category if failed.category in kept else Category.REFERENCE_ERROR
            return replace(failed, category=category, device=self.device, dtype=self.options.dtype)
        report = ReferenceResult.from_wire(result.report)
        tol = tolerance_for(self.options.dtype)
        start = time.monotonic()
        if report.probes is not None:  # tracked on the device by the reference job (task-valued trials only)
            probes = report.probes
        else:  # on the task's own values only (value draws make trivial answers pass, e.g. ReLU of negatives)
            probes = tuple(p for case in report.cases for p in low_signal_probes(
                [(t["inputs"], t["outputs"]) for t in case.trials if task_valued(t)], tol))
        split = {"reference_job_s": result.wall_s, "reference_probes_s": time.monotonic() - start}
        return Reference(report.cases, report.discarded, probes, self.base_seed, result.wall_s,
                         resident=report.resident, plans=tuple(plans), split=split)

    def _run(self, jobdir: Path, cancel: threading.Event | None, stage: str, need: int | None,
             margin_s: float = 0.0) -> JobResult:
        """Run one job under a GPU memory lease of ``need`` bytes (None: alone); past the deadline, raise."""
        job = Job(jobdir, self.options.timeout_s + margin_s, self.device, self.options.gpu)
        with waiting(cancel, stage):
            result = memory.run_leased(self.executor, job, cancel, self.card, need)
            if result.cancelled:
                raise_if_passed(cancel)
        return result

    # -- candidate -------------------------------------------------------------------------
    def _candidate_job(self, reference: Reference) -> CandidateJob:
        cases = []
        for case in reference.cases:
            trials = reference.trials_of(case)
            cases.append(CandidateCase(construct_seed=case.construct_seed, init_inputs=case.init_inputs,
                                       state_dict=case.state_dict or {},
                                       constants=dict(reference.plan_of(case).overrides),
                                       trials=tuple(TrialInputs(t["seed"], tuple(t["inputs"]),
                                                                bool(t.get("reuse_storage"))) for t in trials)))
        return CandidateJob(entry=self.options.entry, device=self.device,
                            dtype=self.options.dtype, cases=tuple(cases), audit=self.options.audit,
                            poison=self.options.audit)

    def _resident_job(self, reference: Reference, task_source: str, jobdir: Path) -> ResidentJob:
        cases = []
        for k, case in enumerate(reference.cases):
            plan = reference.plan_of(case)
            plain = tuple(plan.values.transform)
            trials = reference.trials_of(case)
            (jobdir / f"task_{k}.py").write_text(task_source)
            cases.append(ResidentCase(file=f"task_{k}.py", construct_seed=case.construct_seed, plan=case.plan,
                                      constants=dict(plan.overrides),
                                      trials=tuple(TrialDraw(seed=t["seed"], strong=bool(t["strong"]),
                                                             transform=STRONG_TRANSFORM if t["strong"] else plain,
                                                             reuse_storage=bool(t.get("reuse_storage")))
                                                   for t in trials)))
        return ResidentJob(entry=self.options.entry, device=self.device,
                           dtype=self.options.dtype, cases=tuple(cases), audit=self.options.audit,
                           poison=self.options.audit, timeout_s=self.options.timeout_s)

    def _run_candidate(self, source: str, reference: Reference, cancel: threading.Event | None,
                       task_source: str = "", comparable: bool = True) -> Verdict:
        peak = self._task_peak(reference, task_source)
        verdict = self._run_candidate_job(source, replace(reference, extras=None), cancel, task_source, comparable,
                                          peak)
        if reference.extras is None or not verdict.passed:
            return verdict
        from pytest_kernelfalcon.checker.profile import joined_verdict

        joined = joined_verdict(reference, verdict, self._run_candidate_job(source, reference.extras, cancel,
                                                                            comparable=False, peak=peak))
        return replace(joined, kernelbench=verdict.kernelbench)  # judged on the resident base: the task's own plan

    def kernelbench_job(self, source: str, task_source: str, reference: Reference,
                        cancel: threading.Event | None = None) -> JobResult:
        """Run KernelBench's own eval of the candidate in a child, at the reference's task plan (``kernelbench``
        job, ``child/kernelbench.py``)."""
        from pytest_kernelfalcon.core.kernelbench import KB_SEED, KB_TRIALS
        from pytest_kernelfalcon.core.protocol import KernelBenchJob
        from pytest_kernelfalcon.core.tasks import rewrite_constants

        jobdir = Path(tempfile.mkdtemp(prefix="kf-kb-"))
        try:
            plan = reference.plan_of(reference.cases[0])
            (jobdir / "task.py").write_text(rewrite_constants(task_source, plan.overrides))
            (jobdir / "candidate.py").write_text(_following_plan(source, reference))
            _save_job(jobdir, KernelBenchJob(task="task.py", entry=self.options.entry, device=self.device,
                                             dtype=self.options.dtype, seed=KB_SEED, trials=KB_TRIALS))
            peak = self._task_peak(reference, task_source)
            return self._run(jobdir, cancel, "the kernelbench job", memory.candidate_need(peak, False))
        finally:
            shutil.rmtree(jobdir, ignore_errors=True)

    def _run_candidate_job(self, source: str, reference: Reference, cancel: threading.Event | None,
                           task_source: str = "", comparable: bool = True, peak: int | None = None) -> Verdict:
        start = time.monotonic()
        jobdir = Path(tempfile.mkdtemp(prefix="kf-cand-"))
        try:
            (jobdir / "candidate.py").write_text(_following_plan(source, reference))
            with waiting(cancel, "the hand-over (writing the candidate job)"):
                if reference.resident:
                    _save_job(jobdir, self._resident_job(reference, task_source, jobdir))
                else:
                    _save_job(jobdir, self._candidate_job(reference))
            inputs_s, start = time.monotonic() - start, time.monotonic()
            need = memory.candidate_need(peak, reference.resident, memory.trial_bytes(reference))
            result = self._run(jobdir, cancel, "the candidate job", need,
                               RESIDENT_MARGIN_S if reference.resident else 0.0)
        finally:
            shutil.rmtree(jobdir, ignore_errors=True)
        handover_s = time.monotonic() - start - result.wall_s  # result.pt loaded, job dir removed
        verdict = judge_candidate(reference, result, self.options, self.device, comparable)
        verdict.timings.update({"inputs_s": inputs_s, "handover_s": handover_s, **reference.split})
        if result.notes:
            verdict.audit["harness_notes"] = list(result.notes)
        return verdict


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def _following_plan(source: str, reference: Reference) -> str:
    """The candidate's source with its same-named size constants following the first case's plan.

    Later cases with other plans set the same names in the candidate's module before construction.
    """
    from pytest_kernelfalcon.core.tasks import follow_plan

    if not reference.cases:
        return source
    return follow_plan(source, dict(reference.plan_of(reference.cases[0]).overrides))


def verify_candidate(task: Path, candidate: Path, options: CheckOptions | None = None,
                     executor: Executor | None = None, cancel: threading.Event | None = None) -> Verdict:
    """Judge one candidate file against one task file (one-shot ``Checker``)."""
    checker = Checker(options or CheckOptions(), executor)
    try:
        return checker.verify(Path(task), Path(candidate), cancel)
    finally:
        checker.close()
