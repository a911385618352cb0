"""HostStore backends: file, SQLite and real PostgreSQL and MariaDB servers, same behaviour."""

from __future__ import annotations

import json
import os
import stat
import uuid

import pytest
from faultkit import BACKENDS, backend_url

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.store import StoreError, open_store


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    return open_store(backend_url(request.param, tmp_path, request))


def _corrupt(store, fingerprint: str) -> None:
    """Damage a stored snapshot body behind the store's back (disk or database)."""
    if store.url.startswith("file://"):
        path = store.root / "snapshots" / f"{fingerprint}.json"
        data = json.loads(path.read_text())
        data["registers"]["ID_AA64ISAR0_EL1"] = "0x0000000000000000"
        path.write_text(json.dumps(data))
    else:
        import sqlalchemy as sa

        with store._engine.begin() as conn:
            conn.execute(sa.text("UPDATE arm_cpu_filter_snapshots SET body = :b WHERE fingerprint = :f"),
                         {"b": "{not json", "f": fingerprint})
    store._blobs.clear()


def test_publish_is_content_addressed(store):
    g3, g4 = sample_host("graviton3"), sample_host("graviton4")
    r1 = store.publish(g3, host="g3-a", taken_at=1000.0)
    store.publish(g3, host="g3-b", taken_at=1001.0)
    store.publish(g4, host="g4-a", taken_at=1002.0)
    hosts = store.hosts()
    assert sorted(hosts) == ["g3-a", "g3-b", "g4-a"]
    assert hosts["g3-a"].fingerprint == hosts["g3-b"].fingerprint == g3.fingerprint == r1.fingerprint
    assert hosts["g3-b"].taken_at == 1001.0
    assert store.snapshot(g4.fingerprint).registers == g4.registers
    # republishing moves the host to the new snapshot and refreshes its time
    store.publish(g4, host="g3-b", taken_at=2000.0)
    assert store.host("g3-b").fingerprint == g4.fingerprint and store.host("g3-b").taken_at == 2000.0
    assert store.host("nowhere") is None
    store.publish(g4, host="g3-b", taken_at=1796413958.772366)  # an epoch time: double precision everywhere
    assert store.host("g3-b").taken_at == 1796413958.772366
    assert store.remove_host("g3-b") is True and store.host("g3-b") is None


def test_file_store_keeps_one_body_per_snapshot(tmp_path):
    store = open_store(f"file://{tmp_path}/s")
    for i in range(5):
        store.publish(sample_host("graviton3"), host=f"h{i}")
    assert len(os.listdir(tmp_path / "s" / "snapshots")) == 1
    assert len(os.listdir(tmp_path / "s" / "hosts")) == 5


def test_instances_keep_their_first_definition(store):
    g2, g3 = sample_host("graviton2"), sample_host("graviton3")
    vm = str(uuid.uuid4())
    assert store.record_instance(vm, g3.as_definition(), "g3-a") is True
    assert store.record_instance(vm, g2.as_definition(), "g2-a") is False  # already known: CPU unchanged
    rec = store.instance(vm)
    assert rec.fingerprint == g3.as_definition().fingerprint
    assert rec.host == "g2-a"  # but the host follows the instance
    assert store.definition(rec.fingerprint).registers == g3.registers
    assert store.instance(str(uuid.uuid4())) is None


def test_corrupt_snapshot_is_reported_not_trusted(store):
    g3 = sample_host("graviton3")
    store.publish(g3, host="g3-a")
    _corrupt(store, g3.fingerprint)
    with pytest.raises(StoreError, match=r"corrupt"):
        store.snapshot(g3.fingerprint)


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x" * 300, "-lead"])
def test_bad_host_names_are_refused(tmp_path, bad):
    store = open_store(f"file://{tmp_path}/s")
    with pytest.raises(InputError, match="host name"):
        store.publish(sample_host("graviton3"), host=bad)
    assert not (tmp_path / "s" / "hosts").exists() or not os.listdir(tmp_path / "s" / "hosts")


def test_bad_instance_uuid_is_refused(store):
    with pytest.raises(InputError, match="not a UUID"):
        store.instance("1'; DROP TABLE arm_cpu_filter_hosts; --")


def test_file_store_permissions(tmp_path):
    os.umask(0o022)
    store = open_store(f"file://{tmp_path}/s")
    store.publish(sample_host("graviton3"), host="g3-a")
    store.record_instance(str(uuid.uuid4()), sample_host("graviton3").as_definition(), "g3-a")
    for root, _dirs, files in os.walk(tmp_path / "s"):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o750, root
        for f in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode) == 0o640, f


def test_corrupt_host_record(tmp_path):
    store = open_store(f"file://{tmp_path}/s")
    store.publish(sample_host("graviton3"), host="g3-a")
    store.publish(sample_host("graviton4"), host="g4-a")
    (tmp_path / "s" / "hosts" / "g3-a.json").write_text("{truncated")
    hosts = store.hosts()  # a damaged record is a problem of its host only
    assert hosts["g3-a"].problem.endswith("hosts/g3-a.json is corrupt (not JSON)")
    assert hosts["g4-a"].problem is None
    with pytest.raises(StoreError, match=r"hosts/g3-a.json is corrupt"):
        store.host_snapshot("g3-a")


@pytest.mark.parametrize("url, message", [
    ("", "empty"),
    ("/var/lib/x", "expected file://DIR"),
    ("nosuchdb://user:pw@host/db", "unknown database dialect"),
    ("file://", "no directory"),
])
def test_bad_store_urls(url, message):
    with pytest.raises(InputError, match=message):
        open_store(url)


def test_sql_errors_hide_the_password(tmp_path):
    store = open_store("postgresql+psycopg2://u:topsecret@127.0.0.1:1/db?connect_timeout=1")
    with pytest.raises(StoreError) as err:
        store.hosts()
    assert "topsecret" not in str(err.value) and "***" in str(err.value)
