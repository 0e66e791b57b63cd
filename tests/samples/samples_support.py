"""Helpers for checking the bundled samples: load tasks at chosen sizes, read answers, find subgraphs."""

from __future__ import annotations

import ast
import linecache
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "kernelbench"
TRANSCRIPTS = SAMPLES / "transcripts"
HAND_WRITTEN_LINE = "<!-- hand-written by the pytest-kernelfalcon developers; not model output -->"
LEVELS = ("level1", "level2", "level3")
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class SubgraphCall:
    """One distinct subgraph seen while running a fused model: class, init args, input shapes."""

    class_name: str
    init_args: tuple[Any, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]


def sample_tasks() -> list[Path]:
    """Return every bundled sample task file, level by level."""
    return [p for level in LEVELS for p in sorted((SAMPLES / level).glob("*.py"))]


def task_id(path: Path) -> str:
    """Return ``level/name`` for a sample task file."""
    return f"{path.parent.name}/{path.stem}"


def answer_dir(task: Path, stage: str, subgraph: str = "_") -> Path:
    """Return the transcript directory of one stage and subgraph of ``task``."""
    return TRANSCRIPTS / task.parent.name / task.stem / stage / subgraph


def answer_rounds(task: Path, stage: str, subgraph: str = "_") -> list[Path]:
    """Return worker 0's answers for a key, in round order."""
    found = answer_dir(task, stage, subgraph).glob("w0-r*.md")
    return sorted(found, key=lambda p: int(p.stem.split("-r")[1]))


def answer_code(md: Path) -> str:
    """Return the single python block of a hand-written answer; raise on a malformed file."""
    text = md.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if first != HAND_WRITTEN_LINE:
        raise ValueError(f"{md}: first line is not the hand-written marker")
    blocks = _BLOCK.findall(rest)
    if len(blocks) != 1 or rest.count("```") != 2:
        raise ValueError(f"{md}: expected exactly one ```python block, found {len(blocks)}")
    return str(blocks[0])


def size_constants(source: str) -> dict[str, int]:
    """Return the module-level ``NAME = <int literal>`` assignments of a task's source."""
    found: dict[str, int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant) \
                    and type(value.value) is int:
                found[target.id] = value.value
    return found


def shrink(value: int, divisor: int) -> int:
    """Return a small odd stand-in for a size constant; values under 8 are not sizes and stay."""
    return value if value < 8 else max(9, value // divisor) | 1


def exec_source(source: str, filename: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute ``source`` (its lines kept for ``inspect``) in a fresh namespace, then overwrite module constants with ``overrides``."""
    if not filename.endswith(".py"):
        filename += ".py"  # an answer's code: its lines are not the .md file's lines
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"sample_{Path(filename).stem}"}
    exec(compile(source, filename, "exec"), namespace)
    namespace.update(overrides or {})
    return namespace


def load_task(path: Path, divisor: int | None = None) -> dict[str, Any]:
    """Load a task module, with its size constants shrunk by ``divisor`` (``None``: official sizes)."""
    source = path.read_text(encoding="utf-8")
    overrides = {}
    if divisor is not None:
        overrides = {k: shrink(v, divisor) for k, v in size_constants(source).items()}
    return exec_source(source, str(path), overrides)


def build(cls: type, init_inputs: list[Any], seed: int = 0) -> Any:
    """Construct ``cls(*init_inputs)`` after seeding torch, as the checker does."""
    import torch

    torch.manual_seed(seed)
    return cls(*init_inputs)


def draw_inputs(task: dict[str, Any], seed: int) -> list[Any]:
    """Return the task's inputs drawn under ``seed``."""
    import torch

    torch.manual_seed(seed)
    return list(task["get_inputs"]())


def record_init_args(namespace: dict[str, Any], names: list[str]) -> None:
    """Wrap ``__init__`` of the named classes so each instance remembers its constructor args."""
    for name in names:
        namespace[name].__init__ = _recording(namespace[name].__init__)


def _recording(init: Callable[..., None]) -> Callable[..., None]:
    def wrapped(self: Any, *args: Any) -> None:
        init(self, *args)
        self._sample_init_args = tuple(args)

    return wrapped


def subgraph_classes(namespace: dict[str, Any]) -> list[str]:
    """Return the names of the ``nn.Module`` classes a fuse answer defines, besides ``FusedModel``."""
    import torch.nn as nn

    return [
        name for name, obj in namespace.items()
        if isinstance(obj, type) and issubclass(obj, nn.Module) and name != "FusedModel"
        and obj.__module__ == namespace["__name__"]
    ]


def distinct_subgraphs(model: Any, inputs: list[Any]) -> list[SubgraphCall]:
    """Run ``model`` once with hooks; return its distinct subgraph calls in order of first call."""
    import torch

    calls: list[SubgraphCall] = []

    def hook(module: Any, args: tuple[Any, ...]) -> None:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        call = SubgraphCall(type(module).__name__, module._sample_init_args,
                            tuple(tuple(t.shape) for t in tensors),
                            tuple(str(t.dtype) for t in tensors))
        if call not in calls:
            calls.append(call)

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if hasattr(m, "_sample_init_args")]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return calls


def subgraph_task_source(fused_code: str, call: SubgraphCall) -> str:
    """Return a KernelBench-format task for one subgraph: ``Model`` = its class, sizes as constants."""
    sizes: dict[int, str] = {}

    def ref(value: Any) -> str:
        if type(value) is not int or value < 8:
            return repr(value)
        return sizes.setdefault(value, f"size_{value}")

    init = ", ".join(ref(v) for v in call.init_args)
    inputs = ", ".join(f"torch.randn({', '.join(ref(d) for d in shape)})" for shape in call.shapes)
    constants = "".join(f"{name} = {value}\n" for value, name in sizes.items())
    return (f"{fused_code}\n\nModel = {call.class_name}\n\n{constants}\n\n"
            f"def get_inputs():\n    return [{inputs}]\n\n\n"
            f"def get_init_inputs():\n    return [{init}]\n")
