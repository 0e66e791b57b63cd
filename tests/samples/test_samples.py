"""The bundled samples: tasks run, fuse answers equal their Model, generate answers equal their subgraph."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from samples_support import (
    HAND_WRITTEN_LINE,
    LEVELS,
    TRANSCRIPTS,
    SubgraphCall,
    answer_code,
    answer_dir,
    answer_rounds,
    build,
    distinct_subgraphs,
    draw_inputs,
    exec_source,
    load_task,
    record_init_args,
    sample_tasks,
    subgraph_classes,
    subgraph_task_source,
    task_id,
)

TASKS = sample_tasks()
IDS = [task_id(p) for p in TASKS]
DIVISORS = (32, 8)  # two scaled-down size sets: tiny, and big enough for several blocks per dim
ATOL = RTOL = 1e-4  # fp32, as the checker
ALLOWED_TORCH = {"empty", "empty_like", "empty_strided", "Size"}


def fused_namespace(task: Path) -> dict[str, Any]:
    """Execute the task's fuse answer with constructor-argument recording on its subgraph classes."""
    md = answer_rounds(task, "fuse")[-1]
    namespace = exec_source(answer_code(md), str(md))
    record_init_args(namespace, subgraph_classes(namespace))
    return namespace


def subgraphs_of(task: Path, divisor: int | None) -> list[SubgraphCall]:
    """Return the distinct subgraphs of the fused sample (shrunk by ``divisor``; None: official sizes)."""
    module = load_task(task, divisor)
    fused = build(fused_namespace(task)["FusedModel"], module["get_init_inputs"]())
    return distinct_subgraphs(fused, draw_inputs(module, 0))


def outputs_close(a: Any, b: Any) -> bool:
    """Return whether two outputs (tensors or tuples of them) agree within fp32 tolerance."""
    import torch

    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(outputs_close(x, y) for x, y in zip(a, b, strict=True))
    if a.shape != b.shape or not torch.isfinite(b).all():
        return False
    return bool(torch.allclose(a, b, atol=ATOL, rtol=RTOL))


def kernel_mismatch(code: str, filename: str, call: SubgraphCall, fused: dict[str, Any],
                    device: str = "cpu") -> str | None:
    """Return why an answer's ``ModelNew`` differs from the subgraph class, or ``None`` if it matches."""
    import torch

    reference = build(fused[call.class_name], list(call.init_args)).to(device)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # affine weights no longer at their identity init
    try:
        candidate = build(exec_source(code, filename)["ModelNew"], list(call.init_args)).to(device)
        candidate.load_state_dict(reference.state_dict())
        for seed in (1, 2):
            torch.manual_seed(seed)
            inputs = [torch.randn(shape, device=device) for shape in call.shapes]
            with torch.no_grad():
                if not outputs_close(reference(*inputs), candidate(*inputs)):
                    return f"outputs differ (seed {seed})"
    except Exception as exc:  # the answer under test may fail in any way; report it
        return f"{type(exc).__name__}: {exc}"
    return None


