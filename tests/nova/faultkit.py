"""Helpers shared by the fault and security tests (test_faults_*.py, test_security.py): store
backends, plugin options, Nova's real filter and weight handlers, and the figures the tests print."""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oslo_config import cfg

from arm_cpu_filter.scheduler import state

WORKER = Path(__file__).with_name("_store_worker.py")
PYTHON = sys.executable
ALL = ["a72-lab", "altra-a", "g2-a", "g2-b", "g2-c", "g3-a", "g3-b", "g3-old", "g4-a", "n1-lab", "v1-lab"]
BACKENDS = ["file", "sqlite", "postgresql", "mysql"]


def fresh_pg_database(postgres_url: str) -> str:
    """A new empty database on the session's PostgreSQL server (tests do not see each other's tables)."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:16]}"
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return postgres_url.replace("/armcpu?", f"/{name}?")


def backend_url(kind: str, tmp_path: Path, request: Any) -> str:
    """A fresh, empty store of backend ``kind`` (file, sqlite, postgresql, mysql) for one test."""
    if kind == "file":
        return f"file://{tmp_path}/store"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/store.sqlite"
    if kind == "mysql":
        return request.getfixturevalue("mariadb_server").createdb(f"t_{uuid.uuid4().hex[:16]}")
    return fresh_pg_database(request.getfixturevalue("postgres_url"))


@contextlib.contextmanager
def plugin_options(**overrides: Any) -> Iterator[None]:
    """``[arm_cpu_filter]`` overrides for the sandbox's Nova scheduler (fresh plugin state)."""
    for name, value in overrides.items():
        cfg.CONF.set_override(name, value, "arm_cpu_filter")
    state.reset()
    try:
        yield
    finally:
        for name in overrides:
            cfg.CONF.clear_override(name, "arm_cpu_filter")
        state.reset()


def filtered(sandbox: Any, spec: Any) -> list[str]:
    """Hosts Nova's filter handler keeps for ``spec`` (every enabled filter, ours included)."""
    hm = sandbox.host_manager
    return sorted(h.host for h in hm.get_filtered_hosts(sandbox.host_states(spec), spec))


def weighed(sandbox: Any, spec: Any) -> list[str]:
    """Nova's weight handler over every compute (best first): must never raise."""
    hm = sandbox.host_manager
    return [w.obj.host for w in hm.get_weighed_hosts(sandbox.host_states(spec), spec)]


def fail_closed_lines(records: list[logging.LogRecord], host: str) -> list[str]:
    return [r.getMessage() for r in records if r.getMessage().startswith(f"ArmCpuModelFilter: host {host} fails closed")]


def report(capsys: Any, title: str, **figures: Any) -> None:
    """Print the figures a test measured (shown even when pytest captures output)."""
    with capsys.disabled():
        print(f"\n[{title}] " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in figures.items()))
