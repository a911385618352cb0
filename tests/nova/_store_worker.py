"""Worker processes of the fault tests (run as ``python _store_worker.py MODE ...``).

``fork-server URL HOST SNAP_A SNAP_B PROVIDER_CONFIG``
    imports once, then per ``go`` line on stdin forks a child that runs the real agent loop
    (``agent.run``: boot check, publish, provider config) alternating between two snapshots,
    prints the child's pid, waits for it (the test SIGKILLs it) and prints ``reaped STATUS``.
``publish-loop URL COUNT SEED HOST,HOST... FIRST SNAP,SNAP...``
    prints ``ready`` once imported with the store open; on ``first`` (stdin) publishes snapshot
    FIRST to every host (racing the other publishers to create the tables) and prints ``done``;
    on ``go`` publishes COUNT random SNAPs to the hosts in turn (the publish path of the agent)
    and prints a JSON summary.
``hold-publish URL HOST SNAP``
    publishes SNAP to HOST through the store's own write path inside one write transaction it
    holds open (on SQLite an exclusive one): prints ``holding`` with every statement run but
    nothing committed, commits on ``commit`` (stdin) and prints ``committed``.
``read-loop URL STOP_FILE HOST,HOST... SNAP,SNAP...``
    the scheduler's view (a Fleet with no caching of host records, snapshot cache cleared each
    time) read in a loop; prints ``ready`` after its first read, and reads once more after
    STOP_FILE appears, then stops.  Every record seen must be complete and consistent; prints JSON.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
from pathlib import Path


def _snapshots(names: str) -> list:
    from arm_cpu_filter.samples import sample_host

    return [sample_host(n) for n in names.split(",")]


def _agent_forever(url: str, host: str, snaps: list, provider_config: str) -> None:
    """The real agent loop, alternating between the snapshots, until killed."""
    from arm_cpu_filter import agent
    from arm_cpu_filter.store import open_store

    first = random.Random().randrange(2)  # seeded afresh: the fork copied the parent's state
    turns = itertools.cycle(snaps[first:] + snaps[:first])
    agent.run(open_store(url), lambda: next(turns), host, 0.0, None, provider_config)


def fork_server(url: str, host: str, snap_a: str, snap_b: str, provider_config: str) -> None:
    import psycopg2  # noqa: F401 - imported (and caches warmed) once, before the forks
    import pymysql  # noqa: F401
    import sqlalchemy  # noqa: F401

    import arm_cpu_filter.agent  # noqa: F401
    import arm_cpu_filter.store.sql  # noqa: F401 - with oslo.db
    from arm_cpu_filter.engine.catalog import usable_models

    snaps = _snapshots(f"{snap_a},{snap_b}")
    for snap in snaps:
        usable_models(snap)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        pid = os.fork()
        if pid == 0:  # the agent: runs until killed
            try:
                _agent_forever(url, host, snaps, provider_config)
            finally:
                os._exit(1)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print("reaped", status, flush=True)


def _expect(word: str) -> None:
    line = sys.stdin.readline().strip()
    if line != word:
        raise SystemExit(f"worker: expected {word!r} on stdin, got {line!r}")


def publish_loop(url: str, count: str, seed: str, hosts: str, first: str, names: str) -> None:
    from arm_cpu_filter.store import StoreError, open_store

    snaps, names_ = _snapshots(names), hosts.split(",")
    rng = random.Random(int(seed))
    store = open_store(url)
    done, errors = 0, []
    print("ready", flush=True)
    _expect("first")
    for host in names_:
        store.publish(_snapshots(first)[0], host=host)
    print("done", flush=True)
    _expect("go")
    for i in range(int(count)):
        try:
            store.publish(rng.choice(snaps), host=names_[i % len(names_)])
            done += 1
        except StoreError as exc:  # a write that failed cleanly: counted, not a read inconsistency
            errors.append(str(exc))
    print(json.dumps({"published": done, "write_errors": len(errors), "first_errors": errors[:3]}))


def hold_publish(url: str, host: str, name: str) -> None:
    import sqlalchemy as sa

    from arm_cpu_filter.store import open_store

    def exclusive(conn: sa.engine.Connection) -> None:
        """SQLite: turn oslo.db's deferred BEGIN (its listener runs first) into the strongest
        write lock, the one a writer holds while it commits to a rollback journal."""
        conn.exec_driver_sql("COMMIT")
        conn.exec_driver_sql("BEGIN EXCLUSIVE")

    store = open_store(url)
    store._facade.append_on_engine_create(lambda engine: sa.event.listen(engine, "begin", exclusive))
    store.hosts()  # the schema is checked before the held transaction starts
    with store._facade.writer.connection.using(store._owner):  # the store's statements join it
        store.publish(_snapshots(name)[0], host=host)
        print("holding", flush=True)
        _expect("commit")
    print("committed", flush=True)


def read_loop(url: str, stop_file: str, hosts: str, names: str) -> None:
    from arm_cpu_filter.scheduler.fleet import Fleet
    from arm_cpu_filter.store import open_store

    allowed = {s.fingerprint for s in _snapshots(names)}
    expected_hosts = set(hosts.split(","))
    store = open_store(url)
    fleet = Fleet(store, max_age=0, refresh_interval=0)
    iterations = checks = changes = unavailable = 0
    bad: list[str] = []
    errors: list[str] = []
    last: dict[str, str] = {}
    stop = Path(stop_file)
    while True:
        final = stop.exists()  # checked before the read: the last read comes after every publish
        store._blobs.clear()  # read every body again: each load verifies content against fingerprint
        fleet.refresh(force=True)
        iterations += 1
        if fleet.load_error:
            unavailable += 1
            errors.append(fleet.load_error)
        else:
            for name, rec in fleet.records().items():
                checks += 1
                data = fleet.host(name)
                if name not in expected_hosts:
                    bad.append(f"unexpected host {name!r}")
                elif data.snapshot is None:
                    bad.append(f"{name}: {data.problem}")
                elif data.snapshot.fingerprint != rec.fingerprint or rec.fingerprint not in allowed:
                    bad.append(f"{name}: record {rec.fingerprint[:12]} vs snapshot {data.snapshot.fingerprint[:12]}")
                else:
                    changes += last.get(name, rec.fingerprint) != rec.fingerprint
                    last[name] = rec.fingerprint
        if iterations == 1:
            print("ready", flush=True)
        if final:
            break
    print(json.dumps({"iterations": iterations, "checks": checks, "changes_seen": changes, "unavailable": unavailable,
                      "first_unavailable": errors[:3], "inconsistent": len(bad), "first_inconsistent": bad[:5]}))


if __name__ == "__main__":
    mode, *argv = sys.argv[1:]
    {"fork-server": fork_server, "publish-loop": publish_loop, "hold-publish": hold_publish,
     "read-loop": read_loop}[mode](*argv)
