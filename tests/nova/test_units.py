"""Fast unit tests of the filter and the weigher as Nova tests its own filters: Nova's
``FakeHostState`` and real ``RequestSpec``/``Flavor`` objects, a file store in a temporary
directory, no scheduler service.  Beside the sandbox tests (a real Nova scheduler), not instead.

The fleet: two Graviton2 hosts, an Ampere Altra (same MIDR, CTR_EL0.DIC off, another REVIDR),
a Graviton3 and a Graviton4 (the bundled Linux 6.12 samples), one host whose snapshot is older
than ``max_snapshot_age`` and one that never published."""

from __future__ import annotations

import time
import uuid

import pytest
from faultkit import plugin_options
from nova import objects
from nova.scheduler import weights
from nova.tests.unit.scheduler.fakes import FakeHostState

from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.scheduler.filters import ArmCpuModelFilter
from arm_cpu_filter.scheduler.weighers import ArmCpuWeigher
from arm_cpu_filter.snapshot.passthrough import passthrough_definition
from arm_cpu_filter.store import open_store

objects.register_all()

FRESH = {"g2-a": "graviton2", "g2-b": "graviton2", "altra": "altra", "g3": "graviton3", "g4": "graviton4"}
STALE, NO_DATA = "g2-stale", "never-published"
HOSTS = [*FRESH, STALE, NO_DATA]
MAX_AGE = 3600


@pytest.fixture
def store(tmp_path):
    store = open_store(f"file://{tmp_path}/store")
    for host, sample in FRESH.items():
        store.publish(sample_host(sample), host=host)
    store.publish(sample_host("graviton2"), host=STALE, taken_at=time.time() - 2 * MAX_AGE)
    with plugin_options(store_url=f"file://{tmp_path}/store", max_snapshot_age=MAX_AGE):
        yield store


def spec(extra_specs=None, *, instance_uuid=None, ignore_hosts=()):
    return objects.RequestSpec(flavor=objects.Flavor(extra_specs=dict(extra_specs or {})),
                               instance_uuid=instance_uuid or str(uuid.uuid4()), ignore_hosts=list(ignore_hosts))


def passing(request_spec) -> list[str]:
    f = ArmCpuModelFilter()
    return [h for h in HOSTS if f.host_passes(FakeHostState(h, "node", {}), request_spec)]


def weights_of(request_spec) -> dict[str, float]:
    hosts = [weights.WeighedHost(FakeHostState(h, "node", {}), 0.0) for h in HOSTS]
    return dict(zip(HOSTS, ArmCpuWeigher().weigh_objects(hosts, request_spec)))


ZERO = dict.fromkeys(HOSTS, 0.0)


def test_named_model_boot_admits_only_hosts_that_realize_it(store):
    assert passing(spec({"arm_cpu:model": "graviton2-v1"})) == ["g2-a", "g2-b"]  # Altra: CTR_EL0.DIC off
    assert passing(spec({"arm_cpu:model": "altra-v1"})) == ["altra"]  # Graviton2: REVIDR not writable on 6.12
    # tightest fit: the hosts realizing the fewest catalog models weigh most, whatever passes
    assert weights_of(spec({"arm_cpu:model": "graviton2-v1"})) == {**ZERO, "g3": 1.0, "g4": 1.0}


def test_passthrough_boot(store):
    assert passing(spec()) == list(FRESH)
    # the share of fresh hosts accepting a VM started there: only Graviton2's CPU runs on two hosts
    assert weights_of(spec()) == {**ZERO, "g2-a": 1.0, "g2-b": 1.0}


def test_live_migration_needs_the_source_cpu_realizable_on_the_destination(store):
    from_g2 = spec(ignore_hosts=["g2-a"])  # Nova puts the source first in ignore_hosts
    assert passing(from_g2) == ["g2-a", "g2-b"]  # Altra refused: DIC on is not realizable there
    assert weights_of(from_g2) == {**ZERO, "g2-a": 1.0, "g2-b": 1.0}  # identical snapshots
    from_altra = spec(ignore_hosts=["altra"])
    assert passing(from_altra) == ["altra"]  # REVIDR differs and is not writable on 6.12
    assert weights_of(from_altra) == {**ZERO, "altra": 1.0}


def test_live_migration_of_a_recorded_instance_uses_its_recorded_cpu(store):
    vm = str(uuid.uuid4())
    store.record_instance(vm, passthrough_definition(sample_host("graviton2"), "g2-a"), "g2-a")
    move = spec(instance_uuid=vm, ignore_hosts=["g3"])  # the record wins over the named source
    assert passing(move) == ["g2-a", "g2-b"]
    assert weights_of(move) == {**ZERO, "g2-a": 1.0, "g2-b": 1.0}


def test_fail_closed(store):
    # no data and stale data: refused for every request kind
    for request_spec in (spec(), spec({"arm_cpu:model": "kvm-base-v1"}), spec(ignore_hosts=["g2-a"])):
        passed = passing(request_spec)
        assert STALE not in passed and NO_DATA not in passed
    # an unknown model: every host refused, the weigher abstains (all 0)
    unknown = spec({"arm_cpu:model": "graviton9-v1"})
    assert passing(unknown) == [] and weights_of(unknown) == ZERO
    # a move whose source never published and is not recorded: nothing to compare with
    orphan = spec(ignore_hosts=[NO_DATA])
    assert passing(orphan) == [] and weights_of(orphan) == ZERO
