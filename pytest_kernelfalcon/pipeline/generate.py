"""Stage 3, generate: N workers per subgraph race to a verified Triton kernel; the first one wins."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.pipeline.codeblock import FormatError, extract_code
from pytest_kernelfalcon.pipeline.context import (
    BudgetExceeded,
    HarnessFailure,
    stop_on_harness_error,
)
from pytest_kernelfalcon.pipeline.llmcall import Conversation, save_verdict, verdict_text
from pytest_kernelfalcon.pipeline.rounds import feedback_prompt
from pytest_kernelfalcon.pipeline.rundir import atomic_write_json, atomic_write_text, read_json
from pytest_kernelfalcon.pipeline.triton_names import common_ops_line

if TYPE_CHECKING:
    from pytest_kernelfalcon.core.verdict import Verdict
    from pytest_kernelfalcon.pipeline.context import TaskScope
    from pytest_kernelfalcon.pipeline.extract import SubgraphSpec

# how far a failed candidate got; the most informative failure is the one that got furthest
PROGRESS = ("llm_error", "format_error", "compile_error", "timeout", "crash", "runtime_error",
            "no_triton_launch", "torch_compute", "fallback", "side_stream", "input_mutation",
            "result_reuse", "reference_reuse", "checker_tamper", "shape_mismatch", "numeric_mismatch")


@dataclass(frozen=True)
class GenerateResult:
    """The winning kernel of one spec, or the most informative failure of all its workers."""

    spec_id: str
    passed: bool
    kernel_path: Path | None
    rounds: int
    category: str | None = None
    detail: str = ""
    worker: int | None = None
    round: int | None = None
    resumed: bool = False


@dataclass(frozen=True)
class WorkerEnd:
    """How one worker stopped: won, failed (last category/detail), exhausted, cancelled, budget."""

    worker: int
    status: str
    rounds: int
    category: str | None = None
    detail: str = ""


@dataclass
class Race:
    """What the workers of one spec share: the cancel event, tried hashes, the winner slot."""

    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tried: dict[str, Verdict | None] = field(default_factory=dict)
    winner: tuple[int, int, Path] | None = None

    def claim(self, digest: str) -> tuple[bool, Verdict | None]:
        """Return (first time seen, verdict of the earlier try if known) for a code hash."""
        with self.lock:
            if digest in self.tried:
                return False, self.tried[digest]
            self.tried[digest] = None
            return True, None

    def record(self, digest: str, verdict: Verdict) -> None:
        """Remember a hash's verdict."""
        with self.lock:
            self.tried[digest] = verdict

    def win(self, worker: int, round_: int, candidate: Path) -> bool:
        """Take the winner slot if free (then cancel the others); return whether this call took it."""
        with self.lock:
            if self.winner is not None:
                return False
            self.winner = (worker, round_, candidate)
        self.cancel.set()
        return True


def generate_kernel(scope: TaskScope, spec: SubgraphSpec, whole_task: bool = False) -> GenerateResult:
    """Return the verified kernel of ``spec`` (reused when ``kernel.py`` exists) or why none was found.

    ``whole_task``: the spec is the task's own module (kept, not fused), so the first prompt asks for the
    task itself, as the one-stage strategy does (template ``direct``); the check is the spec's as always."""
    out = scope.dir / "generate" / spec.id
    if (out / "kernel.py").is_file():
        meta = read_json(out / "kernel.json") if (out / "kernel.json").is_file() else {}
        return GenerateResult(spec.id, True, out / "kernel.py", 0, worker=meta.get("worker"),
                              round=meta.get("round"), resumed=True)
    broken = _reference_problem(scope, spec)
    if broken is not None:
        return GenerateResult(spec.id, False, None, 0, broken.category.value if broken.category else
                              Category.REFERENCE_ERROR.value, broken.detail)
    race = Race(cancel=_race_cancel(scope))
    ends = _run_workers(scope, spec, race, whole_task)
    rounds = sum(e.rounds for e in ends)
    if race.winner is not None:
        worker, round_, candidate = race.winner
        _save_winner(out, candidate, worker, round_)
        return GenerateResult(spec.id, True, out / "kernel.py", rounds, worker=worker, round=round_)
    category, detail = most_informative(ends)
    return GenerateResult(spec.id, False, None, rounds, category, detail)


def _race_cancel(scope: TaskScope) -> threading.Event:
    """The race's cancel event: set by the winner, and by the task's deadline."""
    from pytest_kernelfalcon.executor.deadline import Deadline

    return Deadline(None, parent=scope.budget.deadline)


