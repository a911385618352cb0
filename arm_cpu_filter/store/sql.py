"""SQL backend through SQLAlchemy Core, with engines, transactions and retries from oslo.db
(the library every OpenStack service uses): SQLite for one node, the deployment's
MySQL/MariaDB or PostgreSQL for many.  Every statement is built with SQLAlchemy constructs, so
values always travel as bound parameters.

Schema: alembic migrations (:mod:`arm_cpu_filter.store.migrations`).  A database without any
store table gets the current schema on first use; one at another revision is refused with a
message to run ``arm-cpu-filter db sync``, so the scheduler and agent fail closed until the
operator upgrades it in place.

Database outages: connections are pinged before use (a restarted server's dead connections
are replaced), write transactions are retried on deadlock and lost connection
(``oslo_db.api.wrap_db_retry``), every failure is a one-line StoreError without SQL text and
with the password masked, and the next call simply tries again -- no reset is needed to recover.

SQLite: write-ahead logging, so a reader reads the last committed state while a writer holds
its transaction open; a statement that still finds the database locked (another process
switching it to WAL, creating the tables, or a write snapshot gone stale) is retried a bounded
number of times after short pauses, so a reader does not report the store unavailable while
an agent commits.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from oslo_db import api as db_api
from oslo_db import exception as db_exception
from oslo_db import options as db_options
from oslo_db.sqlalchemy import enginefacade
from sqlalchemy import exc as sa_exc

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.extras import missing_extra
from arm_cpu_filter.store import (
    DEFINITION,
    SNAPSHOT,
    HostRecord,
    HostStore,
    InstanceRecord,
    StoreError,
    check_fingerprint,
    host_record,
    migrations,
)
from arm_cpu_filter.store.files import DIR_MODE, FILE_MODE, makedirs

#: seconds a PostgreSQL connection attempt may take (libpq waits for the OS TCP timeout
#: otherwise: minutes of a stuck scheduler when the database host is unreachable)
CONNECT_TIMEOUT = 10
_PASSWORD = re.compile(r"^[\w+.-]+://[^:/@]*:([^@]*)@")
#: pauses (seconds) before each retry of an SQLite statement that found the database locked;
#: each attempt also waits up to the driver's busy timeout (pysqlite: 5 s, ``?timeout=`` in the URL)
SQLITE_BUSY_PAUSES = (0.05, 0.2, 0.5, 1.0)
#: oslo.db's options of the write retry (``[arm_cpu_filter_database]``) -> ``wrap_db_retry`` arguments
WRITE_RETRY_OPTIONS = {"db_max_retries": "max_retries", "db_retry_interval": "retry_interval",
                       "db_inc_retry_interval": "inc_retry_interval", "db_max_retry_interval": "max_retry_interval"}


_OSLO_DB_DEFAULTS = {opt.name: opt.default for opt in db_options.database_opts}
#: what a database failure raises: SQLAlchemy's errors, and oslo.db's translations of them
_DB_ERRORS = (sa_exc.SQLAlchemyError, db_exception.DBError)


def _tables() -> tuple[dict[str, Any], Any, Any]:
    """The tables as the current migration head leaves them (what the queries are built on)."""
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
        sa.Column("taken_at", sa.Double, nullable=False),
        sa.Column("kernel", sa.String(255), nullable=True),
        sa.Column("boot_id", sa.String(64), nullable=True),
        sa.Column("problem", sa.Text, nullable=True),
    )
    instances = sa.Table(
        "arm_cpu_filter_instances", md,
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("recorded_at", sa.Double, nullable=False),
    )
    return blob, hosts, instances


def _dbapi_error(exc: BaseException) -> BaseException:
    """The driver's own error behind oslo.db's and SQLAlchemy's wrappers (else ``exc``)."""
    inner = getattr(exc, "inner_exception", None) or exc
    orig = getattr(inner, "orig", None)
    return orig if orig is not None else inner


def _sqlite_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED as the driver words them."""
    text = str(_dbapi_error(exc)).lower()
    return "database is locked" in text or "database table is locked" in text


class _TransactionOwner:
    """What enginefacade keeps a store's per-thread transaction state on (one per store)."""


