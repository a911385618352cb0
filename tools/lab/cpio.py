"""Minimal gzip'd newc cpio writer: the host image has no `cpio`, and Python's stdlib has none."""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Iterable, Iterator

Entry = tuple[str, int, bytes]  # (path inside the archive, st_mode, data or symlink target)


def _header(ino: int, mode: int, name: str, size: int, mtime: int = 0) -> bytes:
    name_b = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(mode) else 1
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, len(name_b), 0)
    head = ("070701" + "".join(f"{x:08x}" for x in fields)).encode() + name_b
    return head + b"\0" * (-len(head) % 4)


def tree_entries(root: str) -> Iterator[Entry]:
    """Entries for every file, directory and symlink under `root` (sorted: reproducible archives)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                yield rel, st.st_mode, os.readlink(path).encode()
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    yield rel, st.st_mode, f.read()
            elif stat.S_ISDIR(st.st_mode):
                yield rel, st.st_mode, b""


def write(out_path: str, entries: Iterable[Entry], level: int = 1) -> None:
    """Write `entries` as one gzip'd newc archive (the kernel also unpacks concatenations of these)."""
    with gzip.GzipFile(out_path, "wb", compresslevel=level, mtime=0) as f:
        ino = 1
        for rel, mode, data in entries:
            f.write(_header(ino, mode, rel, len(data)))
            f.write(data + b"\0" * (-len(data) % 4))
            ino += 1
        f.write(_header(0, 0, "TRAILER!!!", 0))
