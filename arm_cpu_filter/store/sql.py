"""SQL backend through SQLAlchemy Core: SQLite for one node, the deployment's
PostgreSQL/MySQL for many.  Every statement is built with SQLAlchemy constructs, so values
always travel as bound parameters.  Tables are created on first use (``arm_cpu_filter_*``).

Database outages: pooled connections are pinged before use (a restarted server's dead
connections are replaced), every failure is a one-line StoreError without SQL text and with
the password masked, and the next call simply tries again -- no reset is needed to recover.

SQLite busy: a statement that finds the database locked ("database is locked": another process
switching it to WAL, creating the tables, or a write snapshot gone stale) is retried a bounded
number of times after short pauses, so a reader does not report the store unavailable while
an agent commits.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.extras import missing_extra, require
from arm_cpu_filter.store import (
    DEFINITION,
    SNAPSHOT,
    HostRecord,
    HostStore,
    InstanceRecord,
    StoreError,
    check_fingerprint,
    host_record,
)
from arm_cpu_filter.store.files import DIR_MODE, FILE_MODE, makedirs

#: seconds a PostgreSQL connection attempt may take (libpq waits for the OS TCP timeout
#: otherwise: minutes of a stuck scheduler when the database host is unreachable)
CONNECT_TIMEOUT = 10
_PASSWORD = re.compile(r"^[\w+.-]+://[^:/@]*:([^@]*)@")
#: pauses (seconds) before each retry of an SQLite statement that found the database locked;
#: each attempt also waits up to the driver's busy timeout (pysqlite: 5 s, ``?timeout=`` in the URL)
SQLITE_BUSY_PAUSES = (0.05, 0.2, 0.5, 1.0)


def _tables(sa: Any) -> tuple[Any, dict[str, Any], Any, Any]:
    md = sa.MetaData()
    blob = {
        kind: sa.Table(
            f"arm_cpu_filter_{kind}s", md,
            sa.Column("fingerprint", sa.String(64), primary_key=True),
            sa.Column("body", sa.Text, nullable=False),
        )
        for kind in (SNAPSHOT, DEFINITION)
    }
    hosts = sa.Table(
        "arm_cpu_filter_hosts", md,
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("taken_at", sa.Float, nullable=False),
        sa.Column("kernel", sa.String(255), nullable=True),
        sa.Column("boot_id", sa.String(64), nullable=True),
        sa.Column("problem", sa.Text, nullable=True),
    )
    instances = sa.Table(
        "arm_cpu_filter_instances", md,
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )
    return md, blob, hosts, instances


def _sqlite_busy(exc: Exception) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED as the driver words them."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "database is locked" in text or "database table is locked" in text


class SqlStore(HostStore):
    def __init__(self, url: str, sleep: Callable[[float], None] = time.sleep) -> None:
        """``sleep`` pauses between retries of a locked SQLite database (tests inject their own)."""
        super().__init__()
        self._sleep = sleep
        sa = require("sqlalchemy", "an SQL store")
        sa_exc = require("sqlalchemy.exc", "an SQL store")

        self._sa, self._exc = sa, sa_exc
        #: every spelling of the password: none may appear in any message
        self._secrets = _secrets(url)
        try:
            parsed = sa.engine.make_url(url)
            self._secrets = _secrets(url, parsed)
            hidden = {k: "***" for k in parsed.query if "pass" in k.lower()}  # ?password=...
            self.url = (parsed.update_query_dict(hidden) if hidden else parsed).render_as_string(hide_password=True)
            self._engine, self._sqlite_file = _engine(sa, parsed)
        except sa_exc.NoSuchModuleError:
            raise InputError(f"store URL {url.split('://')[0]}://...: unknown database dialect or driver") from None
        except ImportError as exc:  # the URL's database driver is not installed
            missing = missing_extra(exc, f"store URL {url.split('://')[0]}://...")
            if missing is not None:
                raise missing from None
            raise InputError(f"store URL: {self._mask(str(exc).splitlines()[0])}") from None
        except (sa_exc.ArgumentError, ValueError) as exc:
            raise InputError(f"store URL: {self._mask(str(exc).splitlines()[0])}") from None
        self._md, self._blob, self._hosts, self._instances = _tables(sa)
        self._ready = False

    @property
    def has_password(self) -> bool:
        """The URL carries a password (the agent warns when other users could read it)."""
        return bool(self._secrets)

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, exc: Exception) -> StoreError:
        """One line: the DBAPI's first line, no SQL text or parameters, no password."""
        orig = getattr(exc, "orig", None)
        lines = str(orig if orig is not None else exc).strip().splitlines()
        reason = f"{type(orig or exc).__name__}: {lines[0] if lines else 'database error'}"
        return StoreError(f"store {self.url}: {self._mask(reason)}")

    def _create_tables(self) -> None:
        try:
            self._md.create_all(self._engine, checkfirst=True)
        except self._exc.SQLAlchemyError:
            # another process created them between our check and our CREATE: check again
            self._md.create_all(self._engine, checkfirst=True)

    def _conn(self, write: bool = False) -> Any:
        """A connection (transaction when writing); tables are created on first use."""
        try:
            if not self._ready:
                if self._sqlite_file:
                    _private_file(self._sqlite_file)
                self._create_tables()
                self._ready = True
            return self._engine.begin() if write else self._engine.connect()
        except self._exc.SQLAlchemyError as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot create {exc.filename}: {exc.strerror}") from None

    def _run(self, write: bool, fn: Any) -> Any:
        """``fn(conn)`` in a connection (a transaction when writing, rolled back on failure, so a
        retry after SQLite reported the database locked starts afresh)."""
        pauses = iter(SQLITE_BUSY_PAUSES if self._engine.dialect.name == "sqlite" else ())
        while True:
            try:
                with self._conn(write) as conn:
                    return fn(conn)
            except (self._exc.SQLAlchemyError, StoreError) as exc:
                cause = exc.__cause__ or exc.__context__ if isinstance(exc, StoreError) else exc
                pause = next(pauses, None) if cause is not None and _sqlite_busy(cause) else None
                if pause is None:
                    raise (exc if isinstance(exc, StoreError) else self._error(exc)) from None
                self._sleep(pause)

    def _insert_ignoring_duplicate(self, table: Any, values: dict[str, Any]) -> bool:
        try:
            self._run(True, lambda c: c.execute(table.insert().values(**values)))
            return True
        except StoreError:
            # a concurrent writer may have inserted the same key: fine if it is there now
            key = next(iter(table.primary_key.columns))
            found = self._run(False, lambda c: c.execute(
                self._sa.select(key).where(key == values[key.name])).first())
            if found is None:
                raise
            return False

    # -- primitives ----------------------------------------------------------------------
    def _get_blob(self, kind: str, fingerprint: str) -> str | None:
        t = self._blob[kind]
        row = self._run(False, lambda c: c.execute(self._sa.select(t.c.body).where(t.c.fingerprint == fingerprint)).first())
        return None if row is None else row[0]

    def _put_blob(self, kind: str, fingerprint: str, text: str) -> None:
        """Insert, or replace a damaged body (same fingerprint: the same content, whoever wins)."""
        t = self._blob[kind]
        if not self._run(True, lambda c: c.execute(t.update().where(t.c.fingerprint == fingerprint).values(body=text)).rowcount):
            self._insert_ignoring_duplicate(t, {"fingerprint": fingerprint, "body": text})

    def _put_host(self, record: HostRecord) -> None:
        t = self._hosts

        def upsert(conn: Any) -> None:
            values = {k: v for k, v in record.to_dict().items() if k != "host"}
            if conn.execute(t.update().where(t.c.host == record.host).values(**values)).rowcount == 0:
                conn.execute(t.insert().values(host=record.host, **values))

        try:
            self._run(True, upsert)
        except StoreError:  # lost an insert race with another publisher: update instead
            self._run(True, upsert)

    def _record(self, row: Any) -> HostRecord:
        """A damaged row is a problem of its host only."""
        return host_record(row._mapping, row.host, f"store {self.url}: the row of host {row.host}")

    def _get_host(self, name: str) -> HostRecord | None:
        t = self._hosts
        row = self._run(False, lambda c: c.execute(self._sa.select(t).where(t.c.host == name)).first())
        return None if row is None else self._record(row)

    def _get_hosts(self) -> dict[str, HostRecord]:
        t = self._hosts
        rows = self._run(False, lambda c: c.execute(self._sa.select(t)).all())
        return {row.host: self._record(row) for row in rows}

    def _delete_host(self, name: str) -> bool:
        t = self._hosts
        return bool(self._run(True, lambda c: c.execute(t.delete().where(t.c.host == name)).rowcount))

    def _get_instance(self, uuid: str) -> InstanceRecord | None:
        t = self._instances
        row = self._run(False, lambda c: c.execute(self._sa.select(t).where(t.c.uuid == uuid)).first())
        if row is None:
            return None
        check_fingerprint(row.fingerprint, f"store {self.url}: instance {uuid}")
        return InstanceRecord(row.uuid, row.fingerprint, row.host, float(row.recorded_at))

    def _get_instance_ids(self) -> list[str]:
        t = self._instances
        return [row.uuid for row in self._run(False, lambda c: c.execute(self._sa.select(t.c.uuid)).all())]

    def _add_instance(self, record: InstanceRecord) -> bool:
        return self._insert_ignoring_duplicate(self._instances, record.to_dict())

    def _set_instance_host(self, uuid: str, host: str) -> None:
        t = self._instances
        self._run(True, lambda c: c.execute(t.update().where(t.c.uuid == uuid).values(host=host)))


