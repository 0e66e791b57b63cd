"""The checker's own corpus: every candidate in ``tests/corpus`` gets its expected verdict.

Each entry of ``tests/corpus/expected.json`` names a candidate file, its task
(``kernelbench:level1/19_ReLU.py`` from the KernelBench checkout, or
``corpus:tasks/foo.py`` stored here), the expected verdict (``pass`` or a
category) and the devices where that expectation applies. Runs at the ``default``
profile (what every acceptance uses); ``FALCON_CORPUS_SHAPES=official`` (on the GPU machine) runs
the same corpus at the tasks' own sizes (through the resident data path there;
``FALCON_CORPUS_DATA_PATH=files|resident`` picks one; ``FALCON_CORPUS_EXECUTOR=warm``
shares one warm worker). One ``Checker`` per task and module, so
the reference runs once per task (``--dist loadgroup`` keeps a task on one worker).
An entry may record a known checker gap per device (``xfail``): the test is then a
strict xfail, so it turns red the moment the checker is fixed and the note can go.

Every entry also says what KernelBench's own eval gives it (``kernelbench``: ``pass`` or ``fail``, or one
per device where the task plan's sizes or the reference's TF32 make them differ): the verdict's
KernelBench-comparable side must say the same at the default profile, with a reason wherever it
differs from ours (``benchmarks/kb_agreement.py`` holds these against KernelBench's eval settings).

An entry with a ``profile_class`` (``sizes``, ``values``, ``address_reuse``) is a kernel only the
default profile catches (issue 16): its rejection must name the failing draw, its seed, the first
bad index and the replay seed, and ``official`` records what the KernelBench-equivalent check
says of it on the CPU (``pass``: the official check alone lets it through).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_kernelfalcon.core.verdict import Category

CORPUS = Path(__file__).resolve().parent / "corpus"
SCALED_TIMEOUT_S = 60.0
OFFICIAL_TIMEOUT_S = 180.0
PROFILE_TIMEOUT_S = 180.0  # default profile: official sizes on the GPU plus the drawn plans
MIN_TASKS = 8
MIN_OWN_TASKS = 3

# Every failure category the corpus must demonstrate (issue 2).
REQUIRED = frozenset({
    "compile_error", "runtime_error", "timeout", "crash", "shape_mismatch", "numeric_mismatch",
    "torch_compute", "no_triton_launch", "fallback", "reference_reuse", "result_reuse",
    "input_mutation", "side_stream", "checker_tamper",
})

# What a concrete detail must mention, per category (beyond being non-empty).
DETAIL_PATTERNS = {
    "compile_error": r"Error|does not parse|defines no class",
    "runtime_error": r"candidate\.py:\d+: \w+Error",
    "timeout": r"killed after [\d.]+s",
    "crash": r"killed by SIG\w+|exited with code|early exit",
    "shape_mismatch": r"seed \d+",
    "numeric_mismatch": r"seed \d+",
    "torch_compute": r"aten[.:]\w+.* at candidate\.py:\d+",
    "no_triton_launch": r"no Triton kernel launched",
    "fallback": r"candidate\.py:\d+",
    "reference_reuse": r"(?=.*candidate\.py:\d+)(?=.*Model)",
    "result_reuse": r"seed \d+",
    "input_mutation": r"seed \d+.*input \d+",
    "side_stream": r"side stream",
    "checker_tamper": r"\S",
}


@dataclass(frozen=True)
class Entry:
    """One corpus candidate and what the checker must say about it."""

    key: str  # "<task-key>/<candidate>.py"
    task: str  # "kernelbench:level1/19_ReLU.py" | "corpus:tasks/foo.py"
    expected: str  # "pass" or a Category value
    devices: tuple[str, ...]
    elsewhere: str | None = None  # "fail": on other devices it must at least not pass
    timeout_s: float | None = None
    low_signal: bool | None = None
    xfail: tuple[tuple[str, str], ...] = ()  # (device, known checker gap) pairs
    profile_class: str | None = None  # "sizes" | "values" | "address_reuse": caught by the default profile only
    official: str | None = None  # the verdict of the official-only check on the CPU
    kernelbench: tuple[tuple[str, str], ...] = ()  # (device, "pass" | "fail"): KernelBench's own eval

    def kernelbench_on(self, device: str) -> str | None:
        """What KernelBench's own eval gives this candidate on ``device`` (None: not recorded there)."""
        return dict(self.kernelbench).get(device)

    def known_gap(self, device: str) -> str | None:
        """Return the recorded checker gap that makes this entry fail on ``device``, if any."""
        return dict(self.xfail).get(device)

    @property
    def task_group(self) -> str:
        """The task this entry belongs to (its xdist group)."""
        return self.task


