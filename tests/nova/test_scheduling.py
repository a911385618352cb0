"""The plugin through Nova's real scheduler: HostManager reading a migrated SQLite Nova
database (cells, services, compute nodes), RequestSpec, and Nova's filter and weight
handlers with ArmCpuModelFilter and ArmCpuWeigher enabled in nova.conf.  Placement is the
only stand-in (every compute node is a candidate)."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from arm_cpu_filter.engine import check
from arm_cpu_filter.models import catalog, realize
from arm_cpu_filter.scheduler import fleet as fleet_mod
from arm_cpu_filter.scheduler import state
from arm_cpu_filter.snapshot.passthrough import passthrough_definition

ALL = ["a72-lab", "altra-a", "g2-a", "g2-b", "g2-c", "g3-a", "g3-b", "g3-old", "g4-a", "n1-lab", "v1-lab"]


def admitted(outcome):
    return sorted(h for h, _ in outcome.admitted)


def boot(sandbox, **extra_specs):
    return sandbox.schedule(sandbox.request_spec({f"arm_cpu:{k}": v for k, v in extra_specs.items()}))


def move(sandbox, store, source, snapshots, extra_specs=None, record=True, resize=False):
    """Live-migrate (``resize``: resize) a VM running on ``source`` (Nova puts the source in ignore_hosts)."""
    vm = str(uuid.uuid4())
    if record:  # what the agent on the source recorded when it first saw the domain
        store.record_instance(vm, passthrough_definition(snapshots[source], source), source)
    return sandbox.schedule(sandbox.request_spec(extra_specs, instance_uuid=vm, ignore_hosts=[source], resize=resize))


def test_the_fleet_is_real_nova(sandbox):
    from nova.scheduler.host_manager import HostState

    states = sandbox.host_states(sandbox.request_spec({}))
    assert sorted(s.host for s in states) == ALL
    assert all(isinstance(s, HostState) and s.free_ram_mb == 262144 for s in states)
    assert [type(f).__name__ for f in sandbox.host_manager.enabled_filters] == [
        "ComputeFilter", "ImagePropertiesFilter", "ArmCpuModelFilter"]
    assert "ArmCpuWeigher" in [type(w).__name__ for w in sandbox.host_manager.weighers]


def test_passthrough_boot_admits_every_host_with_data(sandbox, fleet_store):
    out = boot(sandbox)
    assert admitted(out) == ALL and out.refused == {}
    # share of hosts a VM started there could move to: Graviton2 3/11 (three compatible hosts),
    # Graviton3 twins and Altra 2/11, everything else 1/11 (only itself); min-max normalized
    assert out.arm_scores == {"g2-a": 1.0, "g2-b": 1.0, "g2-c": 1.0, "g3-a": 0.5, "g3-b": 0.5, "altra-a": 0.5,
                              "g4-a": 0.0, "g3-old": 0.0, "n1-lab": 0.0, "v1-lab": 0.0, "a72-lab": 0.0}


@pytest.mark.parametrize("spec, expected", [
    ("graviton2-v1", ["g2-a", "g2-b", "g2-c"]),
    ("graviton2-v1,hw_prop_DIC=off", ["altra-a", "g2-a", "g2-b", "g2-c"]),
    ("altra-v1", ["altra-a", "g2-a"]),
    ("neoverse-n1-v1", ["n1-lab"]),
    ("cortex-a72-v1", ["a72-lab"]),
])
def test_named_model_boots_land_where_realizable(sandbox, fleet_store, spec, expected):
    model, *overrides = spec.split(",")
    extra = {"model": model} | dict(o.split("=") for o in overrides)
    out = boot(sandbox, **extra)
    assert admitted(out) == expected
    assert set(out.refused) == set(ALL) - set(expected)


def test_every_catalog_model_lands_only_where_the_engine_says(sandbox, fleet_store, fleet_snapshots):
    for name in sorted(catalog()):
        out = boot(sandbox, model=name)
        d = realize(name)
        assert admitted(out) == sorted(h for h, s in fleet_snapshots.items() if check(d, s).usable), name
        # the old kernel (no writable ID registers) can only run host-passthrough VMs
        assert "g3-old" not in admitted(out)


def test_model_fit_prefers_the_tighter_host(sandbox, fleet_store):
    out = boot(sandbox, model="graviton2-v1")
    # g2-a (Linux 7.3, writable MIDR) realizes more models than g2-b/g2-c: keep it for them
    assert out.arm_scores == {"g2-a": 0.0, "g2-b": 1.0, "g2-c": 1.0}
    assert out.admitted[-1][0] == "g2-a"


def test_graviton3_passthrough_vm_moves_to_its_twin_only(sandbox, fleet_store, fleet_snapshots):
    out = move(sandbox, fleet_store, "g3-a", fleet_snapshots)
    assert admitted(out) == ["g3-b"]
    assert out.refused["g3-a"] == "source host (ignore_hosts)"
    why = out.refused["g4-a"]
    assert "feat_SM3" in why and "feat_SM4" in why  # Graviton4 has no SM3/SM4
    assert "the VM uses the vCPU feature ptrauth-address, which graviton2-7.3's KVM does not offer" in out.refused["g2-a"]


def test_graviton3_to_graviton4_blockers_include_aarch32(fleet_snapshots):
    d = passthrough_definition(fleet_snapshots["g3-a"], "g3-a")
    props = {b.property for b in check(d, fleet_snapshots["g4-a"]).blockers}
    assert {"feat_SM3", "feat_SM4"} <= props
    assert any(p and p.startswith("feat_AA32") for p in props)  # Graviton4 has no AArch32 EL0


def test_graviton2_vm_moves_to_altra_only_with_dic_off(sandbox, fleet_store, fleet_snapshots):
    passthrough = move(sandbox, fleet_store, "g2-a", fleet_snapshots)
    assert admitted(passthrough) == ["g2-b", "g2-c"]
    assert passthrough.refused["altra-a"] == "hw_prop_DIC on (host: off)"
    dic_off = {"arm_cpu:model": "graviton2-v1", "arm_cpu:hw_prop_DIC": "off"}
    resized = move(sandbox, fleet_store, "g2-b", fleet_snapshots, dic_off, resize=True)
    assert admitted(resized) == ["altra-a", "g2-a", "g2-c"]
    # the move weigher prefers the destination identical to the source (g2-c == g2-b)
    assert resized.arm_scores == {"altra-a": 0.0, "g2-a": 0.0, "g2-c": 1.0}
    assert resized.admitted[0][0] == "g2-c"


KERNEL_DROPS_TCR2 = ("destination kernel 7.3.4 has no TCR2_EL1, which this VM's state holds "
                     "(a kernel change breaks this VM's migration)")


def test_live_migration_from_linux_6_12_to_7_3_is_refused_where_a_resize_is_admitted(sandbox, fleet_store,
                                                                                      fleet_snapshots):
    """The 7.3 hosts' (synthetic) register list lacks TCR2_EL1, which a VM started on 6.12 holds."""
    dic_off = {"arm_cpu:model": "graviton2-v1", "arm_cpu:hw_prop_DIC": "off"}
    live = move(sandbox, fleet_store, "g2-b", fleet_snapshots, dic_off)
    assert admitted(live) == ["g2-c"]
    assert live.refused["g2-a"] == live.refused["altra-a"] == KERNEL_DROPS_TCR2
    model = move(sandbox, fleet_store, "g2-b", fleet_snapshots, {"arm_cpu:model": "graviton2-v1"})
    assert admitted(model) == ["g2-c"]
    assert model.refused["altra-a"] == f"hw_prop_DIC on (host: off); {KERNEL_DROPS_TCR2}"
    passthrough = move(sandbox, fleet_store, "g2-b", fleet_snapshots)
    assert admitted(passthrough) == ["g2-c"]
    assert admitted(move(sandbox, fleet_store, "g2-b", fleet_snapshots, resize=True)) == ["g2-a", "g2-c"]
    # from 7.3 down to 6.12 is fine: registers only the destination has keep their reset values
    assert admitted(move(sandbox, fleet_store, "g2-a", fleet_snapshots, dic_off)) == ["altra-a", "g2-b", "g2-c"]


