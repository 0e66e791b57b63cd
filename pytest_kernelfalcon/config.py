"""``FalconConfig``: every ``--falcon*`` option and ``falcon_*`` ini key, read and checked once."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

PROVIDERS = ("auto", "anthropic", "openai", "replay", "scripted")
DEVICES = ("auto", "cpu", "cuda")
SHAPES = ("auto", "official", "scaled", "fuzz")
DTYPES = ("fp32", "bf16", "fp16")
EXECUTORS = ("auto", "warm", "cold")
DATA_PATHS = ("auto", "files", "resident")

# (option name, ini/dest name, type, default, help); types: str, int, float, bool, path
OPTIONS: tuple[tuple[str, str, str, Any, str], ...] = (
    ("--falcon", "falcon", "bool", False, "collect KernelBench-format task files and run them"),
    ("--falcon-candidates", "falcon_candidates", "path", None,
     "judge the candidate file of the same name from DIR instead of running the agent"),
    ("--falcon-provider", "falcon_provider", "str", "auto",
     "LLM provider: anthropic, openai, replay, scripted (auto: anthropic with a key, else replay)"),
    ("--falcon-model", "falcon_model", "str", "claude-sonnet-4-6", "model name for the provider"),
    ("--falcon-workers", "falcon_workers", "int", 4, "parallel generation workers per subgraph"),
    ("--falcon-max-rounds", "falcon_max_rounds", "int", 4, "rounds per worker (error feedback)"),
    ("--falcon-budget-usd", "falcon_budget_usd", "float", None, "dollar budget per task"),
    ("--falcon-timeout", "falcon_timeout", "float", 900.0, "wall-clock budget per task, seconds"),
    ("--falcon-prompts", "falcon_prompts", "path", None, "directory overriding the prompt templates"),
    ("--falcon-transcripts", "falcon_transcripts", "path", None,
     "transcript directory for the replay provider (default: kernelbench/transcripts)"),
    ("--falcon-run-dir", "falcon_run_dir", "path", ".falcon/runs", "where run directories go"),
    ("--falcon-resume", "falcon_resume", "str", None, "resume the run with this id"),
    ("--falcon-device", "falcon_device", "str", "auto", "cpu, cuda or auto"),
    ("--falcon-shapes", "falcon_shapes", "str", "auto",
     "official, scaled or fuzz (auto: official on cuda, scaled on cpu)"),
    ("--falcon-seeds", "falcon_seeds", "int", 3, "trials (seeds) per check"),
    ("--falcon-seed", "falcon_seed", "int", None, "base seed; replays a fuzz run"),
    ("--falcon-dtype", "falcon_dtype", "str", "fp32", "fp32, bf16 or fp16"),
    ("--falcon-executor", "falcon_executor", "str", "auto",
     "how candidates run: warm (pre-imported workers, the default: auto), cold (a fresh process each)"),
    ("--falcon-data-path", "falcon_data_path", "str", "auto",
     "how tensors reach the checker: files (host copies), resident (inputs, reference and comparison stay "
     "on the device; official shapes); auto: resident for official inputs on cuda over 64M elements"),
    ("--falcon-check-timeout", "falcon_check_timeout", "float", 300.0,
     "seconds allowed for one child process of the checker"),
    ("--falcon-report", "falcon_report", "path", None, "write a JSON report (and Markdown) here"),
    ("--falcon-baseline", "falcon_baseline", "path", None,
     "fail the session when a task that passed in this report fails now"),
    ("--falcon-fail-under", "falcon_fail_under", "float", None,
     "fail the session under this pass rate (0..1)"),
    ("--falcon-bench", "falcon_bench", "bool", False, "time verified ModelNew vs eager and torch.compile"),
    ("--falcon-shard", "falcon_shard", "str", None, "run shard I/N of the tasks (1-based)"),
)


@dataclass(frozen=True)
class FalconConfig:
    """Normalised ``--falcon*`` settings; nothing below the session reads ``pytest.Config``."""

    falcon: bool = False
    falcon_candidates: Path | None = None
    falcon_provider: str = "auto"
    falcon_model: str = "claude-sonnet-4-6"
    falcon_workers: int = 4
    falcon_max_rounds: int = 4
    falcon_budget_usd: float | None = None
    falcon_timeout: float = 900.0
    falcon_prompts: Path | None = None
    falcon_transcripts: Path | None = None
    falcon_run_dir: Path = Path(".falcon/runs")
    falcon_resume: str | None = None
    falcon_device: str = "auto"
    falcon_shapes: str = "auto"
    falcon_seeds: int = 3
    falcon_seed: int | None = None
    falcon_dtype: str = "fp32"
    falcon_executor: str = "auto"
    falcon_data_path: str = "auto"
    falcon_check_timeout: float = 300.0
    falcon_report: Path | None = None
    falcon_baseline: Path | None = None
    falcon_fail_under: float | None = None
    falcon_bench: bool = False
    falcon_shard: tuple[int, int] | None = None

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> FalconConfig:
        """Read options (command line first, then ini keys); raise ``pytest.UsageError`` on bad input."""
        root = Path(str(config.rootpath))
        values = {dest: _read(config, dest, kind, default, root) for _, dest, kind, default, _ in OPTIONS}
        return cls.from_values(values)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> FalconConfig:
        """Build and validate from plain values (``falcon_shard`` may be the "I/N" string)."""
        values = dict(values)
        values["falcon_shard"] = _shard(values.get("falcon_shard"))
        names = {f.name for f in fields(cls)}
        made = cls(**{k: v for k, v in values.items() if k in names})
        made.validate()
        return made

    def validate(self) -> None:
        """Raise ``pytest.UsageError`` for any value out of range."""
        _choice("--falcon-provider", self.falcon_provider, PROVIDERS)
        _choice("--falcon-device", self.falcon_device, DEVICES)
        _choice("--falcon-shapes", self.falcon_shapes, SHAPES)
        _choice("--falcon-dtype", self.falcon_dtype, DTYPES)
        _choice("--falcon-executor", self.falcon_executor, EXECUTORS)
        _choice("--falcon-data-path", self.falcon_data_path, DATA_PATHS)
        if self.falcon_data_path == "resident" and self.shapes != "official":
            _usage("--falcon-data-path resident checks official shapes only (use --falcon-shapes official)")
        for name, value in (("--falcon-workers", self.falcon_workers),
                            ("--falcon-max-rounds", self.falcon_max_rounds),
                            ("--falcon-seeds", self.falcon_seeds)):
            if value < 1:
                _usage(f"{name} must be at least 1, got {value}")
        if self.falcon_fail_under is not None and not 0.0 <= self.falcon_fail_under <= 1.0:
            _usage(f"--falcon-fail-under must be a rate between 0 and 1, got {self.falcon_fail_under}")
        if self.falcon_candidates is not None and not self.falcon_candidates.is_dir():
            _usage(f"--falcon-candidates: {self.falcon_candidates} is not a directory")
        if self.falcon_bench and self.device == "cpu":
            _usage("--falcon-bench times kernels on a GPU; no CUDA device is available here")
        if self.falcon_baseline is not None and not self.falcon_baseline.is_file():
            _usage(f"--falcon-baseline: {self.falcon_baseline} does not exist")

    @property
    def device(self) -> str:
        """The resolved device: ``cuda`` when asked for or available under ``auto``, else ``cpu``."""
        if self.falcon_device != "auto":
            return self.falcon_device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def shapes(self) -> str:
        """The resolved shape mode: ``official`` on cuda, ``scaled`` on cpu under ``auto``."""
        if self.falcon_shapes != "auto":
            return self.falcon_shapes
        return "official" if self.device == "cuda" else "scaled"

    @property
    def executor(self) -> str:
        """``warm`` or ``cold``; ``auto`` is warm (on CUDA since the H100 runs in benchmarks/results/)."""
        return "warm" if self.falcon_executor == "auto" else self.falcon_executor

    def resolved_provider(self, environ: dict[str, str] | None = None) -> str:
        """The provider to use: ``auto`` means anthropic with ``ANTHROPIC_API_KEY`` set, else replay."""
        if self.falcon_provider != "auto":
            return self.falcon_provider
        env = os.environ if environ is None else environ
        return "anthropic" if env.get("ANTHROPIC_API_KEY") else "replay"


def _read(config: pytest.Config, dest: str, kind: str, default: Any, root: Path) -> Any:
    value = config.getoption(dest, None)
    if value is None or (kind == "bool" and value is False):
        ini = config.getini(dest)
        value = ini if ini not in ("", None, []) else None
    if value is None:
        return default if default is None or kind != "path" else _convert(dest, kind, default, root)
    return _convert(dest, kind, value, root)


def _convert(dest: str, kind: str, value: Any, root: Path) -> Any:
    flag = "--" + dest.replace("_", "-")
    try:
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "path":
            path = Path(str(value)).expanduser()
            return path if path.is_absolute() else root / path
    except ValueError:
        _usage(f"{flag}: expected {kind}, got {value!r}")
    return str(value)


def _shard(value: Any) -> tuple[int, int] | None:
    if value is None or isinstance(value, tuple):
        return value
    from pytest_kernelfalcon.reports.shard import parse_shard

    try:
        return parse_shard(str(value))
    except ValueError as exc:
        _usage(f"--falcon-shard: {exc}")
    return None


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _usage(f"{flag} must be one of {', '.join(choices)}; got {value!r}")


def _usage(message: str) -> None:
    import pytest

    raise pytest.UsageError(message)