def _secrets(url: str, parsed: Any = None) -> list[str]:
    """The password as written in ``url`` and decoded, and any ``?password=``; longest first."""
    found = _PASSWORD.match(url)
    out = {found.group(1), unquote(found.group(1))} if found else set()
    if parsed is not None:
        out |= {parsed.password or ""} | {str(v) for k, v in parsed.query.items() if "pass" in k.lower()}
    return sorted(out - {""}, key=len, reverse=True)


def _engine(sa: Any, parsed: Any) -> tuple[Any, str | None]:
    """The engine (connections pinged before use; PostgreSQL connects time out; SQLite in WAL
    mode) and the SQLite database file to create private, if any."""
    connect_args = {}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg2" \
            and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    if parsed.get_backend_name() != "sqlite":
        return engine, None
    sa.event.listen(engine, "connect", _sqlite_wal)
    db = parsed.database or ""
    return engine, (db if db and db != ":memory:" and not db.startswith("file:") else None)


def _private_file(path: str) -> None:
    """Create the SQLite file (and missing directories) as the file store would: 0640 in 0750
    directories, whatever the umask; SQLite gives its -wal and -shm files the same mode."""
    makedirs(os.path.dirname(os.path.abspath(path)), DIR_MODE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.fchmod(fd, FILE_MODE)
    os.close(fd)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """Write-ahead logging: the scheduler reads while an agent writes, instead of waiting for
    its lock (and a writer does not wait for readers); a crash still leaves old or new."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()
