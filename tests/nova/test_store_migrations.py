"""The SQL store's schema under alembic: a database made by an earlier version (the first shipped
schema, or the schema of the release before migrations, both without a version row) is refused
by the store with a message naming ``arm-cpu-filter db sync``; ``db sync`` upgrades it in place
and every record is still there and readable, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa
from faultkit import backend_url, filtered, plugin_options

from arm_cpu_filter.cli import main
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.snapshot import dumps
from arm_cpu_filter.store import StoreError, open_store
from arm_cpu_filter.store.migrations import HEAD, HOST_PROBLEMS, INITIAL, VERSION_TABLE, head

SQL_BACKENDS = ["sqlite", "postgresql", "mysql"]
VM = "6f1c1c1e-8f1d-4a55-9d0a-2b1d1f3c9e01"


def test_the_store_reads_the_newest_migration():
    assert head() == HEAD == "0003_mysql_double_timestamps"


def _old_tables(with_host_problems: bool) -> sa.MetaData:
    """The tables as an earlier release created them (``create_all``, no version table):
    the first shipped schema, or with the host columns added before migrations existed."""
    md = sa.MetaData()
    for kind in ("snapshots", "definitions"):
        sa.Table(f"arm_cpu_filter_{kind}", md, sa.Column("fingerprint", sa.String(64), primary_key=True),
                 sa.Column("body", sa.Text, nullable=False))
    extra = [sa.Column("kernel", sa.String(255)), sa.Column("boot_id", sa.String(64)), sa.Column("problem", sa.Text)]
    sa.Table("arm_cpu_filter_hosts", md, sa.Column("host", sa.String(255), primary_key=True),
             sa.Column("fingerprint", sa.String(64), nullable=False), sa.Column("taken_at", sa.Float, nullable=False),
             *(extra if with_host_problems else []))
    sa.Table("arm_cpu_filter_instances", md, sa.Column("uuid", sa.String(36), primary_key=True),
             sa.Column("fingerprint", sa.String(64), nullable=False), sa.Column("host", sa.String(255)),
             sa.Column("recorded_at", sa.Float, nullable=False))
    return md


def _old_database(url: str, with_host_problems: bool) -> None:
    """An earlier release's database with two hosts and a recorded instance in it."""
    g3, g4 = sample_host("graviton3"), sample_host("graviton4")
    definition = g3.as_definition()
    md = _old_tables(with_host_problems)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        md.create_all(conn)
        t = md.tables
        conn.execute(t["arm_cpu_filter_snapshots"].insert(), [
            {"fingerprint": s.fingerprint, "body": dumps(s)} for s in (g3, g4)])
        conn.execute(t["arm_cpu_filter_definitions"].insert().values(fingerprint=definition.fingerprint,
                                                                      body=dumps(definition)))
        conn.execute(t["arm_cpu_filter_hosts"].insert(), [
            {"host": "g3-a", "fingerprint": g3.fingerprint, "taken_at": 1000.0},
            {"host": "g4-a", "fingerprint": g4.fingerprint, "taken_at": 1001.0}])
        conn.execute(t["arm_cpu_filter_instances"].insert().values(
            uuid=VM, fingerprint=definition.fingerprint, host="g3-a", recorded_at=1002.0))
    engine.dispose()


