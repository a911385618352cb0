"""Reading and writing snapshot / definition files: size-limited reads, atomic writes
(a crash never leaves a half-written file where a reader would trust it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot, dumps, loads, loads_definition

#: A full snapshot is about 5 KiB; anything far larger is not one.
MAX_BYTES = 1 << 20


def read_bytes(path: str | os.PathLike[str], what: str, max_bytes: int = MAX_BYTES) -> bytes:
    """Read at most ``max_bytes`` + 1 bytes; a missing, unreadable or oversized file is an InputError
    whose message starts with ``what``."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{what}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what}: is a directory") from None
    except PermissionError:
        raise InputError(f"{what}: permission denied") from None
    if len(data) > max_bytes:
        raise InputError(f"{what}: larger than {max_bytes} bytes")
    return data


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    label = f"{what} {Path(path)}"
    data = read_bytes(path, label)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{label}: not UTF-8 text") from None


def load_snapshot(path: str | os.PathLike[str]) -> HostSnapshot:
    return loads(read_text(path, "snapshot"), f"snapshot {path}")


def load_definition(path: str | os.PathLike[str]) -> CpuDefinition:
    """A definition file; a HostSnapshot file also works (host-passthrough)."""
    return loads_definition(read_text(path, "definition"), f"definition {path}")


def atomic_write(path: str | os.PathLike[str], text: str, mode: int = 0o644, *, replace: bool = True) -> None:
    """Write via a temporary file in the same directory, fsync, then rename over ``path``.
    ``replace=False``: hard-link instead, so an existing ``path`` is never replaced (it raises
    FileExistsError and nothing is written)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if replace:
            os.replace(tmp, p)
            return
        os.link(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    os.unlink(tmp)  # linked: the name holds the file now


def save(obj: HostSnapshot | CpuDefinition, path: str | os.PathLike[str]) -> None:
    atomic_write(path, dumps(obj))
