"""Prompt templates: package data files, overridable from a directory, hashed into the run record."""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_NAMES = ("system", "fuse", "generate", "compose", "feedback", "format_feedback", "duplicate",
                  "direct", "triton_example")


@dataclass(frozen=True)
class Prompts:
    """The template texts a run uses, by name, with where each came from."""

    texts: Mapping[str, str]
    origins: Mapping[str, str]

    def hashes(self) -> dict[str, str]:
        """Return ``{name: sha256}`` of every template."""
        return {name: template_hash(text) for name, text in sorted(self.texts.items())}

    def hashes_of(self, *names: str) -> dict[str, str]:
        """Return ``{name: sha256}`` of the named templates (those one call used)."""
        return {name: template_hash(self.texts[name]) for name in names}

    def render(self, name: str, **values: object) -> str:
        """Return template ``name`` with ``$name`` placeholders filled (a missing value raises)."""
        return string.Template(self.texts[name]).substitute({k: str(v) for k, v in values.items()})


def template_hash(text: str) -> str:
    """Return the sha256 hex digest of a template's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_dir() -> Path:
    """Return the directory of the bundled templates (package data)."""
    return Path(__file__).resolve().parent.parent / "prompts"


def load_prompts(override_dir: Path | None = None) -> Prompts:
    """Return the bundled templates, each replaced by ``override_dir/<name>.md`` where that exists."""
    texts: dict[str, str] = {}
    origins: dict[str, str] = {}
    for name in TEMPLATE_NAMES:
        path = _pick(name, override_dir)
        texts[name] = path.read_text(encoding="utf-8")
        origins[name] = str(path)
    return Prompts(texts=texts, origins=origins)


def _pick(name: str, override_dir: Path | None) -> Path:
    if override_dir is not None:
        if not Path(override_dir).is_dir():
            raise FileNotFoundError(f"prompt directory {override_dir} does not exist")
        candidate = Path(override_dir) / f"{name}.md"
        if candidate.is_file():
            return candidate
    return default_dir() / f"{name}.md"


def template_hashes(override_dir: Path | None = None) -> dict[str, str]:
    """Return ``{name: sha256}`` of the templates a run with ``override_dir`` uses."""
    return load_prompts(override_dir).hashes()
