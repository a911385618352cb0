"""``file://DIR`` backend: one small JSON file per host and per instance, snapshots and
definitions under their fingerprint.  Writes are atomic (temporary file + rename), so a
reader never sees half a record; files are 0640 and directories 0750 (host data is not
secret, but it is nobody else's business either, and never world-readable)::

    DIR/hosts/<host>.json            {"host", "fingerprint", "taken_at", "kernel", "boot_id", "problem"}
    DIR/instances/<uuid>.json        {"uuid", "fingerprint", "host", "recorded_at"}
    DIR/snapshots/<fingerprint>.json HostSnapshot
    DIR/definitions/<fingerprint>.json CPU definition
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.snapshot.files import atomic_write, read_bytes
from arm_cpu_filter.store import (
    DEFINITION,
    SNAPSHOT,
    HostRecord,
    HostStore,
    InstanceRecord,
    StoreError,
    check_fingerprint,
    check_host_name,
    host_record,
)

FILE_MODE, DIR_MODE = 0o640, 0o750
_DIRS = {SNAPSHOT: "snapshots", DEFINITION: "definitions"}


def makedirs(path: str | os.PathLike[str], mode: int) -> None:
    """Create ``path`` and every missing parent with ``mode``, whatever the umask (``mkdir -p``
    gives parents the umask's default: a world-writable parent would let anyone swap the
    directory for one of their own)."""
    missing = []
    p = Path(path)
    while not p.is_dir() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=mode)
        except FileExistsError:  # created by a concurrent writer, with its own mode
            continue
        os.chmod(d, mode)


class FileStore(HostStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root)
        self.url = f"file://{self.root}"

    @classmethod
    def from_url(cls, url: str) -> FileStore:
        path = unquote(url[len("file:"):])
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise InputError(f"store URL {url!r}: no directory (expected file://DIR)")
        return cls(path)

    # -- helpers -------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        """``DIR/name``, created (with ``DIR`` and its missing parents) as 0750 on first write."""
        d = self.root / name
        try:
            makedirs(d, DIR_MODE)
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot create {exc.filename}: {exc.strerror}") from None
        return d

    def _file(self, directory: str, name: str) -> Path:
        """``DIR/directory/name.json``; ``name`` must be one plain file name (the public API
        validates host names, uuids and fingerprints already: this is the last line)."""
        if not name or "/" in name or "\0" in name or name.startswith(".") or name != name.strip():
            raise StoreError(f"store {self.url}: {name!r} cannot name a file")
        return self.root / directory / f"{name}.json"

    def _write(self, path: Path, text: str) -> None:
        try:
            atomic_write(path, text, FILE_MODE)
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot write {path.name}: {exc.strerror}") from None

    def _read(self, path: Path) -> str | None:
        """The file's text (size-limited: a planted huge file is refused, not loaded); None if absent."""
        what = f"store {self.url}: {path.parent.name}/{path.name}"
        try:
            data = read_bytes(path, what)
        except InputError as exc:
            if not os.path.lexists(path):
                return None
            raise StoreError(str(exc)) from None
        except OSError as exc:
            raise StoreError(f"{what}: cannot read: {exc.strerror}") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise StoreError(f"{what} is corrupt (not UTF-8)") from None

    def _json(self, path: Path) -> dict[str, Any] | None:
        text = self._read(path)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            raise StoreError(f"store {self.url}: {path.parent.name}/{path.name} is corrupt (not JSON)") from None
        if not isinstance(data, dict):
            raise StoreError(f"store {self.url}: {path.parent.name}/{path.name} is corrupt (not an object)")
        return data

    def _host_record(self, name: str) -> HostRecord | None:
        """hosts/<name>.json; a damaged file is a problem of host ``name`` only."""
        path = self._file("hosts", name)
        try:
            data = self._json(path)
        except StoreError as exc:
            return HostRecord(name, "", 0.0, problem=str(exc))
        return None if data is None else host_record(data, name, f"store {self.url}: hosts/{path.name}")

    # -- primitives ----------------------------------------------------------------------
    def _get_blob(self, kind: str, fingerprint: str) -> str | None:
        return self._read(self._file(_DIRS[kind], fingerprint))

    def _put_blob(self, kind: str, fingerprint: str, text: str) -> None:
        self._dir(_DIRS[kind])
        self._write(self._file(_DIRS[kind], fingerprint), text)

    def _put_host(self, record: HostRecord) -> None:
        self._dir("hosts")
        self._write(self._file("hosts", record.host), json.dumps(record.to_dict()) + "\n")

    def _get_host(self, name: str) -> HostRecord | None:
        return self._host_record(name)

    def _get_hosts(self) -> dict[str, HostRecord]:
        d = self.root / "hosts"
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot list {d}: {exc.strerror}") from None
        out: dict[str, HostRecord] = {}
        for name in names:
            stem = name[:-len(".json")]
            if not name.endswith(".json") or name.startswith("."):
                continue  # temporary files of writes in progress (or killed), anything else
            try:
                check_host_name(stem)
            except InputError:
                continue  # no host can have this name, so no host can be admitted by it
            rec = self._host_record(stem)
            if rec is not None:  # None: removed since the listing
                out[stem] = rec
        return out

    def _delete_host(self, name: str) -> bool:
        try:
            self._file("hosts", name).unlink()
            return True
        except FileNotFoundError:
            return False

    def _get_instance(self, uuid: str) -> InstanceRecord | None:
        path = self._file("instances", uuid)
        data = self._json(path)
        if data is None:
            return None
        try:
            rec = InstanceRecord(str(data["uuid"]), str(data["fingerprint"]),
                                 None if data.get("host") is None else str(data["host"]), float(data["recorded_at"]))
        except (KeyError, TypeError, ValueError):
            raise StoreError(f"store {self.url}: instances/{path.name} is corrupt") from None
        check_fingerprint(rec.fingerprint, f"store {self.url}: instances/{path.name}")
        return rec

    def _get_instance_ids(self) -> list[str]:
        folder = self.root / "instances"
        return [p.stem for p in folder.glob("*.json")] if folder.is_dir() else []

    def _add_instance(self, record: InstanceRecord) -> bool:
        self._dir("instances")
        path = self._file("instances", record.uuid)
        if path.exists():
            return False
        self._write(path, json.dumps(record.to_dict()) + "\n")
        return True

    def _set_instance_host(self, uuid: str, host: str) -> None:
        rec = self._get_instance(uuid)
        if rec is not None:
            data = rec.to_dict() | {"host": host}
            self._write(self._file("instances", uuid), json.dumps(data) + "\n")
