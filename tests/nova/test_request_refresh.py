"""When a request cannot be resolved, the store is re-read only if reading it was the problem:
a flavor with a typo must not cost a full store read per request (0.3 s at 10,000 hosts)."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from arm_cpu_filter.scheduler import state
from arm_cpu_filter.store import StoreError


@pytest.fixture(autouse=True)
def refresh_every_30s():
    """The sandbox re-reads the store on every request (interval 0); production waits."""
    cfg.CONF.set_override("store_refresh_interval", 30, "arm_cpu_filter")
    state.reset()
    yield
    cfg.CONF.clear_override("store_refresh_interval", "arm_cpu_filter")
    state.reset()


def count_reads(monkeypatch) -> list[int]:
    fleet = state.fleet()
    reads = [0]
    real = fleet.store.hosts

    def hosts():
        reads[0] += 1
        return real()

    monkeypatch.setattr(fleet.store, "hosts", hosts)
    return reads


def test_bad_flavor_does_not_reread_the_store(sandbox, fleet_store, monkeypatch):
    state.fleet().refresh(force=True)
    reads = count_reads(monkeypatch)
    for _ in range(5):
        request = state.request_for(sandbox.request_spec({"arm_cpu:model": "no-such-model-v1"}))
        assert request.problem and "no-such-model-v1" in request.problem and not request.store_error
    assert reads[0] == 0


def test_store_failure_during_a_lookup_rereads_the_store(sandbox, fleet_store, monkeypatch):
    state.fleet().refresh(force=True)
    reads = count_reads(monkeypatch)

    def broken(uuid):
        raise StoreError("store file://x: instance table unreadable")

    monkeypatch.setattr(state.fleet().store, "instance", broken)
    request = state.request_for(sandbox.request_spec({}, instance_uuid="6f1c1f5e-7d44-4f7a-9a59-0a5e3c1f2b11",
                                                     ignore_hosts=["graviton3-a"]))  # fmt: skip
    assert request.store_error and "instance table unreadable" in request.problem
    assert reads[0] == 1  # one forced read: the next requests see whether the whole store is down
