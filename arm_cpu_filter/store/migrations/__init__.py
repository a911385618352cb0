"""The SQL store's schema history as alembic migrations, driven programmatically (no
``alembic.ini``): ``arm-cpu-filter db sync`` upgrades a database in place, and the store refuses
a database whose schema is not the one its code reads (fail closed, naming the command).

A database made before migrations existed has the store's tables but no version row: the
columns tell which shipped schema it has, and it is stamped with that revision before upgrading.
The version table has its own name, so the store may share a database with other alembic users.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arm_cpu_filter.store import StoreError

VERSION_TABLE = "arm_cpu_filter_alembic_version"
#: revision of the first schema (hosts without kernel, boot id and problem) and of that change,
#: the two shipped before migrations existed
INITIAL, HOST_PROBLEMS = "0001_initial", "0002_host_kernel_boot_problem"
#: the revision this code reads and writes (the store checks it on first use without loading alembic)
HEAD = "0003_mysql_double_timestamps"
#: the tables of the first schema: their presence without a version row is a pre-migration database
TABLES = ("arm_cpu_filter_snapshots", "arm_cpu_filter_definitions", "arm_cpu_filter_hosts",
          "arm_cpu_filter_instances")
#: MySQL/MariaDB named lock and seconds to wait for it (two processes creating the schema at once)
_LOCK, _LOCK_WAIT = "arm_cpu_filter_schema", 60


def _config(connection: Any = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision of the migration scripts (``HEAD``, which a test keeps equal)."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_config()).get_current_head())


def current(connection: Any) -> str | None:
    """The database's revision: its version row, else what a pre-migration database's columns
    say (None: no store tables at all)."""
    found = stamped(connection)
    return found if found is not None else _unversioned(connection)


def _unversioned(connection: Any) -> str | None:
    import sqlalchemy as sa

    inspector = sa.inspect(connection)
    if not any(inspector.has_table(t) for t in TABLES):
        return None
    columns = {c["name"] for c in inspector.get_columns("arm_cpu_filter_hosts")} \
        if inspector.has_table("arm_cpu_filter_hosts") else set()
    return HOST_PROBLEMS if "problem" in columns else INITIAL


def upgrade(connection: Any) -> tuple[str | None, str]:
    """Bring the database to head (stamping a pre-migration one first); (before, after)."""
    from alembic import command

    with schema_lock(connection):
        before = current(connection)
        config = _config(connection)
        if before is not None and stamped(connection) is None:
            command.stamp(config, before)
        command.upgrade(config, "head")
        return before, current(connection) or ""


def stamped(connection: Any) -> str | None:
    """The revision in the version table (None: no version row); plain SQL, as alembic reads it."""
    import sqlalchemy as sa

    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


@contextlib.contextmanager
def schema_lock(connection: Any) -> Iterator[None]:
    """Serialize schema changes between processes: PostgreSQL's transaction advisory lock,
    MySQL's named lock.  SQLite needs none: its write lock serializes, and the store retries
    a write that found the database locked."""
    import sqlalchemy as sa

    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": _LOCK})
        yield
    elif dialect == "mysql":
        got = connection.execute(sa.text("SELECT GET_LOCK(:n, :w)"), {"n": _LOCK, "w": _LOCK_WAIT}).scalar()
        if got != 1:
            raise StoreError(f"schema lock {_LOCK}: another process held it for {_LOCK_WAIT} s")
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _LOCK})
    else:
        yield