def test_live_migration_onto_a_format_1_host_is_refused(sandbox, fleet_store, fleet_snapshots):
    from arm_cpu_filter.samples import sample_host

    fleet_store.publish(sample_host("graviton3"), host="g3-b")  # an agent that predates format 2
    out = move(sandbox, fleet_store, "g3-a", fleet_snapshots)
    assert admitted(out) == []
    assert out.refused["g3-b"] == ("the register list of graviton3 is unknown (a format-1 snapshot): republish it "
                                   "with a current agent; the vector lengths, IPA and PMU limits of graviton3 are "
                                   "unknown (a format-1 snapshot): republish it with a current agent")
    assert admitted(move(sandbox, fleet_store, "g3-a", fleet_snapshots, resize=True)) == ["g3-b"]


def test_unrecorded_passthrough_move_uses_the_source_snapshot(sandbox, fleet_store, fleet_snapshots):
    out = move(sandbox, fleet_store, "g3-a", fleet_snapshots, record=False)
    assert admitted(out) == ["g3-b"]


def test_old_kernel_host_takes_only_its_own_passthrough_vms(sandbox, fleet_store, fleet_snapshots):
    out = move(sandbox, fleet_store, "g3-a", fleet_snapshots)
    assert "g3-old" in out.refused
    assert admitted(move(sandbox, fleet_store, "g3-old", fleet_snapshots)) == []


