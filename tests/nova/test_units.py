"""Fast unit tests of the filter and the weigher as Nova tests its own filters: Nova's
``FakeHostState`` and real ``RequestSpec``/``Flavor`` objects, a file store in a temporary
directory, no scheduler service.  Beside the sandbox tests (a real Nova scheduler), not instead.

The fleet: two Graviton2 hosts, an Ampere Altra (same MIDR, CTR_EL0.DIC off, another REVIDR),
a Graviton3 and a Graviton4 (the bundled Linux 6.12 samples), one host whose snapshot is older
than ``max_snapshot_age`` and one that never published.  Moves are decided by
``engine.migrate``, which needs format-2 facts: every host gets the synthetic ones of
:mod:`arm_cpu_filter.testing.vmfacts` (stand-ins of the lab's shape, not real kernels' lists)."""

from __future__ import annotations

import importlib.util
import logging
import time
import uuid
from pathlib import Path

import nova
import pytest
from faultkit import plugin_options
from nova import objects
from nova.scheduler import weights

from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.scheduler import state
from arm_cpu_filter.scheduler.filters import ArmCpuModelFilter
from arm_cpu_filter.scheduler.weighers import ArmCpuWeigher
from arm_cpu_filter.snapshot.passthrough import passthrough_definition
from arm_cpu_filter.store import open_store
from arm_cpu_filter.testing.vmfacts import with_facts, with_kernel_facts

objects.register_all()