class SqlStore(HostStore):
    def __init__(self, url: str, sleep: Callable[[float], None] = time.sleep,
                 options: Mapping[str, Any] | None = None) -> None:
        """``options``: oslo.db options by name (``[arm_cpu_filter_database]``; the engine's and
        the write retry's); unset ones keep oslo.db's defaults.  ``sleep`` pauses between
        retries of a locked SQLite database (tests inject their own)."""
        super().__init__()
        self._sleep = sleep
        #: every spelling of the password: none may appear in any message
        self._secrets = _secrets(url)
        try:
            parsed = sa.engine.make_url(url)
            self._secrets = _secrets(url, parsed)
            hidden = {k: "***" for k in parsed.query if "pass" in k.lower()}  # ?password=...
            self.url = (parsed.update_query_dict(hidden) if hidden else parsed).render_as_string(hide_password=True)
            parsed.get_dialect().import_dbapi()  # an unknown dialect or a missing driver fails now, not at first use
        except sa_exc.NoSuchModuleError:
            raise InputError(f"store URL {url.split('://')[0]}://...: unknown database dialect or driver") from None
        except ImportError as exc:  # the URL's database driver is not installed
            missing = missing_extra(exc, f"store URL {url.split('://')[0]}://...")
            if missing is not None:
                raise missing from None
            raise InputError(f"store URL: {self._mask(str(exc).splitlines()[0])}") from None
        except (sa_exc.ArgumentError, ValueError) as exc:
            raise InputError(f"store URL: {self._mask(str(exc).splitlines()[0])}") from None
        engine_options = dict(options or {})
        retry = {arg: engine_options.pop(name, _OSLO_DB_DEFAULTS[name]) for name, arg in WRITE_RETRY_OPTIONS.items()}
        self._retry_writes = _write_retry(retry)
        self._facade = enginefacade.transaction_context()
        try:
            self._facade.configure(connection=url, max_retries=0, **_connect_timeout(parsed, engine_options))
        except TypeError as exc:  # an option enginefacade does not know
            raise InputError(f"store options: {exc}") from None
        self._facade.append_on_engine_create(_on_engine_create)
        self._owner = _TransactionOwner()
        self._sqlite_file = _sqlite_file(parsed)
        #: SQLite: an idle connection held for the store's lifetime (see ``_keep_wal``)
        self._wal_keeper: sqlite3.Connection | None = None
        self._blob, self._hosts, self._instances = _tables()
        self._ready = False

    @property
    def _engine(self) -> Any:
        """The writer engine (tests reach behind the store with it)."""
        return self._facade.writer.get_engine()

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
        cause = _dbapi_error(exc)
        lines = str(cause).strip().splitlines()
        reason = f"{type(cause).__name__}: {lines[0] if lines else 'database error'}"
        return StoreError(f"store {self.url}: {self._mask(reason)}")

    def _check_schema(self) -> None:
        """Create the schema (through the migrations) in a database without any store table;
        refuse one at another revision: the operator upgrades it with ``arm-cpu-filter db sync``."""
        with self._facade.writer.connection.using(self._owner) as conn:
            stamped = migrations.stamped(conn)
            if stamped == migrations.HEAD:
                return
            found = stamped or migrations.current(conn)
        if found is None:
            self._schema(migrations.upgrade)  # checks again under the schema lock
            return
        raise StoreError(
            f"store {self.url}: database schema is at revision {found}"
            f"{'' if stamped else ' (made before migrations)'}, this version reads {migrations.HEAD}: "
            "run `arm-cpu-filter db sync` to upgrade it in place")

    def _conn(self, write: bool = False) -> Any:
        """A connection in a transaction (enginefacade's writer or reader); on first use the
        SQLite file is created private and the schema is checked."""
        try:
            if not self._ready:
                if self._sqlite_file:
                    _private_file(self._sqlite_file)
                self._check_schema()
                self._ready = True
            if self._sqlite_file and self._wal_keeper is None:
                self._wal_keeper = _keep_wal(self._sqlite_file)
            mode = self._facade.writer if write else self._facade.reader
            return mode.connection.using(self._owner)
        except _DB_ERRORS as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot create {exc.filename}: {exc.strerror}") from None

    def _run(self, write: bool, fn: Any) -> Any:
        """``fn(conn)`` in a transaction (rolled back on failure, so a retry starts afresh).
        Writes retry on deadlock and disconnect (oslo.db); on SQLite, any statement that found
        the database locked is retried after the short ``SQLITE_BUSY_PAUSES``."""
        pauses = iter(SQLITE_BUSY_PAUSES if self._sqlite_file is not None else ())

        def attempt() -> Any:
            with self._conn(write) as conn:
                return fn(conn)

        once = self._retry_writes(attempt) if write else attempt
        while True:
            try:
                return once()
            except (*_DB_ERRORS, StoreError) as exc:
                cause = exc.__cause__ or exc.__context__ if isinstance(exc, StoreError) else exc
                pause = next(pauses, None) if cause is not None and _sqlite_busy(cause) else None
                if pause is None:
                    raise (exc if isinstance(exc, StoreError) else self._error(exc)) from None
                self._sleep(pause)

    def schema_state(self) -> dict[str, Any]:
        """``revision``: the database's schema (None: no store tables yet), ``versioned``: it has
        a version row (False: made before migrations), ``head``: the schema this code reads."""
        def state(conn: Any) -> dict[str, Any]:
            return {"revision": migrations.current(conn), "versioned": migrations.stamped(conn) is not None,
                    "head": migrations.head()}

        return self._schema(state)

    def sync_schema(self) -> tuple[str | None, str]:
        """Upgrade the database in place to the schema this code reads: (before, after)."""
        if self._sqlite_file:
            _private_file(self._sqlite_file)
        result = self._schema(migrations.upgrade)
        self._ready = False
        return result

    def _schema(self, fn: Any) -> Any:
        """``fn(conn)`` in a write transaction; alembic's and the database's errors as StoreError."""
        from alembic.util import CommandError

        try:
            with self._facade.writer.connection.using(self._owner) as conn:
                return fn(conn)
        except CommandError as exc:  # e.g. a revision newer than this code knows
            raise StoreError(f"store {self.url}: schema: {self._mask(str(exc).splitlines()[0])}") from None
        except _DB_ERRORS as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot create {exc.filename}: {exc.strerror}") from None

    def _insert_ignoring_duplicate(self, table: Any, values: dict[str, Any]) -> bool:
        try:
            self._run(True, lambda c: c.execute(table.insert().values(**values)))
            return True
        except StoreError:
            # a concurrent writer may have inserted the same key: fine if it is there now
            key = next(iter(table.primary_key.columns))
            found = self._run(False, lambda c: c.execute(
                sa.select(key).where(key == values[key.name])).first())
            if found is None:
                raise
            return False

    # -- primitives ----------------------------------------------------------------------
    def _get_blob(self, kind: str, fingerprint: str) -> str | None:
        t = self._blob[kind]
        row = self._run(False, lambda c: c.execute(sa.select(t.c.body).where(t.c.fingerprint == fingerprint)).first())
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
        row = self._run(False, lambda c: c.execute(sa.select(t).where(t.c.host == name)).first())
        return None if row is None else self._record(row)

    def _get_hosts(self) -> dict[str, HostRecord]:
        t = self._hosts
        rows = self._run(False, lambda c: c.execute(sa.select(t)).all())
        return {row.host: self._record(row) for row in rows}

    def _delete_host(self, name: str) -> bool:
        t = self._hosts
        return bool(self._run(True, lambda c: c.execute(t.delete().where(t.c.host == name)).rowcount))

    def _get_instance(self, uuid: str) -> InstanceRecord | None:
        t = self._instances
        row = self._run(False, lambda c: c.execute(sa.select(t).where(t.c.uuid == uuid)).first())
        if row is None:
            return None
        check_fingerprint(row.fingerprint, f"store {self.url}: instance {uuid}")
        return InstanceRecord(row.uuid, row.fingerprint, row.host, float(row.recorded_at))

    def _get_instance_ids(self) -> list[str]:
        t = self._instances
        return [row.uuid for row in self._run(False, lambda c: c.execute(sa.select(t.c.uuid)).all())]

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


