"""``FalconConfig``: every ``--falcon*`` option and ``falcon_*`` ini key, read and checked once."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_kernelfalcon.core.precision import PRECISIONS
from pytest_kernelfalcon.core.protocol import DATA_PATHS
from pytest_kernelfalcon.pipeline.config import DEFAULT_MODEL
from pytest_kernelfalcon.pipeline.rundir import DEFAULT_ROOT

if TYPE_CHECKING:
    import pytest

    from pytest_kernelfalcon.pipeline.config import PipelineConfig

PROVIDERS = ("auto", "anthropic", "openai", "replay", "scripted")
DEVICES = ("auto", "cpu", "cuda")
SHAPES = ("auto", "default", "official", "scaled", "fuzz")
DTYPES = ("fp32", "bf16", "fp16")
EXECUTORS = ("auto", "warm", "cold")
STRATEGIES = ("staged", "direct")
FUSE_MODES = ("auto", "always")

# (option name, ini/dest name, type, help); types: str, int, float, bool, path. Defaults: FalconConfig.
OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--falcon", "falcon", "bool", "collect KernelBench-format task files and run them"),
    ("--falcon-candidates", "falcon_candidates", "path",
     "judge the candidate file of the same name from DIR instead of running the agent"),
    ("--falcon-provider", "falcon_provider", "str",
     "LLM provider: anthropic, openai, replay, scripted (auto: anthropic with a key, else replay)"),
    ("--falcon-model", "falcon_model", "str", "model name for the provider"),
    ("--falcon-base-url", "falcon_base_url", "str",
     "base URL of an OpenAI-compatible server for --falcon-provider openai (else OPENAI_BASE_URL)"),
    ("--falcon-strategy", "falcon_strategy", "str",
     "staged (fuse, extract, generate, compose) or direct (one stage: ModelNew for the whole task)"),
    ("--falcon-fuse", "falcon_fuse", "str",
     "auto (a task whose forward is already one subgraph keeps its own module: no fuse call) or always "
     "(the LLM fuses every task)"),
    ("--falcon-workers", "falcon_workers", "int", "parallel generation workers per subgraph"),
    ("--falcon-max-rounds", "falcon_max_rounds", "int", "rounds per worker (error feedback); also caps the fuse and compose rounds"),
    ("--falcon-max-output-tokens", "falcon_max_output_tokens", "int", "output tokens per LLM call"),
    ("--falcon-llm-timeout", "falcon_llm_timeout", "float",
     "seconds one LLM request may take (the SDK's client timeout; not retried when it runs out)"),
    ("--falcon-budget-usd", "falcon_budget_usd", "float", "dollar budget per task"),
    ("--falcon-timeout", "falcon_timeout", "float", "wall-clock budget per task, seconds"),
    ("--falcon-prompts", "falcon_prompts", "path", "directory overriding the prompt templates"),
    ("--falcon-transcripts", "falcon_transcripts", "path",
     "transcript directory for the replay provider (default: kernelbench/transcripts)"),
    ("--falcon-run-dir", "falcon_run_dir", "path", "where run directories go"),
    ("--falcon-resume", "falcon_resume", "str", "resume the run with this id"),
    ("--falcon-device", "falcon_device", "str", "cpu, cuda or auto"),
    ("--falcon-shapes", "falcon_shapes", "str",
     "default (auto: the task's plan - official on cuda, scaled on cpu - plus Hypothesis-drawn sizes and "
     "values and an address-reuse trial), official (exactly KernelBench's check), scaled or fuzz"),
    ("--falcon-seeds", "falcon_seeds", "int", "trials (seeds) per check"),
    ("--falcon-seed", "falcon_seed", "int", "base seed; replays a fuzz run"),
    ("--falcon-dtype", "falcon_dtype", "str", "fp32, bf16 or fp16"),
    ("--falcon-executor", "falcon_executor", "str",
     "how candidates run: warm (pre-imported workers, the default: auto), cold (a fresh process each)"),
    ("--falcon-data-path", "falcon_data_path", "str",
     "how tensors reach the checker: files (host copies), resident (inputs, reference and comparison stay "
     "on the device; official shapes); auto: resident for official inputs and outputs on cuda over 64M elements"),
    ("--falcon-reference-cache", "falcon_reference_cache", "str",
     "keep reference runs in DIR for later sessions and processes (off to disable; auto: "
     "~/.cache/kernelfalcon/references where candidates run as another uid, i.e. as root)"),
    ("--falcon-allow-torch", "falcon_allow_torch", "str",
     "hybrid policy: accept these aten ops (OP[,OP...], e.g. convolution) inside forward, every other rule "
     "unchanged; verdicts list what was allowed, reports mark such passes"),
    ("--falcon-precision", "falcon_precision", "str",
     "fp32 (TF32-class error rejected, the verdict says so) or tf32 (accepted: TF32 kernels)"),
    ("--falcon-check-timeout", "falcon_check_timeout", "float",
     "seconds allowed for one child process of the checker"),
    ("--falcon-report", "falcon_report", "path", "write a JSON report (and Markdown) here"),
    ("--falcon-baseline", "falcon_baseline", "path",
     "gate against this report: only regressions and new failures fail the session; known failures xfail"),
    ("--falcon-fail-under", "falcon_fail_under", "float",
     "fail the session under this pass rate (0..1)"),
    ("--falcon-bench", "falcon_bench", "bool", "time verified ModelNew vs eager and torch.compile"),
    ("--falcon-shard", "falcon_shard", "str", "run shard I/N of the tasks (1-based)"),
)


@dataclass(frozen=True)
class FalconConfig:
    """Normalised ``--falcon*`` settings (each default stated here only); nothing below the session reads
    ``pytest.Config``."""

    falcon: bool = False
    falcon_candidates: Path | None = None
    falcon_provider: str = "auto"
    falcon_model: str = DEFAULT_MODEL
    falcon_base_url: str | None = None
    falcon_strategy: str = "staged"
    falcon_fuse: str = "auto"
    falcon_workers: int = 4
    falcon_max_rounds: int = 4
    falcon_max_output_tokens: int = 8192
    falcon_llm_timeout: float = 600.0
    falcon_budget_usd: float | None = None
    falcon_timeout: float = 900.0
    falcon_prompts: Path | None = None
    falcon_transcripts: Path | None = None
    falcon_run_dir: Path = DEFAULT_ROOT
    falcon_resume: str | None = None
    falcon_device: str = "auto"
    falcon_shapes: str = "auto"
    falcon_seeds: int = 3
    falcon_seed: int | None = None
    falcon_dtype: str = "fp32"
    falcon_executor: str = "auto"
    falcon_data_path: str = "auto"
    falcon_reference_cache: str = "auto"
    falcon_allow_torch: tuple[str, ...] = ()
    falcon_precision: str = "fp32"
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
        values = {dest: _read(config, dest, kind, root) for _, dest, kind, _ in OPTIONS}
        return cls.from_values({k: v for k, v in values.items() if v is not None})

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> FalconConfig:
        """Build and validate from plain values (``falcon_shard`` may be the "I/N" string)."""
        values = dict(values)
        values["falcon_shard"] = _shard(values.get("falcon_shard"))
        values["falcon_allow_torch"] = _allowed_ops(values.get("falcon_allow_torch"))
        names = {f.name for f in fields(cls)}
        made = cls(**{k: v for k, v in values.items() if k in names})
        made.validate()
        return made

    def validate(self) -> None:
        """Raise ``pytest.UsageError`` for any value out of range."""
        self._validate_choices()
        self._validate_numbers()
        self._validate_paths()
        from pytest_kernelfalcon.checker.options import resident_fits

        if self.falcon_data_path == "resident" and not resident_fits(self.shapes, self.device):
            _usage("--falcon-data-path resident checks official shapes only (--falcon-shapes official, "
                   "or default on cuda)")
        if self.falcon_bench and self.device == "cpu":
            _usage("--falcon-bench times kernels on a GPU; no CUDA device is available here")

    def _validate_choices(self) -> None:
        _choice("--falcon-provider", self.falcon_provider, PROVIDERS)
        _choice("--falcon-strategy", self.falcon_strategy, STRATEGIES)
        _choice("--falcon-fuse", self.falcon_fuse, FUSE_MODES)
        _choice("--falcon-device", self.falcon_device, DEVICES)
        _choice("--falcon-shapes", self.falcon_shapes, SHAPES)
        _choice("--falcon-dtype", self.falcon_dtype, DTYPES)
        _choice("--falcon-executor", self.falcon_executor, EXECUTORS)
        _choice("--falcon-data-path", self.falcon_data_path, DATA_PATHS)
        _choice("--falcon-precision", self.falcon_precision, PRECISIONS)

    def check_device(self) -> None:
        """Raise ``pytest.UsageError`` when ``--falcon-device cuda`` is asked for on a machine without CUDA."""
        if self.falcon_device == "cuda" and _cuda_count() == 0:
            _usage("--falcon-device cuda: no CUDA device is available here (use cpu or auto)")

    def _validate_numbers(self) -> None:
        for name, value in (("--falcon-workers", self.falcon_workers),
                            ("--falcon-max-rounds", self.falcon_max_rounds),
                            ("--falcon-seeds", self.falcon_seeds),
                            ("--falcon-max-output-tokens", self.falcon_max_output_tokens)):
            if value < 1:
                _usage(f"{name} must be at least 1, got {value}")
        for name, seconds in (("--falcon-timeout", self.falcon_timeout),
                              ("--falcon-check-timeout", self.falcon_check_timeout),
                              ("--falcon-llm-timeout", self.falcon_llm_timeout)):
            if not seconds > 0:
                _usage(f"{name} must be a positive number of seconds, got {seconds:g}")
        if self.falcon_budget_usd is not None and not self.falcon_budget_usd > 0:
            _usage(f"--falcon-budget-usd must be positive, got {self.falcon_budget_usd:g}")
        if self.falcon_fail_under is not None and not 0.0 <= self.falcon_fail_under <= 1.0:
            _usage(f"--falcon-fail-under must be a rate between 0 and 1, got {self.falcon_fail_under}")

    def _validate_paths(self) -> None:
        if self.falcon_candidates is not None and not self.falcon_candidates.is_dir():
            _usage(f"--falcon-candidates: {self.falcon_candidates} is not a directory")
        if self.falcon_baseline is not None:
            from pytest_kernelfalcon.reports.report import ReportError, load_report

            try:
                load_report(self.falcon_baseline)
            except ReportError as exc:
                _usage(f"--falcon-baseline: {exc}")

    @property
    def device(self) -> str:
        """The resolved device: ``cuda`` when asked for or available under ``auto``, else ``cpu``."""
        if self.falcon_device != "auto":
            return self.falcon_device
        return "cuda" if _cuda_count() else "cpu"

    @property
    def shapes(self) -> str:
        """The resolved check profile: ``auto`` is ``default`` (checker/profile.py)."""
        return "default" if self.falcon_shapes == "auto" else self.falcon_shapes

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

    def pipeline_config(self, check: Any) -> PipelineConfig:
        """The pipeline's own frozen settings, derived from these (``check``: the session's ``CheckOptions``)."""
        from pytest_kernelfalcon.pipeline.config import PipelineConfig

        rounds = self.falcon_max_rounds
        return PipelineConfig(workers=self.falcon_workers, max_rounds=rounds,
                              fuse_rounds=min(PipelineConfig.fuse_rounds, rounds),
                              compose_rounds=min(PipelineConfig.compose_rounds, rounds),
                              model=self.falcon_model, provider=self.resolved_provider(),
                              strategy=self.falcon_strategy, fuse=self.falcon_fuse,
                              base_url=self.falcon_base_url,
                              max_output_tokens=self.falcon_max_output_tokens,
                              llm_timeout_s=self.falcon_llm_timeout,
                              budget_usd=self.falcon_budget_usd, task_timeout_s=self.falcon_timeout,
                              check=check, prompts_dir=self.falcon_prompts, run_root=self.falcon_run_dir)


def default_of(dest: str) -> Any:
    """The default of option ``dest`` (the ``FalconConfig`` field's)."""
    return FalconConfig.__dataclass_fields__[dest].default


def ini_type(kind: str) -> str:
    """The ``parser.addini`` type of an option kind."""
    return {"bool": "bool", "int": "int", "float": "float"}.get(kind, "string")


def _read(config: pytest.Config, dest: str, kind: str, root: Path) -> Any:
    """The option's value from the command line, else its ini key, else ``None`` (the default applies)."""
    value = config.getoption(dest, None)
    if value is None or (kind == "bool" and value is False):
        value = _ini(config, dest, kind)
    if value is None:
        default = default_of(dest)
        return _convert(dest, kind, default, root) if kind == "path" and default is not None else None
    return _convert(dest, kind, value, root)


def _ini(config: pytest.Config, dest: str, kind: str) -> Any:
    import pytest

    try:
        value = config.getini(dest)
    except (ValueError, TypeError, pytest.UsageError) as exc:  # pytest >= 9 raises UsageError itself
        _usage(f"ini key {dest}: expected {'true or false' if kind == 'bool' else kind}: {exc}")
    return None if value in ("", None, []) else value


def _convert(dest: str, kind: str, value: Any, root: Path) -> Any:
    flag = "--" + dest.replace("_", "-")
    try:
        if kind == "bool":
            return value if isinstance(value, bool) else _strict_bool(str(value))
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


def _strict_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _shard(value: Any) -> tuple[int, int] | None:
    if value is None or isinstance(value, tuple):
        return value
    from pytest_kernelfalcon.reports.shard import parse_shard

    try:
        return parse_shard(str(value))
    except ValueError as exc:
        _usage(f"--falcon-shard: {exc}")
    return None


def _allowed_ops(value: Any) -> tuple[str, ...]:
    """The hybrid policy's aten op names, normalised once (an unknown name is a usage error)."""
    from pytest_kernelfalcon.core.ops import parse_allowed

    try:
        return parse_allowed(value)
    except ValueError as exc:
        _usage(f"--falcon-allow-torch: {exc}")
    return ()


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _usage(f"{flag} must be one of {', '.join(choices)}; got {value!r}")


def _usage(message: str) -> None:
    import pytest

    raise pytest.UsageError(message)
