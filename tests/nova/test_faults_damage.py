"""Damaged data planted in the store behind its back (truncated, bit-flipped, swapped, oversized
snapshot bodies; truncated, mistyped, misdirected host records) in the file store, SQLite and
PostgreSQL.  Through Nova's real scheduler, after each fault only the hosts the damage touches
are refused, each with a clear reason, and they are admitted again once the data is repaired:
a snapshot is admitted only when its content still hashes to its fingerprint."""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from faultkit import ALL, BACKENDS, backend_url, plugin_options, report

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.scheduler import state
from arm_cpu_filter.snapshot import loads
from arm_cpu_filter.snapshot.files import MAX_BYTES
from arm_cpu_filter.store import open_store

#: graviton3 is the snapshot of g3-a and g3-b; g4-a's host record is the one damaged
SNAP_HOSTS, RECORD_HOST = {"g3-a", "g3-b"}, "g4-a"
FLIPS = TRUNCATIONS = 20


def body_faults(body: bytes, other: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    for n in sorted(rng.sample(range(1, len(body)), TRUNCATIONS)):
        yield "truncated", body[:n]
    yield "empty", b""
    digits = [i for m in re.finditer(rb'"0x([0-9a-f]+)"', body) for i in range(m.start(1), m.end(1))]
    for where, positions in (("in a register value", digits), ("anywhere", range(len(body)))):
        for i in rng.sample(positions, FLIPS):
            yield f"bit flip {where}", body[:i] + bytes([body[i] ^ (1 << rng.randrange(7))]) + body[i + 1:]
    yield "not UTF-8", b"\xff\xfe" + body[2:]
    yield "another snapshot's body", other
    yield "JSON, not a snapshot", b'{"format": 1, "registers": "none"}'


def record_faults(record: dict, missing_fp: str, rng: random.Random) -> Iterator[tuple[str, object]]:
    text = json.dumps(record)
    for n in sorted(rng.sample(range(1, len(text)), 10)):
        yield "truncated", text[:n]
    yield "empty", ""
    yield "not an object", "[1, 2]"
    yield "taken_at not a number", json.dumps(record | {"taken_at": "yesterday"})
    yield "taken_at NaN", json.dumps(record | {"taken_at": float("nan")})
    yield "taken_at in the far future", json.dumps(record | {"taken_at": time.time() + 10 * 365 * 86400})
    yield "fingerprint not sha256", json.dumps(record | {"fingerprint": "../../etc/passwd"})
    yield "points at a missing snapshot", json.dumps(record | {"fingerprint": missing_fp})
    yield "names another host", json.dumps(record | {"host": "g3-a"})


def expected_snapshot_refusal(damaged: bytes, fingerprint: str) -> bool:
    """Refused unless the damage left the fingerprinted content intact (e.g. a flip in the
    free-text ``source`` field): the fingerprint defines what the snapshot is."""
    try:
        return loads(damaged.decode("utf-8")).fingerprint != fingerprint
    except (InputError, UnicodeDecodeError):
        return True


class Planter:
    """Writes damage directly into a backend (files, or SQL with bound parameters)."""

    def __init__(self, url: str) -> None:
        self.url, self.store = url, open_store(url)

    def body(self, fingerprint: str) -> bytes:
        if self.url.startswith("file://"):
            return (self.store.root / "snapshots" / f"{fingerprint}.json").read_bytes()
        return self.store._get_blob("snapshot", fingerprint).encode()

    def set_body(self, fingerprint: str, data: bytes | None) -> bool:
        """False when the backend cannot even hold these bytes (text columns refuse non-UTF-8)."""
        if self.url.startswith("file://"):
            path = self.store.root / "snapshots" / f"{fingerprint}.json"
            if data is None:
                path.unlink()
            else:
                path.write_bytes(data)
            return True
        try:
            text = None if data is None else data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        if text is not None and "\0" in text and self.url.startswith("postgresql"):
            return False  # PostgreSQL text cannot hold NUL
        statements = [("DELETE FROM arm_cpu_filter_snapshots WHERE fingerprint = :f", {"f": fingerprint})]
        if text is not None:
            statements.append(("INSERT INTO arm_cpu_filter_snapshots (fingerprint, body) VALUES (:f, :b)",
                               {"f": fingerprint, "b": text}))
        return self._sql(statements)

    def record(self, host: str) -> dict:
        return self.store.host(host).to_dict()

    def set_record(self, host: str, text: str) -> bool:
        if self.url.startswith("file://"):
            (self.store.root / "hosts" / f"{host}.json").write_text(text)
            return True
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                return False
            values = {k: data.get(k) for k in ("fingerprint", "taken_at", "kernel", "boot_id", "problem")}
            if not all(isinstance(values[k], str | float | int) for k in ("fingerprint", "taken_at")):
                return False  # the column types refuse it: cannot be planted
            if values["taken_at"] != values["taken_at"] and self.url.startswith(("sqlite", "mysql")):
                return False  # SQLite stores NaN as NULL (refused by NOT NULL); MySQL has no NaN
            if data.get("host") != host:
                return False  # the row's key is its host
        except ValueError:
            return False
        return self._sql([
            ("DELETE FROM arm_cpu_filter_hosts WHERE host = :h", {"h": host}),
            ("INSERT INTO arm_cpu_filter_hosts (host, fingerprint, taken_at, kernel, boot_id, problem) "
             "VALUES (:h, :fingerprint, :taken_at, :kernel, :boot_id, :problem)", {"h": host, **values}),
        ])

    def _sql(self, statements: list[tuple[str, dict]]) -> bool:
        """One transaction; False when the database refuses the values (column types)."""
        import sqlalchemy as sa

        try:
            with self.store._engine.begin() as conn:
                for statement, params in statements:
                    conn.execute(sa.text(statement), params)
        except Exception as exc:
            if isinstance(getattr(exc, "inner_exception", exc), sa.exc.DataError):  # oslo.db wraps SQLAlchemy's
                return False
            raise
        return True


def _outcome(sandbox) -> tuple[list[str], dict[str, str]]:
    out = sandbox.schedule(sandbox.request_spec({}))  # host-passthrough boot: every host with data passes
    return sorted(h for h, _ in out.admitted), out.refused


@pytest.mark.parametrize("backend", BACKENDS)
def test_damaged_data_fails_only_its_hosts(backend, sandbox, fleet_snapshots, tmp_path, request, capsys):
    url = backend_url(backend, tmp_path, request)
    for host, snap in fleet_snapshots.items():
        open_store(url).publish(snap, host=host)
    planter = Planter(url)
    fp = fleet_snapshots["g3-a"].fingerprint
    body, other = planter.body(fp), planter.body(fleet_snapshots["g4-a"].fingerprint)
    record = planter.record(RECORD_HOST)
    rng = random.Random(f"damage-{backend}")
    injected: Counter[str] = Counter()
    harmless = unplantable = 0
    with plugin_options(store_url=url):
        for kind, damaged in body_faults(body, other, rng):
            if not planter.set_body(fp, damaged):
                unplantable += 1
                continue
            state.reset()  # a fresh scheduler: nothing cached from before the damage
            admitted, refused = _outcome(sandbox)
            if expected_snapshot_refusal(damaged, fp):
                assert admitted == sorted(set(ALL) - SNAP_HOSTS), (kind, admitted)
                for host in SNAP_HOSTS:
                    assert fp[:12] in refused[host] and ("corrupt" in refused[host] or "not UTF-8" in refused[host]), \
                        (kind, refused[host])
            else:  # e.g. a flip in free text, or 'a' -> 'A' in a hex value: the same snapshot
                assert admitted == ALL, kind
                harmless += 1
            injected[f"snapshot {kind}"] += 1
        if backend == "file":  # what only a file can be
            path = planter.store.root / "snapshots" / f"{fp}.json"
            for kind in ("oversized", "a directory", "missing"):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                if kind == "oversized":
                    path.write_bytes(body + b" " * MAX_BYTES)
                elif kind == "a directory":
                    path.mkdir()
                state.reset()
                admitted, refused = _outcome(sandbox)
                assert admitted == sorted(set(ALL) - SNAP_HOSTS), kind
                assert fp[:12] in refused["g3-a"], refused["g3-a"]
                injected[f"snapshot {kind}"] += 1
        else:
            planter.set_body(fp, None)
            state.reset()
            assert "is missing" in _outcome(sandbox)[1]["g3-a"]
            injected["snapshot missing"] += 1
        planter.set_body(fp, body[: len(body) // 2])
        open_store(url).publish(fleet_snapshots["g3-a"], host="g3-a")  # the agent's next round repairs the body
        state.reset()
        assert _outcome(sandbox)[0] == ALL  # admitted again
        assert planter.body(fp) == body

        missing = "0" * 64
        for kind, text in record_faults(record, missing, rng):
            if not planter.set_record(RECORD_HOST, text):
                unplantable += 1
                continue
            state.reset()
            admitted, refused = _outcome(sandbox)
            assert admitted == sorted(set(ALL) - {RECORD_HOST}), (kind, admitted)
            why = refused[RECORD_HOST]
            assert any(w in why for w in ("corrupt", "is missing", "in the future")), (kind, why)
            injected[f"host record {kind}"] += 1
        planter.set_record(RECORD_HOST, json.dumps(record))
        state.reset()
        assert _outcome(sandbox)[0] == ALL
        if backend == "file":  # files no host could be named after are never listed
            for name in ("..json", ".hidden.json", "a b.json", "x\ny.json", "-lead.json"):
                (planter.store.root / "hosts" / name).write_text(json.dumps(record))
                injected["host record under an impossible name"] += 1
            assert sorted(open_store(url).hosts()) == ALL
    total = sum(injected.values())
    assert injected["snapshot truncated"] == TRUNCATIONS and injected["snapshot bit flip in a register value"] == FLIPS
    for kind in ("snapshot missing", "host record fingerprint not sha256", "host record points at a missing snapshot",
                 "host record taken_at in the far future"):
        assert injected[kind] == 1, kind
    report(capsys, f"damage/{backend}", faults_injected=total, by_kind=dict(injected),
           of_which_harmless_fingerprinted_content_intact=harmless, not_plantable_in_this_backend=unplantable)