def load_entries() -> tuple[Entry, ...]:
    """Return the corpus entries of ``expected.json``, sorted by key."""
    data: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())
    return tuple(
        Entry(key, raw["task"], raw["expected"], tuple(raw["devices"]), raw.get("elsewhere"),
              raw.get("timeout_s"), raw.get("low_signal"), tuple(sorted(raw.get("xfail", {}).items())),
              raw.get("profile_class"), raw.get("official"), _per_device(raw.get("kernelbench")))
        for key, raw in sorted(data.items())
    )


def _per_device(value: Any) -> tuple[tuple[str, str], ...]:
    """``"pass"`` for every device, or ``{"cpu": "fail", "cuda": "pass"}`` as it is."""
    if value is None:
        return ()
    found = value if isinstance(value, dict) else {device: value for device in ("cpu", "cuda")}
    return tuple(sorted(found.items()))


def corpus_shapes() -> str:
    """Return the check profile for this run (``FALCON_CORPUS_SHAPES``, default ``default``)."""
    from pytest_kernelfalcon.checker.options import SHAPE_PROFILES

    shapes = os.environ.get("FALCON_CORPUS_SHAPES", "default")
    if shapes not in SHAPE_PROFILES:
        raise pytest.UsageError(f"FALCON_CORPUS_SHAPES={shapes!r}; expected one of {', '.join(SHAPE_PROFILES)}")
    return shapes


def corpus_data_path() -> str:
    """Return the checker's data path for this run (``FALCON_CORPUS_DATA_PATH``, default ``auto``)."""
    from pytest_kernelfalcon.core.protocol import DATA_PATHS

    path = os.environ.get("FALCON_CORPUS_DATA_PATH", "auto")
    if path not in DATA_PATHS:
        raise pytest.UsageError(f"FALCON_CORPUS_DATA_PATH={path!r}; expected one of {', '.join(DATA_PATHS)}")
    return path


def _params() -> list[Any]:
    return [pytest.param(e, id=e.key, marks=pytest.mark.xdist_group(e.task_group)) for e in load_entries()]


@pytest.fixture(scope="module")
def checker_for() -> Iterator[Callable[[str, float], Any]]:
    """A factory of ``Checker`` objects, one per (task, timeout), closed at module end."""
    from pytest_kernelfalcon.checker.checker import Checker, CheckOptions

    made: dict[tuple[str, float], Checker] = {}
    shapes = corpus_shapes()
    executor: Any = isolated_cold_executor()  # as ``kernelfalcon verify`` runs jobs: as their own uid when root
    if os.environ.get("FALCON_CORPUS_EXECUTOR") == "warm":  # one warm worker for the whole module
        from pytest_kernelfalcon.checker.checker import resolve_device
        from pytest_kernelfalcon.executor.warm import WarmExecutor

        executor = WarmExecutor(pool_size=1, device=resolve_device("auto"))

    def get(task: str, timeout_s: float) -> Checker:
        if (task, timeout_s) not in made:
            options = CheckOptions(device="auto", shapes=shapes, timeout_s=timeout_s, data_path=corpus_data_path())
            made[(task, timeout_s)] = Checker(options, executor)
        return made[(task, timeout_s)]

    yield get
    for checker in made.values():
        checker.close()
    executor.close()