def test_samples_cover_every_level() -> None:
    """At least twelve samples, with every level present."""
    assert len(TASKS) >= 12
    assert {p.parent.name for p in TASKS} == set(LEVELS)


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_task_runs_at_small_sizes(task: Path) -> None:
    """Each task builds, runs on CPU at shrunk sizes, and gives finite output."""
    import torch

    module = load_task(task, DIVISORS[0])
    model = build(module["Model"], module["get_init_inputs"]())
    with torch.no_grad():
        out = model(*draw_inputs(module, 0))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_official_sizes_are_moderate(task: Path) -> None:
    """Official inputs stay at a few million elements, so a GPU check takes seconds."""
    import torch

    module = load_task(task)
    torch.manual_seed(0)
    assert sum(t.numel() for t in module["get_inputs"]()) <= 4_000_000


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_fused_model_equals_model(task: Path) -> None:
    """The fuse answer builds the same weights in the same order and computes the same outputs."""
    import torch

    fused_cls = fused_namespace(task)["FusedModel"]
    for divisor in DIVISORS:
        module = load_task(task, divisor)
        model = build(module["Model"], module["get_init_inputs"]())
        fused = build(fused_cls, module["get_init_inputs"]())
        ours, theirs = list(model.parameters()), list(fused.parameters())
        assert [p.shape for p in ours] == [p.shape for p in theirs]
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
        for seed in (0, 1, 2):
            inputs = draw_inputs(module, seed)
            with torch.no_grad():
                assert outputs_close(model(*inputs), fused(*inputs)), (divisor, seed)


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_one_generate_answer_per_subgraph(task: Path) -> None:
    """Generate transcripts exist exactly for sg0..sgN-1, the subgraphs extract would find."""
    found = sorted(p.name for p in answer_dir(task, "generate").parent.iterdir())
    expected = sorted(f"sg{i}" for i in range(len(subgraphs_of(task, DIVISORS[0]))))
    assert found == expected


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_generate_answers_match_subgraphs(task: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each subgraph's last answer equals the subgraph under the Triton interpreter; earlier ones fail."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    fused = fused_namespace(task)
    for divisor in DIVISORS:
        for i, call in enumerate(subgraphs_of(task, divisor)):
            *earlier, last = answer_rounds(task, "generate", f"sg{i}")
            assert kernel_mismatch(answer_code(last), str(last), call, fused) is None, (last, call)
            for md in earlier:
                assert kernel_mismatch(answer_code(md), str(md), call, fused) is not None, md


def test_some_samples_show_a_fixed_error() -> None:
    """At least two samples carry a multi-round history (a failing round, then the fix)."""
    multi = {md.parents[2] for md in TRANSCRIPTS.rglob("w0-r1.md")}
    assert len(multi) >= 2


def test_repeated_and_data_dependent_samples() -> None:
    """Level 3 holds a subgraph called twice with the same class, args and shapes, and an ``.item()`` branch."""
    level3 = [p for p in TASKS if p.parent.name == "level3"]
    repeated = [p for p in level3 if _repeat_count(p) >= 2]
    branching = [p for p in level3 if ".item()" in p.read_text()]
    assert repeated and branching


def _repeat_count(task: Path) -> int:
    """Return the most calls any one distinct subgraph gets in one forward at small sizes."""
    return max(_call_counts(task).values())


def _call_counts(task: Path) -> dict[SubgraphCall, int]:
    import torch

    module = load_task(task, DIVISORS[0])
    fused = build(fused_namespace(task)["FusedModel"], module["get_init_inputs"]())
    counts: dict[SubgraphCall, int] = {}

    def hook(m: Any, args: tuple[Any, ...]) -> None:
        key = SubgraphCall(type(m).__name__, m._sample_init_args,
                           tuple(tuple(a.shape) for a in args), tuple(str(a.dtype) for a in args))
        counts[key] = counts.get(key, 0) + 1

    for m in fused.modules():
        if hasattr(m, "_sample_init_args"):
            m.register_forward_pre_hook(hook)
    with torch.no_grad():
        fused(*draw_inputs(module, 0))
    return counts


@pytest.mark.parametrize("name", ["routed_experts", "halting_refine"])
def test_control_flow_depends_on_the_data(name: str) -> None:
    """Across input seeds the data-dependent samples take different paths (not one fixed path)."""
    task = next(p for p in TASKS if p.stem == name)
    module = load_task(task, DIVISORS[0])
    fused = build(fused_namespace(task)["FusedModel"], module["get_init_inputs"]())
    paths = {_path_taken(fused, draw_inputs(module, seed)) for seed in range(12)}
    assert len(paths) >= 2


def _path_taken(fused: Any, inputs: list[Any]) -> tuple[str, ...]:
    import torch

    seen: list[str] = []
    handles = [m.register_forward_pre_hook(lambda m, a, n=n: seen.append(n))
               for n, m in fused.named_children()]
    with torch.no_grad():
        fused(*inputs)
    for h in handles:
        h.remove()
    return tuple(seen)


def test_transcripts_are_well_formed() -> None:
    """Every transcript sits at level/name/stage/subgraph/wW-rR.md, for a sample, and parses."""
    names = {task_id(p) for p in TASKS}
    files = sorted(TRANSCRIPTS.rglob("*.md"))
    assert files
    for md in files:
        level, name, stage, subgraph, leaf = md.relative_to(TRANSCRIPTS).parts
        assert f"{level}/{name}" in names and stage in ("fuse", "generate", "compose")
        assert (subgraph == "_") == (stage != "generate"), md
        assert md.read_text().splitlines()[0] == HAND_WRITTEN_LINE
        ast.parse(answer_code(md))
    for task in TASKS:
        assert answer_rounds(task, "fuse"), task


def test_generate_answers_compute_only_in_triton() -> None:
    """Answers define ``@triton.jit`` kernels; ``ModelNew.forward`` calls torch only to allocate."""
    for md in sorted(TRANSCRIPTS.rglob("generate/*/*.md")):
        tree = ast.parse(answer_code(md))
        assert any(_is_jit(n) for n in tree.body), md
        for node in ast.walk(_forward_of(tree, "ModelNew")):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "torch":
                    assert node.attr in ALLOWED_TORCH, (md, node.attr)
                assert node.value.id != "F", (md, node.attr)


def _is_jit(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef) and any(
        "jit" in ast.unparse(d) for d in node.decorator_list)


def _forward_of(tree: ast.Module, class_name: str) -> ast.FunctionDef:
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")


def checker_or_skip() -> Any:
    """Return the project's checker module, or skip where it is not importable yet."""
    return pytest.importorskip("pytest_kernelfalcon.checker.checker")


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_fuse_answer_passes_the_checker(task: Path, tmp_path: Path) -> None:
    """The trusted checker (scaled shapes, CPU, no audit) finds ``FusedModel`` equal to ``Model``."""
    checker = checker_or_skip()
    candidate = tmp_path / "fused.py"
    candidate.write_text(answer_code(answer_rounds(task, "fuse")[-1]))
    options = checker.CheckOptions(shapes="scaled", device="cpu", entry="FusedModel", audit=False)
    verdict = checker.verify_candidate(task, candidate, options)
    assert verdict.passed, verdict.detail


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_generate_answers_pass_the_checker(task: Path, tmp_path: Path) -> None:
    """Through the trusted checker with the full audit, each subgraph's last answer passes, earlier ones fail."""
    checker = checker_or_skip()
    check_generate_answers(task, tmp_path, checker.CheckOptions(shapes="scaled", device="cpu"))


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_generate_answers_pass_the_checker_on_gpu(task: Path, tmp_path: Path) -> None:
    """The same on a GPU at official sizes."""
    checker = checker_or_skip()
    check_generate_answers(task, tmp_path, checker.CheckOptions(shapes="official", device="cuda"))


def check_generate_answers(task: Path, tmp_path: Path, options: Any) -> None:
    """Verify every generate round of ``task`` through the checker as a subgraph task."""
    from pytest_kernelfalcon.checker.checker import verify_candidate

    fused_code = answer_code(answer_rounds(task, "fuse")[-1])
    for i, call in enumerate(subgraphs_of(task, None)):
        sg_task = tmp_path / f"sg{i}.py"
        sg_task.write_text(subgraph_task_source(fused_code, call))
        *earlier, last = answer_rounds(task, "generate", f"sg{i}")
        for md in [*earlier, last]:
            candidate = tmp_path / f"sg{i}_{md.stem}.py"
            candidate.write_text(answer_code(md))
            verdict = verify_candidate(sg_task, candidate, options)
            assert verdict.passed == (md == last), (md.name, verdict.category, verdict.detail)


@pytest.mark.gpu
@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_answers_on_gpu_at_official_sizes(task: Path) -> None:
    """On a GPU (TF32 off), fuse and last generate answers match at the task's official sizes."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    module, fused = load_task(task), fused_namespace(task)
    model = build(module["Model"], module["get_init_inputs"]()).cuda()
    fused_model = build(fused["FusedModel"], module["get_init_inputs"]()).cuda()
    for seed in (0, 1):
        inputs = [t.cuda() for t in draw_inputs(module, seed)]
        with torch.no_grad():
            assert outputs_close(model(*inputs), fused_model(*inputs)), seed
    for i, call in enumerate(subgraphs_of(task, None)):
        last = answer_rounds(task, "generate", f"sg{i}")[-1]
        assert kernel_mismatch(answer_code(last), str(last), call, fused, "cuda") is None, last
