"""The soak run (``arm-cpu-filter soak``) at CI size: requests through Nova's real handlers
while host data changes, every admission checked against the engine on the soak's own record;
and proof that the checker fails when the plugin is wrong or reads stale data."""

from __future__ import annotations

import json

import pytest

from arm_cpu_filter.cli import main
from arm_cpu_filter.cli.commands.soak import render
from arm_cpu_filter.scheduler import state
from arm_cpu_filter.scheduler.fleet import Fleet
from arm_cpu_filter.testing.nova import soak
from arm_cpu_filter.testing.nova.soak_fleet import CHANGES

SHORT = soak.SoakConfig(hosts=1000, requests=2000, seed=7, change_hosts=25, pool=300)


@pytest.fixture(scope="module")
def short_run(sandbox):
    return soak.run(SHORT)


def test_short_soak_has_no_wrong_admission_and_flat_memory(short_run, capsys):
    r = short_run
    with capsys.disabled():
        print("\n" + render(r), end="")
    assert (r["wrong_admissions"], r["wrongly_admitted"], r["wrongly_refused"], r["wrong_examples"]) == (0, 0, 0, [])
    assert r["late_store_reads"] == 0
    assert r["memory"]["flat"] is True
    assert r["ok"] is True and r["failures"] == []
    assert sum(r["requests_by_kind"].values()) == 2000


def test_short_soak_exercised_every_request_kind_and_change(short_run):
    r = short_run
    assert set(r["requests_by_kind"]) == set(soak.KINDS) and min(r["requests_by_kind"].values()) > 0
    assert set(r["host_changes_by_kind"]) == set(CHANGES) and min(r["host_changes_by_kind"].values()) > 0
    # the plugin re-read the store on its interval (40 periods of simulated time), and saw the changes
    assert r["plugin_store_reads"] >= 40 and r["hosts_found_stale_at_reads"] > 0
    assert r["distinct_snapshots_at_end"] > len(soak.fleet_snapshots())  # kernel upgrades and lowered fields
    # timings are reported (README figures), never compared: on a loaded machine any order is possible
    for kind in soak.KINDS:
        for part in ("whole", "ours"):
            figures = r["latency_ms"][kind][part]
            assert set(figures) == {"p50", "p90", "p99", "max"} and all(v >= 0 for v in figures.values())


def test_short_soak_check_is_not_vacuous(short_run):
    d = short_run["host_decisions"]
    # hosts admitted, hosts refused by the engine, hosts refused for stale or missing data, and
    # requests whose source vanished (unresolvable: every host refused)
    assert d["admitted"] > 0 and d["refused: engine"] > 0 and d["refused: no fresh data"] > 0
    assert d["refused: request unresolvable"] > 0
    assert short_run["requests_admitted_and_refused_by_engine"] > 500
    assert 0 < short_run["requests_no_valid_host"] < 2000


TINY = soak.SoakConfig(hosts=200, requests=300, seed=3, change_hosts=10, pool=50)


def test_checker_catches_a_filter_that_admits_everything(sandbox, monkeypatch):
    monkeypatch.setattr(state, "admit_all", lambda host_states, request: list(host_states))
    r = soak.run(TINY)
    assert r["wrongly_admitted"] > 0 and r["wrongly_refused"] == 0
    assert r["ok"] is False and f"{r['wrong_admissions']} wrong admissions" in r["failures"]
    assert r["wrong_examples"] and all(e["admitted"] for e in r["wrong_examples"])


def test_checker_catches_a_filter_that_drops_good_hosts(sandbox, monkeypatch):
    real = state.admit_all
    monkeypatch.setattr(state, "admit_all", lambda host_states, request: real(host_states, request)[1:])
    r = soak.run(TINY)
    assert r["wrongly_refused"] > 0 and r["wrongly_admitted"] == 0 and r["ok"] is False
    assert not any(e["admitted"] for e in r["wrong_examples"])


def test_checker_catches_a_plugin_that_stops_reading_the_store(sandbox, monkeypatch):
    real = Fleet.refresh

    def first_read_only(self, force=False):
        if self._loaded_at is None:
            real(self, force)

    monkeypatch.setattr(Fleet, "refresh", first_read_only)
    r = soak.run(TINY)
    assert r["plugin_store_reads"] == 1 and r["late_store_reads"] > 0
    assert "store reads the plugin missed" in " ".join(r["failures"]) and r["ok"] is False


def test_cli_soak_json(sandbox, capsys):
    rc = main(["soak", "--hosts", "100", "--requests", "300", "--seed", "5", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"] is True
    assert (out["hosts"], out["requests"], out["wrong_admissions"]) == (100, 300, 0)


def test_cli_soak_rejects_bad_sizes(sandbox, capsys):
    assert main(["soak", "--hosts", "1"]) == 2
    assert "at least 2 hosts" in capsys.readouterr().err