def isolated_cold_executor() -> Any:
    """A fresh process per job, as its own uid where this process is root (``kernelfalcon verify``'s executor)."""
    from pytest_kernelfalcon.core.isolation import DEFAULT_POLICY, is_root
    from pytest_kernelfalcon.executor.cold import ColdExecutor

    return ColdExecutor(isolation=DEFAULT_POLICY if is_root() else None)


def task_path(entry: Entry, request: pytest.FixtureRequest) -> Path:
    """Return the task file of an entry (skips where the KernelBench checkout is absent)."""
    kind, rel = entry.task.split(":", 1)
    if kind == "corpus":
        return CORPUS / rel
    if kind == "kernelbench":
        root: Path = request.getfixturevalue("kernelbench_dir")
        return root / rel
    raise ValueError(f"unknown task kind {kind!r} in {entry.key}")


def timeout_for(entry: Entry) -> float:
    """Return the checker timeout for an entry (its own, else by shape plan)."""
    if entry.timeout_s is not None:
        return float(entry.timeout_s)
    shapes = corpus_shapes()
    if shapes == "default":  # the task's plan and the drawn ones: more trials in one child
        return PROFILE_TIMEOUT_S
    return OFFICIAL_TIMEOUT_S if shapes == "official" else SCALED_TIMEOUT_S


@pytest.mark.parametrize("entry", _params())
def test_candidate_gets_expected_verdict(entry: Entry, checker_for: Any, request: pytest.FixtureRequest) -> None:
    task = task_path(entry, request)
    checker = checker_for(entry.task, timeout_for(entry))
    gap = entry.known_gap(checker.device)
    if gap:
        request.applymarker(pytest.mark.xfail(reason=f"known checker gap: {gap}", strict=True))
    verdict = checker.verify(task, CORPUS / entry.key)
    where = f"{entry.key} on {checker.device}: got {verdict_name(verdict)}: {verdict.detail}"
    if checker.device not in entry.devices:
        if entry.elsewhere != "fail":
            pytest.skip(f"expectation for {entry.key} applies on {entry.devices} only")
        assert not verdict.passed, where
        return
    assert_expected_verdict(entry, verdict, where)
    if entry.profile_class and corpus_shapes() == "default":
        assert_actionable(verdict, entry.profile_class, where)
    if corpus_shapes() == "default":
        assert_kernelbench(entry, verdict, checker, where)


def assert_kernelbench(entry: Entry, verdict: Any, checker: Any, where: str) -> None:
    """The KernelBench-comparable verdict is the entry's, with a reason wherever it differs from ours (a static-audit
    rejection is run for it only where candidates run as their own uid: elsewhere it says it was not run)."""
    from pytest_kernelfalcon.checker.options import STATIC_REJECT
    from pytest_kernelfalcon.checker.refcache import candidates_own_uid

    kb = verdict.kernelbench
    assert kb is not None, where
    if verdict.category in STATIC_REJECT and not candidates_own_uid(checker.executor):
        assert kb.passed is None and kb.reason.startswith("not run: the static audit"), f"{kb}: {where}"
        return
    assert kb.label() == entry.kernelbench_on(checker.device), f"KernelBench-comparable {kb}: {where}"
    if kb.passed is not verdict.passed:
        assert kb.why and kb.reason, f"no reason for a difference: {kb}: {where}"
    else:
        assert not kb.reason, f"a reason where the two agree: {kb}: {where}"


# What a default-profile rejection of a profile-class kernel must name: the draw, its seed, the first bad index.
PROFILE_DETAIL = (r"seed \d+", r"first mismatch at index \(", r"replay with --seed \d+")
PROFILE_CLASS_NOTE = {"sizes": r"\((sizes|grow) plan\)|sizes \{", "values": r"values (large|negative|near_zero|mixed)",
                      "address_reuse": r"address reuse\)"}


def assert_actionable(verdict: Any, klass: str, where: str) -> None:
    """A default-profile rejection names the failing draw, its seed, the first bad index and the replay seed."""
    for pattern in (*PROFILE_DETAIL, PROFILE_CLASS_NOTE[klass]):
        assert re.search(pattern, verdict.detail), f"detail lacks {pattern!r}: {where}"