def test_rebuild_skips_the_filter(sandbox, fleet_store):
    spec = sandbox.request_spec({"arm_cpu:model": "graviton2-v1"})
    spec.scheduler_hints = {"_nova_check_type": ["rebuild"]}
    assert admitted(sandbox.schedule(spec)) == ALL


# -- failing closed ----------------------------------------------------------------------

def test_missing_and_stale_data_fail_closed_with_one_log_line(sandbox, store_url, fleet_snapshots, caplog):
    from arm_cpu_filter.store import open_store

    store = open_store(store_url)
    now = time.time()
    for host, snap in fleet_snapshots.items():
        if host != "g3-b":  # g3-b never published
            store.publish(snap, host=host, taken_at=now - 7200 if host == "g2-c" else now)
    caplog.set_level(logging.INFO, logger="arm_cpu_filter.scheduler")
    out = boot(sandbox)
    assert admitted(out) == sorted(set(ALL) - {"g3-b", "g2-c"})
    assert out.refused["g3-b"].startswith("no CPU data published for host g3-b")
    assert "stale (taken 2.0 h ago, limit 60 min)" in out.refused["g2-c"]
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if "g2-c fails closed" in m]) == 1
    assert len([m for m in lines if "g3-b fails closed" in m]) == 1
    caplog.clear()
    boot(sandbox)
    assert not [r for r in caplog.records if "fails closed" in r.getMessage()]  # logged once, not per request
    store.publish(fleet_snapshots["g2-c"], host="g2-c")
    assert "g2-c" in admitted(boot(sandbox))
    assert any("g2-c has usable CPU data again" in r.getMessage() for r in caplog.records)


def test_unknown_model_refuses_every_host_with_one_line(sandbox, fleet_store, caplog):
    caplog.set_level(logging.WARNING, logger="arm_cpu_filter.scheduler")
    out = boot(sandbox, model="gravitn3-v1")
    assert admitted(out) == []
    assert all("unknown CPU model 'gravitn3-v1'" in why for why in out.refused.values())
    assert len([r for r in caplog.records if "gravitn3-v1" in r.getMessage()]) == 1


def test_corrupt_snapshot_fails_only_its_hosts(sandbox, fleet_store, fleet_snapshots):
    path = fleet_store.root / "snapshots" / f"{fleet_snapshots['g3-a'].fingerprint}.json"
    path.write_text(path.read_text().replace('"ID_AA64ISAR0_EL1": "0x', '"ID_AA64ISAR0_EL1": "0x1'))
    out = boot(sandbox)
    assert admitted(out) == sorted(set(ALL) - {"g3-a", "g3-b"})
    assert "corrupt" in out.refused["g3-a"] and "corrupt" in out.refused["g3-b"]


def test_corrupt_host_record_fails_only_its_host(sandbox, fleet_store):
    (fleet_store.root / "hosts" / "g4-a.json").write_text("not json")
    out = boot(sandbox)
    assert admitted(out) == sorted(set(ALL) - {"g4-a"})
    assert "hosts/g4-a.json is corrupt (not JSON)" in out.refused["g4-a"]


def test_contradictory_flavor_fails_closed(sandbox, fleet_store):
    out = boot(sandbox, model="graviton2-v1", mode="host-passthrough")
    assert admitted(out) == []
    assert "contradicts arm_cpu:mode=host-passthrough" in out.refused["g2-a"]