def _nova_fakes():
    """Nova's own ``nova/tests/unit/scheduler/fakes.py``, loaded by path: importing it as
    ``nova.tests.unit...`` would run ``nova/tests/unit/__init__.py``, which monkey-patches the
    whole pytest process with eventlet (later tests' threads would then deadlock)."""
    path = Path(nova.__file__).parent / "tests" / "unit" / "scheduler" / "fakes.py"
    spec = importlib.util.spec_from_file_location("nova_scheduler_fakes", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FakeHostState = _nova_fakes().FakeHostState

FRESH = {"g2-a": "graviton2", "g2-b": "graviton2", "altra": "altra", "g3": "graviton3", "g4": "graviton4"}
STALE, NO_DATA = "g2-stale", "never-published"
HOSTS = [*FRESH, STALE, NO_DATA]
MAX_AGE = 3600


@pytest.fixture
def store(tmp_path):
    store = open_store(f"file://{tmp_path}/store")
    for host, sample in FRESH.items():
        store.publish(with_kernel_facts(sample_host(sample)), host=host)
    store.publish(with_kernel_facts(sample_host("graviton2")), host=STALE, taken_at=time.time() - 2 * MAX_AGE)
    with plugin_options(store_url=f"file://{tmp_path}/store", max_snapshot_age=MAX_AGE):
        yield store


def spec(extra_specs=None, *, instance_uuid=None, ignore_hosts=(), resize=False):
    """A RequestSpec; ``resize``: marked as Nova's API.resize marks a resize or cold migration."""
    s = objects.RequestSpec(flavor=objects.Flavor(extra_specs=dict(extra_specs or {})),
                            instance_uuid=instance_uuid or str(uuid.uuid4()), ignore_hosts=list(ignore_hosts))
    if resize:
        s.requested_destination = objects.Destination(allow_cross_cell_move=False)
    return s


def passing(request_spec, hosts=HOSTS) -> list[str]:
    f = ArmCpuModelFilter()
    return [h for h in hosts if f.host_passes(FakeHostState(h, "node", {}), request_spec)]


def filtered(request_spec, hosts=HOSTS) -> list[str]:
    """The hosts ``filter_all`` keeps (Nova's path: one verdict per distinct snapshot)."""
    kept = ArmCpuModelFilter().filter_all([FakeHostState(h, "node", {}) for h in hosts], request_spec)
    return [h.host for h in kept]


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


def test_live_migration_to_a_kernel_without_a_register_the_vm_holds_is_refused(store):
    # g2-new: Graviton2 on Linux 7.3, whose (synthetic) register list has no TCR2_EL1
    store.publish(with_kernel_facts(sample_host("graviton2-7.3")), host="g2-new")
    hosts = ["g2-a", "g2-b", "g2-new"]
    vm = str(uuid.uuid4())
    store.record_instance(vm, passthrough_definition(sample_host("graviton2"), "g2-a"), "g2-a")
    live = spec(instance_uuid=vm, ignore_hosts=["g2-a"])
    assert passing(live, hosts) == filtered(live, hosts) == ["g2-a", "g2-b"]
    assert state.request_for(live).live is True
    # the same VM resized (a new QEMU): only the CPU must be realizable, and it is on 7.3
    resize = spec(instance_uuid=vm, ignore_hosts=["g2-a"], resize=True)
    assert state.request_for(resize).live is False
    assert passing(resize, hosts) == filtered(resize, hosts) == ["g2-a", "g2-b", "g2-new"]
    # the other direction: registers only the destination has keep their reset values
    back = str(uuid.uuid4())
    store.record_instance(back, passthrough_definition(sample_host("graviton2-7.3"), "g2-new"), "g2-new")
    assert passing(spec(instance_uuid=back, ignore_hosts=["g2-new"]), hosts) == ["g2-a", "g2-b", "g2-new"]


def test_passthrough_vm_without_sve_is_refused_on_an_sve_host_with_the_setting_that_would_lift_it(store, caplog):
    g3 = sample_host("graviton3")
    store.publish(with_facts(g3, host="g3-nosve", features=g3.vcpu_features - {"sve"}), host="g3-nosve")
    store.publish(with_facts(g3, host="g3-twin", features=g3.vcpu_features - {"sve"}), host="g3-twin")
    hosts = ["g3", "g3-nosve", "g3-twin"]
    caplog.set_level(logging.DEBUG, logger="arm_cpu_filter.scheduler")
    move = spec(ignore_hosts=["g3-nosve"])  # not recorded: the source's own CPU, started -cpu host
    assert passing(move, hosts) == ["g3-nosve", "g3-twin"]
    [line] = [r.getMessage() for r in caplog.records if "cannot live-migrate to g3:" in r.getMessage()]
    # (the snapshot names its host graviton3: the sample's own name)
    assert line == ("ArmCpuModelFilter: host-passthrough move from g3-nosve cannot live-migrate to g3: graviton3 "
                    "starts sve on by default; the VM has none: start the destination with sve=off, or pick another "
                    "host [lifted by sve=off]; not writable on this host: must equal the host's value (the VM sees "
                    "off, graviton3 offers sve) [lifted by sve=off]")
    # filter_all (Nova's path) logs the same explanation for the hosts it refuses
    caplog.clear()
    assert filtered(move, hosts) == ["g3-nosve", "g3-twin"]
    assert [r.getMessage() for r in caplog.records if "cannot live-migrate to g3:" in r.getMessage()] == [line]
    # a cold move starts the guest's own features: Graviton3 realizes the CPU without SVE
    assert passing(spec(ignore_hosts=["g3-nosve"], resize=True), hosts) == hosts


def test_live_migration_from_a_stale_source_fails_closed_with_its_reason(store, caplog):
    vm = str(uuid.uuid4())
    store.record_instance(vm, passthrough_definition(sample_host("graviton2"), STALE), STALE)
    caplog.set_level(logging.WARNING, logger="arm_cpu_filter.scheduler")
    live = spec(instance_uuid=vm, ignore_hosts=[STALE])
    assert passing(live) == [] and weights_of(live) == ZERO
    problem = state.request_for(live).problem
    assert problem.startswith(f"live migration from {STALE}: the source's CPU data is unusable (CPU data of host "
                              f"{STALE} is stale (taken 2.0 h ago, limit 60 min)")
    assert problem.endswith("so the VM's register list and limits are unknown")
    assert any(problem in r.getMessage() for r in caplog.records)
    # cold moves need only the recorded CPU: a resize, and an unshelve (no ignore_hosts)
    assert passing(spec(instance_uuid=vm, ignore_hosts=[STALE], resize=True)) == ["g2-a", "g2-b"]
    unshelve = spec(instance_uuid=vm)
    assert state.request_for(unshelve).live is False and passing(unshelve) == ["g2-a", "g2-b"]


def test_format_1_destinations_are_refused_for_live_moves_only(store):
    store.publish(sample_host("graviton2"), host="g2-format1")  # no kvm facts: register list unknown
    hosts = ["g2-a", "g2-b", "g2-format1"]
    assert passing(spec(ignore_hosts=["g2-a"]), hosts) == ["g2-a", "g2-b"]
    assert passing(spec(ignore_hosts=["g2-a"], resize=True), hosts) == hosts
    assert passing(spec(), hosts) == hosts  # boots check the CPU only
    # and a format-1 source: the VM's saved state is unknown, every live destination refused
    live_from_f1 = spec(ignore_hosts=["g2-format1"])
    assert passing(live_from_f1, hosts) == []


def test_loading_novas_fakes_leaves_the_process_unpatched():
    import eventlet.patcher

    assert not eventlet.patcher.is_monkey_patched("thread")  # later tests start real threads


def test_the_bench_prefilters_the_hosts_whose_provider_config_carries_the_trait():
    from arm_cpu_filter.agent.provider_config import provider_config, trait_name
    from arm_cpu_filter.engine.catalog import usable_models
    from arm_cpu_filter.samples import sample_host
    from arm_cpu_filter.testing.nova.bench import trait_hosts

    fleet = {"a": sample_host("altra"), "b": sample_host("graviton2-7.3"), "c": sample_host("graviton2"),
             "d": sample_host("a64fx")}
    assert trait_hosts(fleet, "altra-v1") == ["a", "b"]
    assert trait_hosts(fleet, "graviton2-v1") == ["b", "c"]
    assert trait_hosts(fleet, "grace-v1") == []
    carrying = [h for h, s in fleet.items() if trait_name("altra-v1") in provider_config(usable_models(s), h)]
    assert carrying == ["a", "b"]


def test_host_states_kept_across_requests_follow_the_store(store):
    """Nova's HostManager keeps one HostState per node for the scheduler's life; verdicts and
    scores remembered per state object must follow the store once it is read again."""
    states = [FakeHostState(h, "node", {}) for h in HOSTS]
    f = ArmCpuModelFilter()
    assert [h.host for h in f.filter_all(states, spec({"arm_cpu:model": "graviton2-v1"}))] == ["g2-a", "g2-b"]
    kept = [weights.WeighedHost(s, 0.0) for s in states]
    before = dict(zip(HOSTS, ArmCpuWeigher().weigh_objects(kept, spec({"arm_cpu:model": "graviton2-v1"}))))
    assert before == {**ZERO, "g3": 1.0, "g4": 1.0}

    store.publish(with_kernel_facts(sample_host("altra")), host="g2-b")  # g2-b's board swapped
    store.publish(with_kernel_facts(sample_host("graviton2")), host=NO_DATA)  # its agent came up
    store.publish(with_kernel_facts(sample_host("graviton2")), host="g4")  # g4's board swapped too
    state.fleet().refresh(force=True)
    assert [h.host for h in f.filter_all(states, spec({"arm_cpu:model": "graviton2-v1"}))] == \
        ["g2-a", "g4", NO_DATA]
    after = dict(zip(HOSTS, ArmCpuWeigher().weigh_objects(kept, spec({"arm_cpu:model": "graviton2-v1"}))))
    assert after == weights_of(spec({"arm_cpu:model": "graviton2-v1"}))  # as for states never seen
    assert after == {**ZERO, "g3": 1.0}


def test_the_bench_measures_the_pipeline_an_operator_runs(tmp_path):
    """The bench's host states pass Nova's own ComputeFilter (their services are up), so the
    pipeline figure times Nova's filters and all of its weighers with ours appended."""
    from arm_cpu_filter.testing.nova import sandbox
    from arm_cpu_filter.testing.nova.bench import bench_nova, fill_store, host_states

    hm = sandbox.get().host_manager
    compute_filter = next(f for f in hm.enabled_filters if type(f).__name__ == "ComputeFilter")
    states = host_states(["h1", "h2", "h3"])
    assert list(compute_filter.filter_all(states, sandbox.get().request_spec({}))) == states

    url = f"file://{tmp_path}/store"
    figures = bench_nova(url, fill_store(url, hosts=60), repeat=2)
    labels = ["passthrough boot", "named-model boot", "passthrough live migration", "named-model boot, trait required"]
    assert [figures[f"nova_candidates[{label}]"] for label in labels] == [60, 60, 60, 6]
    assert [figures[f"nova_kept[{label}]"] for label in labels] == [60, 6, 6, 6]
    assert all(figures[f"nova_pipeline_ms[{label}]"] > 0 for label in labels)
    three = [figures[f"nova_pipeline_overhead_ms[{label}]"] for label in labels[:3]]
    assert figures["nova_pipeline_overhead_per_request_ms"] == pytest.approx(sum(three) / 3, abs=0.01)