def _reference_problem(scope: TaskScope, spec: SubgraphSpec) -> Verdict | None:
    """Run (and cache) the spec's reference once before the workers start; return its failure if any."""
    from pytest_kernelfalcon.core.verdict import Verdict
    from pytest_kernelfalcon.executor.deadline import DeadlinePassed

    try:
        found = scope.ctx.checker.reference(spec.task_path.read_text(encoding="utf-8"), scope.budget.deadline)
    except DeadlinePassed as exc:
        raise BudgetExceeded("wall time", str(exc)) from exc
    return found if isinstance(found, Verdict) else None


def _run_workers(scope: TaskScope, spec: SubgraphSpec, race: Race, whole_task: bool) -> list[WorkerEnd]:
    workers = scope.ctx.config.workers
    scope.emit("workers", stage="generate", subgraph=spec.id, workers=workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"kf-{spec.id}") as pool:
        futures = [pool.submit(run_worker, scope, spec, race, w, whole_task) for w in range(workers)]
        try:
            done, _ = wait(futures, timeout=max(scope.budget.remaining_s(), 0.0))
        except BaseException:  # Ctrl-C: cancel the workers' LLM calls and checker jobs, not wait them out
            race.cancel.set()
            raise
        if len(done) < len(futures):
            race.cancel.set()  # the task's wall time ran out: stop everyone
    return [_end_of(f, w) for w, f in enumerate(futures)]


def _end_of(future: Any, worker: int) -> WorkerEnd:
    try:
        return future.result()
    except Exception as exc:  # a bug in a worker must not kill the task's other workers
        return WorkerEnd(worker, "crashed", 0, Category.WORKER_CRASH.value, f"{type(exc).__name__}: {exc}")


def _save_winner(out: Path, candidate: Path, worker: int, round_: int) -> None:
    atomic_write_text(out / "kernel.py", candidate.read_text(encoding="utf-8"))
    atomic_write_json(out / "kernel.json", {"worker": worker, "round": round_, "candidate": str(candidate)})


def most_informative(ends: list[WorkerEnd]) -> tuple[str, str]:
    """Return the category and detail of the failure that got furthest (budget beats all)."""
    harness = [e for e in ends if e.status == "harness"]
    if harness:
        return str(harness[0].category or Category.HARNESS_ERROR.value), harness[0].detail
    budget = [e for e in ends if e.status == "budget"]
    if budget:
        return Category.BUDGET_EXCEEDED.value, budget[0].detail
    failed = [e for e in ends if e.category is not None]
    if not failed:
        return Category.LLM_ERROR.value, "no worker produced a candidate (no answers)"
    best = max(failed, key=lambda e: PROGRESS.index(e.category) if e.category in PROGRESS else 0)
    return str(best.category), f"worker {best.worker}: {best.detail}"


def run_worker(scope: TaskScope, spec: SubgraphSpec, race: Race, worker: int, whole_task: bool = False) -> WorkerEnd:
    """Run one worker's rounds until it wins, runs out of rounds, is cancelled or has no more answers."""
    from pytest_kernelfalcon.llm.base import Cancelled, ProviderError, ReplayMiss

    state = _WorkerState(scope, spec, race, worker, whole_task)
    try:
        return state.loop()
    except Cancelled:
        return state.cancelled()
    except ReplayMiss as exc:
        scope.emit("worker_exhausted", stage="generate", subgraph=spec.id, worker=worker, detail=str(exc))
        return state.end("exhausted")
    except BudgetExceeded as exc:
        race.cancel.set()
        return state.end("budget", Category.BUDGET_EXCEEDED.value, str(exc))
    except HarnessFailure as exc:  # the machine, not the candidate: stop every worker, tell the LLM nothing
        race.cancel.set()
        return state.end("harness", exc.category, exc.cause)
    except ProviderError as exc:
        return state.end("failed", Category.LLM_ERROR.value, f"{type(exc).__name__}: {exc}")