def _db(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["db", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("with_host_problems, revision", [(False, INITIAL), (True, HOST_PROBLEMS)],
                         ids=["first-schema", "schema-before-migrations"])
@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_db_sync_upgrades_an_old_database_in_place(backend, with_host_problems, revision, tmp_path, request, capsys):
    url = backend_url(backend, tmp_path, request)
    _old_database(url, with_host_problems)

    with pytest.raises(StoreError, match=rf"schema is at revision {revision} \(made before migrations\), "
                                         rf"this version reads {HEAD}: run `arm-cpu-filter db sync`"):
        open_store(url).hosts()  # fails closed: nothing read from, nothing written to the old schema
    code, out, _ = _db(capsys, "version", "--store-url", url, "--format", "json")
    assert code == 0 and json.loads(out) == {"store": open_store(url).url, "action": "version", "revision": revision,
                                             "versioned": False, "head": HEAD}

    code, out, err = _db(capsys, "sync", "--store-url", url)
    assert (code, err) == (0, "")
    assert out.endswith(f"schema made before migrations ({revision}) stamped and upgraded to {HEAD}\n")

    store = open_store(url)
    g3, g4 = sample_host("graviton3"), sample_host("graviton4")
    hosts = store.hosts()
    assert {h: (r.fingerprint, r.taken_at, r.kernel, r.boot_id, r.problem) for h, r in hosts.items()} == {
        "g3-a": (g3.fingerprint, 1000.0, None, None, None), "g4-a": (g4.fingerprint, 1001.0, None, None, None)}
    assert store.host_snapshot("g4-a").registers == g4.registers
    record = store.instance(VM)
    assert (record.host, record.recorded_at) == ("g3-a", 1002.0)
    assert store.definition(record.fingerprint).registers == g3.registers
    # the new columns work: an agent publishes with its kernel and boot, and withdraws
    store.publish(g3, host="g4-a", taken_at=1796413958.772366, kernel="6.12.1", boot_id="b-1")
    store.withdraw("g4-a", "kernel changed")
    # an epoch time survives exactly (MySQL's FLOAT of the first schema rounded it by up to an hour)
    assert (store.host("g4-a").taken_at, store.host("g4-a").kernel, store.host("g4-a").boot_id) == (
        1796413958.772366, "6.12.1", "b-1")
    assert "withdrawn by its agent: kernel changed" in store.host("g4-a").problem
    assert _db(capsys, "sync", "--store-url", url)[1].endswith(f"schema already at {HEAD}\n")
    assert json.loads(_db(capsys, "version", "--store-url", url, "--format", "json")[1])["versioned"] is True


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_an_empty_database_gets_the_schema_at_head(backend, tmp_path, request, capsys):
    url = backend_url(backend, tmp_path, request)
    assert _db(capsys, "version", "--store-url", url)[1].endswith(
        f"schema none (no store tables), this version reads {HEAD}: run `arm-cpu-filter db sync`\n")
    assert open_store(url).hosts() == {}  # first use creates it through the migrations
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [HEAD]
    engine.dispose()


def test_a_newer_schema_is_refused_and_not_downgraded(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/store.sqlite"
    open_store(url).publish(sample_host("graviton3"), host="g3-a")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0099_from_the_future'"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema is at revision 0099_from_the_future, this version reads"):
        open_store(url).hosts()
    code, _, err = _db(capsys, "sync", "--store-url", url)
    assert code == 2 and "Can't locate revision identified by '0099_from_the_future'" in err
    assert len(err.strip().splitlines()) == 1


def test_scheduler_and_agent_fail_closed_on_an_old_database(sandbox, tmp_path, caplog, capsys):
    url = f"sqlite:///{tmp_path}/store.sqlite"
    _old_database(url, with_host_problems=False)
    caplog.set_level(logging.INFO, logger="arm_cpu_filter.scheduler")
    with plugin_options(store_url=url):
        assert filtered(sandbox, sandbox.request_spec({})) == []  # every host refused
        assert "run `arm-cpu-filter db sync` to upgrade it in place" in caplog.text
    code = main(["agent", "--once", "--from-file", "graviton3", "--host", "g3-a", "--no-libvirt",
                 "--no-provider-config", "--store-url", url])
    err = capsys.readouterr().err
    assert code == 2 and "run `arm-cpu-filter db sync`" in err

    assert _db(capsys, "sync", "--store-url", url)[0] == 0
    with plugin_options(store_url=url, max_snapshot_age=0):  # the old rows are old: judge only the schema
        assert filtered(sandbox, sandbox.request_spec({})) == ["g3-a", "g4-a"]


def test_scheduler_reads_the_database_connection_before_store_url(sandbox, fleet_snapshots, tmp_path):
    from oslo_config import cfg

    url = f"sqlite:///{tmp_path}/store.sqlite"
    store = open_store(url)
    for host in ("g2-a", "g3-a"):
        store.publish(fleet_snapshots[host], host=host)
    cfg.CONF.set_override("connection", url, "arm_cpu_filter_database")
    try:
        with plugin_options(store_url=f"file://{tmp_path}/empty"):
            assert filtered(sandbox, sandbox.request_spec({})) == ["g2-a", "g3-a"]
    finally:
        cfg.CONF.clear_override("connection", "arm_cpu_filter_database")
