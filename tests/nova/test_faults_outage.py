"""A real PostgreSQL server stopped under a running scheduler and started again: while it is
down, every request through Nova's real filter handler refuses every host (moves and named
models included), the weighers do not raise, and the log has exactly one line per host for the
whole outage -- not one per request -- without the database password; once the server is back
the plugin recovers by itself (only time passing, no reset) and admits again.

Time is the scheduler fleet's injected clock (``Fleet.clock``), advanced by the test: no real
sleeps, so the refresh points are exact whatever the machine's load."""

from __future__ import annotations

import logging
import time
import uuid

from conftest import PgServer
from faultkit import ALL, fail_closed_lines, filtered, plugin_options, report, weighed

from arm_cpu_filter.scheduler import state
from arm_cpu_filter.snapshot.passthrough import passthrough_definition
from arm_cpu_filter.store import open_store

PASSWORD = "outage-pw-9f3a"  # in the URL (trust authentication ignores it): must never be logged
REFRESH = 1  # [arm_cpu_filter] store_refresh_interval during the test


class Clock:
    """The fleet's time: starts now (the snapshots were just published) and moves only when told."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _requests(sandbox, vm: str) -> list:
    """One of each kind: passthrough boot, named model, recorded move, unrecorded move."""
    return [
        sandbox.request_spec({}),
        sandbox.request_spec({"arm_cpu:model": "graviton2-v1"}),
        sandbox.request_spec(None, instance_uuid=vm, ignore_hosts=["g3-a"]),
        sandbox.request_spec(None, instance_uuid=str(uuid.uuid4()), ignore_hosts=["g2-b"]),
    ]


def test_database_restart(sandbox, fleet_snapshots, caplog, capsys):
    server = PgServer()
    try:
        server.start()
        server.createdb("outage")
        url = server.url("outage", password=PASSWORD)
        store = open_store(url)
        for host, snap in fleet_snapshots.items():
            store.publish(snap, host=host)
        vm = str(uuid.uuid4())
        store.record_instance(vm, passthrough_definition(fleet_snapshots["g3-a"], "g3-a"), "g3-a")
        caplog.set_level(logging.INFO, logger="arm_cpu_filter.scheduler")
        with plugin_options(store_url=url, store_refresh_interval=REFRESH):
            clock = state.fleet().clock = Clock()
            assert filtered(sandbox, sandbox.request_spec({})) == ALL
            assert filtered(sandbox, _requests(sandbox, vm)[2]) == ["g3-b"]
            caplog.clear()

            server.stop()
            clock.advance(REFRESH)  # the next request reads the store again: it is down
            requests = 0
            for _ in range(5):
                for spec in _requests(sandbox, vm):
                    assert filtered(sandbox, spec) == []
                    assert sorted(weighed(sandbox, spec)) == ALL  # the weigher abstains, never raises
                    requests += 1
                clock.advance(REFRESH / 2)  # every other round re-reads the store (still down)
            during = list(caplog.records)
            per_host = {h: fail_closed_lines(during, h) for h in ALL}
            assert all(len(lines) == 1 for lines in per_host.values()), per_host
            assert all("OperationalError" in lines[0] for lines in per_host.values()), per_host["g3-a"]
            assert not [r for r in during if "refusing every host" in r.getMessage()]  # no line per request
            ours = [r for r in during if r.name == "arm_cpu_filter.scheduler"]
            outage_lines = len(ours)
            assert outage_lines == len(ALL), [r.getMessage() for r in ours]
            caplog.clear()

            server.start()
            clock.advance(REFRESH)  # no reset: the next refresh finds the server again
            assert filtered(sandbox, sandbox.request_spec({})) == ALL
            assert filtered(sandbox, _requests(sandbox, vm)[2]) == ["g3-b"]
            recovered = [r.getMessage() for r in caplog.records if "has usable CPU data again" in r.getMessage()]
            assert len(recovered) == len(ALL)
            assert PASSWORD not in caplog.text and PASSWORD not in "".join(r.getMessage() for r in during)
    finally:
        server.close()
    report(capsys, "database outage", requests_while_down=requests, hosts=len(ALL),
           log_lines_during_outage=outage_lines, recovery_lines=len(recovered))
