"""HostStore: where hosts publish their snapshots and where the scheduler reads them.

Content-addressed: snapshots and CPU definitions are stored once under their fingerprint
(a fleet has few distinct ones) and verified against it on load, so a damaged record is
reported as corrupt instead of being trusted.  Beside them: host -> (snapshot fingerprint,
time the host last vouched for it, the kernel and boot it was read on, and a ``problem`` when
the record must not be used: withdrawn by its agent, or damaged) and instance uuid ->
(definition fingerprint, host).  A damaged host record is a problem of that host only.

Backends: ``file://DIR`` (:mod:`arm_cpu_filter.store.files`) and SQLAlchemy URLs
(:mod:`arm_cpu_filter.store.sql`).  ``open_store(url)`` picks one.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
import uuid as uuidlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arm_cpu_filter.errors import ArmCpuFilterError, InputError
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot, dumps, loads, loads_definition

SNAPSHOT, DEFINITION = "snapshot", "definition"
_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class StoreError(ArmCpuFilterError):
    """The store cannot be read or written, or holds a damaged record."""


@dataclass(frozen=True, slots=True)
class HostRecord:
    host: str
    fingerprint: str
    #: epoch seconds when the host last read (or an operator last vouched for) this snapshot
    taken_at: float
    #: ``uname -r`` and boot id of the host when its agent published (None: published by hand);
    #: the agent withdraws the record when either differs after a reboot
    kernel: str | None = None
    boot_id: str | None = None
    #: None when usable; else why the host must fail closed (withdrawn by its agent, damaged record)
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "fingerprint": self.fingerprint, "taken_at": self.taken_at,
                "kernel": self.kernel, "boot_id": self.boot_id, "problem": self.problem}


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    uuid: str
    #: fingerprint of the CPU definition the instance started with
    fingerprint: str
    #: the host the agent last saw the instance running on
    host: str | None
    recorded_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "fingerprint": self.fingerprint, "host": self.host,
                "recorded_at": self.recorded_at}


def check_host_name(name: Any) -> str:
    if not isinstance(name, str) or not _HOST.match(name):
        raise InputError(f"host name {name!r}: expected letters, digits, '.', '-', '_' (at most 255)")
    return name


def check_instance_uuid(value: Any) -> str:
    try:
        return str(uuidlib.UUID(str(value)))
    except ValueError:
        raise InputError(f"instance {value!r}: not a UUID") from None


def check_fingerprint(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _FINGERPRINT.match(value):
        raise StoreError(f"{what}: {value!r} is not a sha256 fingerprint")
    return value


def host_record(data: Mapping[str, Any], host: str, what: str) -> HostRecord:
    """The HostRecord of stored ``data`` for ``host``; when the data is damaged, a record whose
    ``problem`` says so (fails that host closed, not the whole store).  ``what`` names the record."""

    def opt(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    try:
        rec = HostRecord(str(data["host"]), str(data["fingerprint"]), float(data["taken_at"]),
                         opt("kernel"), opt("boot_id"), opt("problem"))
    except (KeyError, TypeError, ValueError):
        return HostRecord(host, "", 0.0, problem=f"{what} is corrupt (needs host, fingerprint, taken_at)")
    why = None
    if rec.host != host:
        why = f"it names host {rec.host!r}"
    elif not math.isfinite(rec.taken_at):
        why = f"taken_at is {rec.taken_at}"
    elif not rec.problem and not _FINGERPRINT.match(rec.fingerprint):
        why = f"{rec.fingerprint!r} is not a sha256 fingerprint"
    return rec if why is None else HostRecord(host, "", 0.0, problem=f"{what} is corrupt ({why})")


class HostStore(ABC):
    """Common logic; a backend implements the ``_``-prefixed primitives."""

    #: URL with any password hidden (safe for logs)
    url: str

    def __init__(self) -> None:
        self._blobs: dict[tuple[str, str], HostSnapshot | CpuDefinition] = {}

    # -- writes --------------------------------------------------------------------------
    def publish(self, snapshot: HostSnapshot, host: str | None = None, taken_at: float | None = None,
                kernel: str | None = None, boot_id: str | None = None) -> HostRecord:
        """Store ``snapshot`` (once per fingerprint) and point ``host`` (default: its own name) at it.

        The body is written before the host record, each atomically: a crash in between leaves
        the old record (an unreferenced body is harmless).  A missing or damaged body is written
        again, so the next publish repairs what the filter refuses."""
        name = check_host_name(snapshot.host if host is None else host)
        fp = snapshot.fingerprint
        if not self._intact(SNAPSHOT, fp):
            self._put_blob(SNAPSHOT, fp, dumps(snapshot))
        record = HostRecord(name, fp, time.time() if taken_at is None else float(taken_at), kernel, boot_id)
        self._put_host(record)
        return record

    def withdraw(self, host: str, reason: str) -> HostRecord | None:
        """Mark ``host``'s record unusable until its next publish (the agent does this when the
        kernel or boot changed, before its slow KVM read).  None when the host has no record."""
        record = self.host(host)
        if record is None:
            return None
        record = dataclasses.replace(record, problem=(
            f"CPU data of host {record.host} withdrawn by its agent: {reason}; "
            "refused until the agent publishes a fresh snapshot"))
        self._put_host(record)
        return record

    def record_instance(self, instance: str, definition: CpuDefinition, host: str | None) -> bool:
        """Remember the CPU an instance started with; a known instance keeps its first
        definition (only its host is updated).  True when the instance was new."""
        uuid = check_instance_uuid(instance)
        if host is not None:
            check_host_name(host)
        known = self._get_instance(uuid)
        if known is not None:
            if host and known.host != host:
                self._set_instance_host(uuid, host)
            return False
        fp = definition.fingerprint
        if not self._intact(DEFINITION, fp):
            self._put_blob(DEFINITION, fp, dumps(definition))
        return self._add_instance(InstanceRecord(uuid, fp, host, time.time()))

    def remove_host(self, host: str) -> bool:
        return self._delete_host(check_host_name(host))

    # -- reads ---------------------------------------------------------------------------
    def hosts(self) -> dict[str, HostRecord]:
        return self._get_hosts()

    def host(self, name: str) -> HostRecord | None:
        return self._get_host(check_host_name(name))

    def instance(self, instance: str) -> InstanceRecord | None:
        return self._get_instance(check_instance_uuid(instance))

    def instance_ids(self) -> list[str]:
        """Every recorded instance uuid, sorted (for fleet-wide questions such as a kernel upgrade)."""
        return sorted(self._get_instance_ids())

    def snapshot(self, fingerprint: str) -> HostSnapshot:
        obj = self._load(SNAPSHOT, fingerprint)
        assert isinstance(obj, HostSnapshot)
        return obj

    def definition(self, fingerprint: str) -> CpuDefinition:
        obj = self._load(DEFINITION, fingerprint)
        assert isinstance(obj, CpuDefinition)
        return obj

    def host_snapshot(self, name: str) -> HostSnapshot | None:
        """The snapshot ``name`` points at; None without a record, StoreError when it has a problem."""
        record = self.host(name)
        if record is not None and record.problem:
            raise StoreError(record.problem)
        return None if record is None else self.snapshot(record.fingerprint)

    def _load(self, kind: str, fingerprint: str) -> HostSnapshot | CpuDefinition:
        key = (kind, fingerprint)
        cached = self._blobs.get(key)
        if cached is not None:
            return cached
        obj = self._read_blob(kind, fingerprint)
        self._blobs[key] = obj
        return obj

    def _intact(self, kind: str, fingerprint: str) -> bool:
        """The stored body is there and hashes to its fingerprint (read again, not from the cache)."""
        try:
            self._read_blob(kind, fingerprint)
            return True
        except StoreError:
            return False

    def _read_blob(self, kind: str, fingerprint: str) -> HostSnapshot | CpuDefinition:
        """The body stored under ``fingerprint``, verified against it: a StoreError otherwise."""
        check_fingerprint(fingerprint, f"store {self.url}: {kind}")
        text = self._get_blob(kind, fingerprint)
        if text is None:
            raise StoreError(f"store {self.url}: {kind} {fingerprint[:12]} is missing")
        what = f"store {self.url}: {kind} {fingerprint[:12]}"
        try:
            obj: HostSnapshot | CpuDefinition = loads(text, what) if kind == SNAPSHOT else loads_definition(text, what)
        except InputError as exc:
            raise StoreError(f"corrupt record: {exc}") from None
        if obj.fingerprint != fingerprint:
            raise StoreError(f"{what} is corrupt: its content has fingerprint {obj.fingerprint[:12]}")
        return obj

    # -- backend primitives ----------------------------------------------------------------
    @abstractmethod
    def _get_blob(self, kind: str, fingerprint: str) -> str | None: ...

    @abstractmethod
    def _put_blob(self, kind: str, fingerprint: str, text: str) -> None: ...

    @abstractmethod
    def _put_host(self, record: HostRecord) -> None: ...

    @abstractmethod
    def _get_host(self, name: str) -> HostRecord | None: ...

    @abstractmethod
    def _get_hosts(self) -> dict[str, HostRecord]: ...

    @abstractmethod
    def _delete_host(self, name: str) -> bool: ...

    @abstractmethod
    def _get_instance(self, uuid: str) -> InstanceRecord | None: ...

    @abstractmethod
    def _get_instance_ids(self) -> list[str]: ...

    @abstractmethod
    def _add_instance(self, record: InstanceRecord) -> bool: ...

    @abstractmethod
    def _set_instance_host(self, uuid: str, host: str) -> None: ...


def open_store(url: str, database_options: Mapping[str, Any] | None = None) -> HostStore:
    """``file://DIR`` or an SQLAlchemy URL; a clear error for anything else.  ``database_options``
    are oslo.db options by name for an SQL store (``conf.store_settings``)."""
    if not isinstance(url, str) or not url.strip():
        raise InputError("store URL: empty (expected file://DIR or an SQLAlchemy URL)")
    url = url.strip()
    if url.startswith("file:"):
        from arm_cpu_filter.store.files import FileStore

        return FileStore.from_url(url)
    if "://" in url:
        from arm_cpu_filter.store.sql import SqlStore

        return SqlStore(url, options=database_options)
    raise InputError(f"store URL {url!r}: expected file://DIR or an SQLAlchemy URL like sqlite:///PATH")