def _write_retry(arguments: dict[str, Any]) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """oslo.db's retry of a whole write transaction on deadlock and lost connection."""
    return db_api.wrap_db_retry(retry_on_deadlock=True, retry_on_disconnect=True, **arguments)


def _connect_timeout(parsed: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with a PostgreSQL (psycopg2) connect timeout added unless the URL sets one:
    libpq waits for the OS TCP timeout otherwise (minutes of a stuck scheduler)."""
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() != "psycopg2" \
            or "connect_timeout" in parsed.query:
        return options
    extra = f"connect_timeout={CONNECT_TIMEOUT}"
    given = options.get("connection_parameters")
    return {**options, "connection_parameters": f"{given}&{extra}" if given else extra}


def _on_engine_create(engine: Any) -> None:
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_wal)


def _sqlite_file(parsed: Any) -> str | None:
    """The SQLite database file to create private (None: not SQLite, or in memory)."""
    if parsed.get_backend_name() != "sqlite":
        return None
    db = parsed.database or ""
    return db if db and db != ":memory:" and not db.startswith("file:") else None


def _keep_wal(path: str) -> sqlite3.Connection | None:
    """An idle connection that keeps the SQLite write-ahead log and its index in place.

    oslo.db gives SQLite files a connection per transaction, and when the last connection to a
    database closes SQLite checkpoints and deletes the log; the next connection must create and
    index it again: a write, which fails on a full disk and makes processes opening the database
    at that moment wait for each other.  Holding one connection (no transaction, so no lock and
    no checkpoint held back) keeps the log for as long as the store lives.  Best effort: None when
    the database cannot be opened now (the next use tries again)."""
    try:
        keeper = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()  # maps the log's index
    except sqlite3.Error:
        keeper.close()
        return None
    return keeper


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
