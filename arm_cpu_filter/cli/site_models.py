"""Writing site model files: the next free ``NAME-vN.toml`` of the site models directory, atomically,
never over an existing version (a published version never changes)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.snapshot.files import atomic_write


def versions(directory: Path, family: str) -> list[int]:
    """The versions of ``family`` already in ``directory``."""
    pattern = re.compile(rf"^{re.escape(family)}-v([1-9][0-9]*)\.toml$")
    names = os.listdir(directory) if directory.is_dir() else []
    return sorted(int(m.group(1)) for n in names if (m := pattern.match(n)))


def write_next_version(directory: Path, family: str, text_for: Callable[[str], str]) -> Path:
    """Write ``text_for(name)`` as ``directory/name.toml``, ``name`` the next free ``family-vN``.

    The text is written atomically without replacing (``atomic_write(replace=False)``: a
    hard link, which fails if the name exists), so a concurrent writer or an existing version
    is never replaced, and a reader never sees a partial file."""
    directory.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        name = f"{family}-v{(versions(directory, family) or [0])[-1] + 1}"
        path = directory / f"{name}.toml"
        try:
            atomic_write(path, text_for(name), replace=False)
        except FileExistsError:
            continue  # another writer took this version: take the next
        _fsync_dir(directory)
        return path
    raise InputError(f"{directory}: could not find a free version of {family}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
