"""SQL backend through SQLAlchemy Core: SQLite for one node, the deployment's
PostgreSQL/MySQL for many.  Every statement is built with SQLAlchemy constructs, so values
always travel as bound parameters.  Tables are created on first use (``arm_cpu_filter_*``).
"""

from __future__ import annotations

from typing import Any

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.store import (
    DEFINITION,
    SNAPSHOT,
    HostRecord,
    HostStore,
    InstanceRecord,
    StoreError,
    check_fingerprint,
)


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
    )
    instances = sa.Table(
        "arm_cpu_filter_instances", md,
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )
    return md, blob, hosts, instances


class SqlStore(HostStore):
    def __init__(self, url: str) -> None:
        super().__init__()
        import sqlalchemy as sa
        from sqlalchemy import exc as sa_exc

        self._sa, self._exc = sa, sa_exc
        try:
            parsed = sa.engine.make_url(url)
            self.url = parsed.render_as_string(hide_password=True)
            self._engine = sa.create_engine(parsed, pool_pre_ping=True)
        except sa_exc.NoSuchModuleError:
            raise InputError(f"store URL {url.split('://')[0]}://...: unknown database dialect or driver") from None
        except (sa_exc.ArgumentError, ValueError, ImportError) as exc:
            raise InputError(f"store URL: {str(exc).splitlines()[0]}") from None
        self._md, self._blob, self._hosts, self._instances = _tables(sa)
        self._ready = False

    def _conn(self, write: bool = False) -> Any:
        """A connection (transaction when writing); tables are created on first use."""
        try:
            if not self._ready:
                self._md.create_all(self._engine, checkfirst=True)
                self._ready = True
            return self._engine.begin() if write else self._engine.connect()
        except self._exc.SQLAlchemyError as exc:
            raise StoreError(f"store {self.url}: {_reason(exc)}") from None

    def _run(self, write: bool, fn: Any) -> Any:
        try:
            with self._conn(write) as conn:
                return fn(conn)
        except self._exc.SQLAlchemyError as exc:
            raise StoreError(f"store {self.url}: {_reason(exc)}") from None

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
        self._insert_ignoring_duplicate(self._blob[kind], {"fingerprint": fingerprint, "body": text})

    def _put_host(self, record: HostRecord) -> None:
        t = self._hosts

        def upsert(conn: Any) -> None:
            values = {"fingerprint": record.fingerprint, "taken_at": record.taken_at}
            if conn.execute(t.update().where(t.c.host == record.host).values(**values)).rowcount == 0:
                conn.execute(t.insert().values(host=record.host, **values))

        try:
            self._run(True, upsert)
        except StoreError:  # lost an insert race with another publisher: update instead
            self._run(True, upsert)

    def _record(self, row: Any) -> HostRecord:
        rec = HostRecord(row.host, row.fingerprint, float(row.taken_at))
        check_fingerprint(rec.fingerprint, f"store {self.url}: host {rec.host}")
        return rec

    def _get_host(self, name: str) -> HostRecord | None:
        t = self._hosts
        row = self._run(False, lambda c: c.execute(self._sa.select(t).where(t.c.host == name)).first())
        return None if row is None else self._record(row)

    def _get_hosts(self) -> dict[str, HostRecord]:
        t = self._hosts
        rows = self._run(False, lambda c: c.execute(self._sa.select(t.c.host, t.c.fingerprint, t.c.taken_at)).all())
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

    def _add_instance(self, record: InstanceRecord) -> bool:
        return self._insert_ignoring_duplicate(self._instances, record.to_dict())

    def _set_instance_host(self, uuid: str, host: str) -> None:
        t = self._instances
        self._run(True, lambda c: c.execute(t.update().where(t.c.uuid == uuid).values(host=host)))


def _reason(exc: Exception) -> str:
    """First line of the DBAPI's message, without SQL text or parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else 'database error'}"
