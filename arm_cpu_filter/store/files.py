"""``file://DIR`` backend: one small JSON file per host and per instance, snapshots and
definitions under their fingerprint.  Writes are atomic (temporary file + rename), so a
reader never sees half a record; files are 0640 and directories 0750 (host data is not
secret, but it is nobody else's business either, and never world-readable)::

    DIR/hosts/<host>.json            {"host", "fingerprint", "taken_at"}
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
from arm_cpu_filter.snapshot.files import atomic_write
from arm_cpu_filter.store import (
    DEFINITION,
    SNAPSHOT,
    HostRecord,
    HostStore,
    InstanceRecord,
    StoreError,
    check_fingerprint,
)

FILE_MODE, DIR_MODE = 0o640, 0o750
_DIRS = {SNAPSHOT: "snapshots", DEFINITION: "definitions"}


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
        """``DIR/name``, created (with ``DIR``) as 0750 on first write."""
        d = self.root / name
        for p in (self.root, d):
            if p.is_dir():
                continue
            try:
                p.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                os.chmod(p, DIR_MODE)
            except OSError as exc:
                raise StoreError(f"store {self.url}: cannot create {p}: {exc.strerror}") from None
        return d

    def _write(self, path: Path, text: str) -> None:
        try:
            atomic_write(path, text, FILE_MODE)
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot write {path.name}: {exc.strerror}") from None

    def _read(self, path: Path) -> str | None:
        try:
            with path.open("r", encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"store {self.url}: cannot read {path}: {exc}") from None

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

    def _host_record(self, path: Path, data: dict[str, Any]) -> HostRecord:
        try:
            rec = HostRecord(str(data["host"]), str(data["fingerprint"]), float(data["taken_at"]))
        except (KeyError, TypeError, ValueError):
            raise StoreError(f"store {self.url}: hosts/{path.name} is corrupt (needs host, fingerprint, taken_at)") from None
        check_fingerprint(rec.fingerprint, f"store {self.url}: hosts/{path.name}")
        return rec

    # -- primitives ----------------------------------------------------------------------
    def _get_blob(self, kind: str, fingerprint: str) -> str | None:
        return self._read(self.root / _DIRS[kind] / f"{fingerprint}.json")

    def _put_blob(self, kind: str, fingerprint: str, text: str) -> None:
        self._write(self._dir(_DIRS[kind]) / f"{fingerprint}.json", text)

    def _put_host(self, record: HostRecord) -> None:
        self._write(self._dir("hosts") / f"{record.host}.json", json.dumps(record.to_dict()) + "\n")

    def _get_host(self, name: str) -> HostRecord | None:
        path = self.root / "hosts" / f"{name}.json"
        data = self._json(path)
        return None if data is None else self._host_record(path, data)

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
            if name.endswith(".json") and not name.startswith("."):
                path = d / name
                data = self._json(path)
                if data is not None:
                    rec = self._host_record(path, data)
                    out[rec.host] = rec
        return out

    def _delete_host(self, name: str) -> bool:
        try:
            (self.root / "hosts" / f"{name}.json").unlink()
            return True
        except FileNotFoundError:
            return False

    def _get_instance(self, uuid: str) -> InstanceRecord | None:
        path = self.root / "instances" / f"{uuid}.json"
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

    def _add_instance(self, record: InstanceRecord) -> bool:
        path = self._dir("instances") / f"{record.uuid}.json"
        if path.exists():
            return False
        self._write(path, json.dumps(record.to_dict()) + "\n")
        return True

    def _set_instance_host(self, uuid: str, host: str) -> None:
        rec = self._get_instance(uuid)
        if rec is not None:
            data = rec.to_dict() | {"host": host}
            self._write(self.root / "instances" / f"{uuid}.json", json.dumps(data) + "\n")