class _WorkerState:
    """One worker's loop: prompt -> answer -> code -> dedup -> check -> feedback."""

    def __init__(self, scope: TaskScope, spec: SubgraphSpec, race: Race, worker: int, whole_task: bool) -> None:
        self.scope, self.spec, self.race, self.worker = scope, spec, race, worker
        self.whole_task = whole_task
        self.first: tuple[str, ...] = ("direct" if whole_task else "generate", "triton_example")
        self.conv = Conversation(scope, "generate", spec.id, worker, scope.ctx.config.temperature(worker))
        self.rounds = 0
        self.last: tuple[str | None, str] = (None, "")

    def end(self, status: str, category: str | None = None, detail: str = "") -> WorkerEnd:
        """Return this worker's end record."""
        category = category or self.last[0]
        return WorkerEnd(self.worker, status, self.rounds, category, detail or self.last[1])

    def cancelled(self) -> WorkerEnd:
        """Record the worker's cancellation (another worker won, or the task stopped)."""
        self.scope.emit("cancelled", stage="generate", subgraph=self.spec.id, worker=self.worker,
                        round=self.rounds)
        return self.end("cancelled")

    def loop(self) -> WorkerEnd:
        """Run rounds up to ``max_rounds``; return how the worker ended."""
        from pytest_kernelfalcon.llm.base import Cancelled

        prompt = self.first_prompt()
        templates = self.first
        for round_ in range(1, self.scope.ctx.config.max_rounds + 1):
            if self.race.cancel.is_set():
                raise Cancelled("another worker won")
            self.rounds = round_
            self.scope.emit("round", stage="generate", subgraph=self.spec.id, worker=self.worker, round=round_)
            text = self.conv.ask(round_, prompt, templates, cancel=self.race.cancel).text
            outcome = self.attempt(round_, text)
            if outcome is None:
                return self.end("won")
            prompt, templates = outcome
        return self.end("failed")

    def first_prompt(self) -> str:
        """Return the generate prompt for this spec (for the task's own module: the task's prompt)."""
        data, spec, prompts = self.spec.data, self.spec, self.scope.ctx.prompts
        if self.whole_task:
            return prompts.render("direct", task_id=self.scope.task.id, example=prompts.texts["triton_example"].strip(),
                                  task_source=self.scope.task.path.read_text(encoding="utf-8"))
        return self.scope.ctx.prompts.render(
            "generate", class_name=spec.class_name, spec_id=spec.id, task_id=self.scope.task.id,
            init_args=data.get("init_args_py", "[]"), inputs=_describe(data.get("inputs", [])),
            outputs=_describe(data.get("outputs", [])), parameters=json.dumps(data.get("parameters", [])),
            count=spec.count, class_source=data.get("source", ""),
            example=self.scope.ctx.prompts.texts["triton_example"].strip(), common_ops=common_ops_line(),
            spec_task=spec.task_path.read_text(encoding="utf-8"))

    def attempt(self, round_: int, text: str) -> tuple[str, tuple[str, ...]] | None:
        """Check one answer; return None when it won, else the next prompt and its templates."""
        from pytest_kernelfalcon.llm.base import Cancelled

        rounds, prompts = self.scope.ctx.config.max_rounds, self.scope.ctx.prompts
        try:
            block = extract_code(text, required=("ModelNew",))
        except FormatError as err:
            self.last = (Category.FORMAT_ERROR.value, str(err))
            return prompts.render("format_feedback", error=err, round=round_, max_rounds=rounds), \
                (*self.first, "format_feedback")
        first, earlier = self.race.claim(block.digest)
        if not first:
            self.scope.emit("duplicate", stage="generate", subgraph=self.spec.id, worker=self.worker,
                            round=round_, digest=block.digest[:16])
            note = "Its result: " + ": ".join(verdict_text(earlier)) if earlier is not None else ""
            return prompts.render("duplicate", detail=note, round=round_, max_rounds=rounds), \
                (*self.first, "duplicate")
        candidate = self.conv.path(round_, ".py")
        atomic_write_text(candidate, block.code)
        verdict = self.scope.ctx.checker.verify(self.spec.task_path, candidate, cancel=self.race.cancel,
                                                comparable=False)  # a subgraph's kernel: no KernelBench task
        self.race.record(block.digest, verdict)
        save_verdict(self.conv.path(round_, ".verdict.json"), verdict)
        stop_on_harness_error(verdict)  # raises: the harness's failure is no feedback for the LLM
        self.scope.emit("verdict", stage="generate", subgraph=self.spec.id, worker=self.worker,
                        round=round_, passed=verdict.passed,
                        category=verdict.category.value if verdict.category else None,
                        detail=verdict.detail[:500])
        if verdict.passed and self.race.win(self.worker, round_, candidate):
            return None
        if verdict.passed or verdict.category == Category.CANCELLED:
            raise Cancelled("another worker won")
        failure = self.last = verdict_text(verdict)
        return feedback_prompt(self.scope, failure, round_, rounds, block.code), \
            (*self.first, "feedback")


def _describe(values: list[dict[str, Any]]) -> str:
    parts = []
    for v in values:
        if v.get("kind") == "tensor":
            parts.append(f"tensor{tuple(v['shape'])} {v['dtype']}")
        else:
            parts.append(f"value {v.get('py')}")
    return "; ".join(parts) or "none"
