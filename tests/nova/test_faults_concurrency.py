"""Concurrent agents and a reader: several publisher processes rewrite the same hosts with
different snapshots while a reader process (the scheduler's Fleet, snapshot cache cleared every
time) reads in a loop.  The reader only ever sees complete, self-consistent records (a known
snapshot whose content matches its fingerprint), for the file store, SQLite and PostgreSQL --
and the tables are created by whichever agent comes first, with the others racing it.

No timing is assumed: the processes move in steps the test releases over their stdin/stdout
(publishers ready -> all publish the first snapshot at once -> the reader reads it -> all
publishers write -> a stop file -> the reader's last read), so every count asserted is fixed.
SQLite readers are proven on their own: a writer process holds its publish transaction open
while the scheduler's view reads (the old snapshot, without waiting and without a retry), and
a lock the test holds and releases itself drives the bounded retry of a locked database."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest
from faultkit import BACKENDS, PYTHON, WORKER, backend_url, report

from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.store import StoreError, open_store
from arm_cpu_filter.store.sql import SQLITE_BUSY_PAUSES, SqlStore

PUBLISHERS = 3
PUBLISHES = 40  # per publisher, to the hosts in turn: every host is rewritten by every publisher
HOSTS = "h0,h1,h2,h3"
FIRST = "graviton2"  # every host's first snapshot; the loops then write only the others
SNAPSHOTS = "graviton3,graviton4,altra"


def _worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, str(WORKER), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _line(proc: subprocess.Popen, expected: str) -> None:
    line = proc.stdout.readline().strip()
    assert line == expected, f"worker said {line!r}, expected {expected!r}: {proc.stderr.read()[-2000:]}"


def _tell(procs: list[subprocess.Popen], word: str) -> None:
    for proc in procs:
        proc.stdin.write(word + "\n")
        proc.stdin.flush()


@pytest.mark.parametrize("backend", BACKENDS)
def test_readers_see_old_or_new_never_half(backend, tmp_path, request, capsys):
    url = backend_url(backend, tmp_path, request)
    stop = tmp_path / "stop-reading"
    procs = [_worker("publish-loop", url, str(PUBLISHES), str(seed), HOSTS, FIRST, SNAPSHOTS)
             for seed in range(PUBLISHERS)]
    reader = None
    try:
        for proc in procs:
            _line(proc, "ready")
        _tell(procs, "first")  # all at once: they race to create the tables
        for proc in procs:
            _line(proc, "done")
        reader = _worker("read-loop", url, str(stop), HOSTS, f"{FIRST},{SNAPSHOTS}")
        _line(reader, "ready")  # it has read every host at FIRST
        _tell(procs, "go")
        writers = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-2000:]
            writers.append(json.loads(out))
        stop.touch()
        out, err = reader.communicate(timeout=300)
        assert reader.returncode == 0, err[-2000:]
        read = json.loads(out)
    finally:
        for proc in [*procs, *([reader] if reader else [])]:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    published = sum(w["published"] for w in writers)
    write_errors = sum(w["write_errors"] for w in writers)
    assert read["inconsistent"] == 0, read["first_inconsistent"]
    assert read["unavailable"] == 0, read["first_unavailable"]
    assert published == PUBLISHERS * PUBLISHES and write_errors == 0, [w["first_errors"] for w in writers]
    # the first read saw every host at FIRST, the last one after every publish: each host changed
    assert read["iterations"] >= 2 and read["checks"] >= 2 * len(HOSTS.split(","))
    assert read["changes_seen"] >= len(HOSTS.split(",")), read
    final = open_store(url).hosts()
    assert sorted(final) == HOSTS.split(",") and not any(r.problem for r in final.values())
    assert all(r.fingerprint != sample_host(FIRST).fingerprint for r in final.values())
    report(capsys, f"concurrency/{backend}", publisher_processes=PUBLISHERS, publishes=published,
           write_errors=write_errors, reader_iterations=read["iterations"], records_checked=read["checks"],
           changes_seen_by_reader=read["changes_seen"], inconsistent=read["inconsistent"])


def test_sqlite_reader_reads_the_old_snapshot_while_a_writer_holds_its_transaction(tmp_path):
    """The flaky "store unavailable" of the scheduler while agents commit: with write-ahead
    logging a reader never waits for a writer.  The reader's URL does not wait inside the driver
    (``timeout=0``) and its retry pauses are recorded: any lock it met would show."""
    from arm_cpu_filter.scheduler.fleet import Fleet

    path = tmp_path / "store.sqlite"
    old, new = sample_host("graviton2"), sample_host("graviton3")
    open_store(f"sqlite:///{path}").publish(old, host="h0")
    pauses: list[float] = []
    store = SqlStore(f"sqlite:///{path}?timeout=0", sleep=pauses.append)
    fleet = Fleet(store, max_age=0, refresh_interval=0)

    def seen() -> str:
        store._blobs.clear()
        fleet.refresh(force=True)
        assert fleet.load_error is None and pauses == []
        return fleet.host("h0").snapshot.fingerprint

    writer = _worker("hold-publish", f"sqlite:///{path}", "h0", "graviton3")
    try:
        _line(writer, "holding")  # new body and host row written, not committed
        assert seen() == old.fingerprint
        assert store.host("h0").fingerprint == old.fingerprint and seen() == old.fingerprint
        _tell([writer], "commit")
        _line(writer, "committed")
        assert seen() == new.fingerprint
        writer.communicate(timeout=60)
        assert writer.returncode == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()


def _locked_sqlite(tmp_path) -> tuple[str, sqlite3.Connection]:
    """A new SQLite file another connection holds an exclusive write transaction on (the store,
    switching it to WAL and creating its tables, must wait), and a store URL that does not wait
    inside the driver (``timeout=0``): every wait is the store's own, through its sleep hook."""
    path = tmp_path / "store.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return f"sqlite:///{path}?timeout=0", holder


def test_sqlite_reader_retries_while_another_connection_holds_the_write_lock(tmp_path):
    url, holder = _locked_sqlite(tmp_path)
    pauses = []

    def sleep(seconds: float) -> None:  # the holder commits while the store pauses
        pauses.append(seconds)
        if len(pauses) == 2:
            holder.execute("COMMIT")

    store = SqlStore(url, sleep=sleep)
    assert store.hosts() == {}
    assert pauses == list(SQLITE_BUSY_PAUSES[:2])
    store.publish(sample_host("graviton2"), host="h0")
    assert list(store.hosts()) == ["h0"] and len(pauses) == 2  # no lock left: no more pauses


def test_sqlite_lock_that_outlasts_the_retries_is_a_clean_store_error(tmp_path):
    url, holder = _locked_sqlite(tmp_path)
    pauses = []
    store = SqlStore(url, sleep=pauses.append)
    with pytest.raises(StoreError, match=r"^store sqlite:///.*: OperationalError: database is locked$"):
        store.hosts()
    assert pauses == list(SQLITE_BUSY_PAUSES)  # bounded: every pause once, then the error
    holder.execute("COMMIT")
    assert store.hosts() == {}  # the next call simply tries again