def _official_params() -> list[Any]:
    return [pytest.param(e, id=e.key) for e in load_entries() if e.official is not None]


@pytest.mark.parametrize("entry", _official_params())
def test_profile_class_gets_its_official_verdict_on_cpu(entry: Entry, request: pytest.FixtureRequest) -> None:
    """Kernels only the default profile catches: the official-only check (KernelBench's) lets them through."""
    from pytest_kernelfalcon.checker.checker import CheckOptions, verify_candidate

    options = CheckOptions(device="cpu", shapes="official", timeout_s=SCALED_TIMEOUT_S)
    verdict = verify_candidate(task_path(entry, request), CORPUS / entry.key, options)
    assert verdict_name(verdict) == entry.official, f"{entry.key} at official: {verdict.detail}"


def test_profile_classes_are_covered() -> None:
    entries = load_entries()
    classes = {e.profile_class for e in entries if e.profile_class}
    assert classes == set(PROFILE_CLASS_NOTE), classes
    for entry in entries:
        if entry.profile_class:
            assert entry.official == "pass" and entry.expected != "pass", entry.key


def verdict_name(verdict: Any) -> str:
    """``pass`` or the verdict's category."""
    return "pass" if verdict.passed else verdict.category.value


def assert_expected_verdict(entry: Entry, verdict: Any, where: str) -> None:
    """The entry's expected verdict, a concrete detail for a failure, and the expected low-signal flag."""
    got = verdict_name(verdict)
    assert got == entry.expected, where
    if not verdict.passed:
        assert verdict.detail.strip(), where
        assert re.search(DETAIL_PATTERNS[got], verdict.detail, re.S), f"detail not concrete: {where}"
    if entry.low_signal is not None:
        assert verdict.low_signal == entry.low_signal, where


def test_every_entry_says_what_kernelbench_would_give_it() -> None:
    for entry in load_entries():
        for device in entry.devices:
            assert entry.kernelbench_on(device) in ("pass", "fail"), (entry.key, device)
    differ = {e.key for e in load_entries() if e.kernelbench_on("cpu") == "pass" and e.expected != "pass"}
    assert {"own_conv_relu/hybrid_conv.py", "kb_matmul/tf32_operands.py", "own_softmax_rows/capped_block.py",
            "own_scaled_add/pointer_cache.py"} <= differ  # issue 24's rows: KernelBench passes what we reject


def test_corpus_covers_every_category() -> None:
    covered = {e.expected for e in load_entries()}
    assert covered >= REQUIRED, f"categories without a corpus candidate: {sorted(REQUIRED - covered)}"
    assert covered - {"pass"} <= {c.value for c in Category}


def test_corpus_has_a_correct_candidate_per_task() -> None:
    entries = load_entries()
    tasks = {e.task for e in entries}
    passing = {e.task for e in entries if e.expected == "pass" and e.key.endswith("/correct.py")}
    assert len(tasks) >= MIN_TASKS
    assert sum(t.startswith("corpus:") for t in tasks) >= MIN_OWN_TASKS
    assert passing == tasks, f"tasks without a correct candidate: {sorted(tasks - passing)}"


def test_corpus_files_match_expected_json() -> None:
    listed = {e.key for e in load_entries()}
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*.py") if p.parent.name != "tasks"}
    assert listed == on_disk
    for entry in load_entries():
        task_dirs = {e.task for e in load_entries() if e.key.split("/")[0] == entry.key.split("/")[0]}
        assert len(task_dirs) == 1, f"{entry.key}: one task per corpus directory"
        if entry.task.startswith("corpus:"):
            assert (CORPUS / entry.task.split(":", 1)[1]).is_file(), entry.task


def test_honest_candidates_do_not_mention_the_reference() -> None:
    for entry in load_entries():
        source = (CORPUS / entry.key).read_text()
        assert "class ModelNew" in source or entry.expected == "compile_error", entry.key
        if entry.expected != "reference_reuse":
            assert "Model(" not in source, f"{entry.key} mentions the reference class"
