"""The generators' committed inputs and the manifest that proves them.

Every file under ``tools/inputs/`` (the kernel's ``sysreg`` file, the extracted kernel facts, the
reference host dumps, the lab notes, the upstream RFC model references) is listed in
``SOURCES.toml`` with its upstream origin and sha256, so a clone regenerates and verifies the
committed data from its own files.  A missing or changed input is an error naming the file.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MANIFEST = HERE / "SOURCES.toml"


class MissingInput(FileNotFoundError):
    """A committed input the caller needs is not in the checkout."""


def relative(path: Path) -> str:
    """``path`` as the repository spells it (``tools/inputs/...``), for provenance strings."""
    return path.resolve().relative_to(ROOT).as_posix()


def path(name: str) -> Path:
    """The committed input ``name`` (relative to ``tools/inputs``); fails naming it when absent."""
    p = HERE / name
    if not p.exists():
        raise MissingInput(f"committed input {relative(p)} is missing from the checkout (see {relative(MANIFEST)})")
    return p


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def manifest() -> dict[str, dict[str, str]]:
    """{name relative to tools/inputs: {"origin": ..., "sha256": ...}} for every committed input."""
    return tomllib.loads(path("SOURCES.toml").read_text())["files"]


def origin(name: str) -> str:
    """Where the committed input ``name`` came from upstream."""
    return manifest()[name]["origin"]