def test_injected_errors_never_reach_nova(sandbox, fleet_store, monkeypatch, caplog):
    caplog.set_level(logging.ERROR, logger="arm_cpu_filter.scheduler")

    def boom(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(fleet_mod.Fleet, "usable", boom)
    monkeypatch.setattr(fleet_mod.Fleet, "passthrough_share", boom)
    spec = sandbox.request_spec({"arm_cpu:model": "graviton2-v1"})
    hm = sandbox.host_manager
    hosts = sandbox.host_states(spec)
    assert hm.get_filtered_hosts(hosts, spec) == []  # every host fails closed, nothing raised
    assert any("internal error: RuntimeError: injected" in r.getMessage() for r in caplog.records)
    # the weigher abstains instead of raising
    weighed = hm.get_weighed_hosts(hosts, sandbox.request_spec({}))
    assert len(weighed) == len(ALL)
    assert any("ArmCpuWeigher abstains: RuntimeError: injected" in r.getMessage() for r in caplog.records)
    # and a failing store read as well
    monkeypatch.setattr(type(fleet_store), "hosts", boom)
    state.reset()
    assert hm.get_filtered_hosts(sandbox.host_states(spec), spec) == []


def test_decisions_are_cached_per_fingerprint_pair(sandbox, fleet_store, monkeypatch):
    calls = []
    real = fleet_mod.accepts

    def counting(d, s):
        calls.append((d.fingerprint, s.fingerprint))
        return real(d, s)

    monkeypatch.setattr(fleet_mod, "accepts", counting)
    hm = sandbox.host_manager
    spec = sandbox.request_spec({"arm_cpu:model": "altra-v1"})
    assert sorted(h.host for h in hm.get_filtered_hosts(sandbox.host_states(spec), spec)) == ["altra-a", "g2-a"]
    assert len(calls) == len(set(calls)) == 9  # 11 hosts, 9 distinct snapshots: one check each
    spec = sandbox.request_spec({"arm_cpu:model": "altra-v1"})
    hm.get_filtered_hosts(sandbox.host_states(spec), spec)
    assert len(calls) == 9  # the next request is answered from the cache


def _instance_in_cell(sandbox, host, task_state):
    """An instance row in the sandbox's cell database with its mapping, in the task state Nova's
    API saves before it asks the conductor (``API.evacuate``: REBUILDING, ``API.live_migrate``:
    MIGRATING)."""
    from nova import context as nova_context
    from nova import objects

    vm = str(uuid.uuid4())
    with nova_context.target_cell(sandbox.ctxt, sandbox.cell) as cctxt:
        objects.Instance(cctxt, uuid=vm, host=host, project_id="demo", user_id="demo",
                         task_state=task_state, vm_state="active").create()
    objects.InstanceMapping(sandbox.ctxt, instance_uuid=vm, cell_mapping=sandbox.cell, project_id="demo",
                            user_id="demo").create()
    return vm


def test_an_evacuation_is_a_cold_move_told_by_the_instances_task_state(sandbox, fleet_store, fleet_snapshots):
    """An evacuation starts a new QEMU from the disks: the 6.12 VM may land on 7.3 although its
    live migration may not, and the dead source's stale data does not matter."""
    from arm_cpu_filter.scheduler import state

    for task_state, live, expected in (("rebuilding", False, ["g2-a", "g2-c"]), ("migrating", True, ["g2-c"])):
        vm = _instance_in_cell(sandbox, "g2-b", task_state)
        fleet_store.record_instance(vm, passthrough_definition(fleet_snapshots["g2-b"], "g2-b"), "g2-b")
        spec = sandbox.request_spec({}, instance_uuid=vm, ignore_hosts=["g2-b"])
        assert state.request_for(spec).live is live, task_state
        assert admitted(sandbox.schedule(spec)) == expected, task_state


def test_the_instances_task_state_tells_a_live_migration_from_a_resize(sandbox, fleet_store, fleet_snapshots):
    """Nova's HostManager sets Destination.allow_cross_cell_move on a live migration's request too
    (it reads the field's default when the conductor bound the move to a cell): the instance's
    task_state, not that mark, decides; the mark decides only when the instance cannot be read."""
    from arm_cpu_filter.scheduler import state

    for task_state, live in (("migrating", True), ("resize_prep", False), ("rebuilding", False)):
        vm = _instance_in_cell(sandbox, "g2-b", task_state)
        spec = sandbox.request_spec({}, instance_uuid=vm, ignore_hosts=["g2-b"], resize=True)
        assert state.request_for(spec).live is live, task_state
    unknown = sandbox.request_spec({}, instance_uuid=str(uuid.uuid4()), ignore_hosts=["g2-b"], resize=True)
    assert state.request_for(unknown).live is False
