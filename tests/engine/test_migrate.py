"""``migrate(vm, destination)``: every blocker kind, on sample hosts given format-2 facts.

The facts here are synthetic variations (a register dropped from a list, a vector-length set, a
PMU counter count) of one shape the lab reads; the lab corpus tests prove the rule on real kernels.
"""

from __future__ import annotations

import dataclasses

import pytest

from arm_cpu_filter.engine import accepts as check_usable
from arm_cpu_filter.engine.migrate import (
    FEATURES,
    ID_REGISTERS,
    PMU,
    REGISTER_LIST,
    UNKNOWN,
    VECTOR_LENGTHS,
    defined_vm,
    migrate,
    passthrough_vm,
)
from arm_cpu_filter.errors import InputError
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.snapshot.vcpu_facts import VcpuFacts
from arm_cpu_filter.testing.vmfacts import with_facts

G3 = sample_host("graviton3")


def test_passthrough_to_an_identical_host_succeeds():
    src, dst = with_facts(G3, host="a"), with_facts(G3, host="b")
    result = migrate(passthrough_vm(src), dst)
    assert result.ok and result.blockers == ()


def test_kernel_upgrade_that_drops_a_register_blocks_the_move_and_names_it():
    src = with_facts(G3, host="old", kernel="6.12.95")
    dst = with_facts(G3, host="new", kernel="6.13.2", drop=("S3_0_C2_C0_3",))
    result = migrate(passthrough_vm(src), dst)
    assert not result.ok
    [b] = result.blockers
    assert b.kind == REGISTER_LIST and b.subject == "S3_0_C2_C0_3" and b.lifted_by is None
    assert b.reason == ("destination kernel 6.13.2 has no TCR2_EL1, which this VM's state holds "
                        "(a kernel change breaks this VM's migration)")
    # backwards is fine: registers only the destination has keep their reset values
    assert migrate(passthrough_vm(dst), src).ok


def test_destination_turning_sve_on_blocks_a_passthrough_vm_and_says_which_setting_lifts_it():
    no_sve = with_facts(G3, host="nosve", features=G3.vcpu_features - {"sve"})
    full = with_facts(G3, host="full")
    result = migrate(passthrough_vm(no_sve), full)
    assert not result.ok
    kinds = {(b.kind, b.subject, b.lifted_by) for b in result.blockers}
    assert (FEATURES, "sve", "sve=off") in kinds
    assert result.ok_with_settings and result.settings == ("sve=off",)
    assert "full starts sve on by default; the VM has none: start the destination with sve=off" in result.blockers[0].reason
    # the same VM given as a definition is started with its own features: no blocker
    assert migrate(defined_vm(passthrough_vm(no_sve).definition, no_sve), full).ok


def test_a_vm_feature_the_destination_lacks_cannot_be_lifted():
    full = with_facts(G3, host="full")
    no_sve = with_facts(G3, host="nosve", features=G3.vcpu_features - {"sve"})
    result = migrate(passthrough_vm(full), no_sve)
    assert not result.ok and not result.ok_with_settings
    assert [(b.kind, b.subject) for b in result.blockers] == [(FEATURES, "sve")]


def test_vector_lengths_must_be_the_destinations_up_to_the_vms_maximum():
    wide, narrow = with_facts(G3, host="wide", vls=(128, 256)), with_facts(G3, host="narrow", vls=(128,))
    down = migrate(passthrough_vm(wide), narrow)
    assert [(b.kind, b.lifted_by) for b in down.blockers] == [(VECTOR_LENGTHS, None)]
    assert "{128,256} cannot be given on narrow, which has {128}" in down.blockers[0].reason
    up = migrate(passthrough_vm(narrow), wide)
    assert [(b.kind, b.lifted_by) for b in up.blockers] == [(VECTOR_LENGTHS, "sve128=on")]
    assert up.ok_with_settings


def test_pmu_counters_must_fit():
    many, few = with_facts(G3, host="many", pmu=20), with_facts(G3, host="few", pmu=6)
    result = migrate(passthrough_vm(many), few)
    assert [(b.kind, b.subject) for b in result.blockers] == [(PMU, "PMCR_EL0.N")]
    assert migrate(passthrough_vm(few), many).ok


def test_id_register_blockers_come_from_check_on_the_destinations_vcpu():
    g2 = with_facts(sample_host("graviton2"), host="g2")
    result = migrate(passthrough_vm(g2), with_facts(G3, host="g3"))
    assert not result.ok
    assert {b.kind for b in result.blockers} >= {FEATURES, ID_REGISTERS}
    assert any(b.subject.startswith("MIDR_EL1") for b in result.blockers if b.kind == ID_REGISTERS)


def test_format_1_facts_are_unknown_and_fail_closed():
    result = migrate(passthrough_vm(with_facts(G3, host="a")), G3)
    assert not result.ok
    assert [b.kind for b in result.blockers] == [UNKNOWN, UNKNOWN]
    assert "the register list of graviton3 is unknown (a format-1 snapshot)" in result.blockers[0].reason


@pytest.mark.parametrize(("change", "message"), [
    ({"sve_vector_lengths": [128, 512]}, "256 is missing"),
    ({"sve_vector_lengths": [128, 200]}, "200 is not a multiple of 128"),
    ({"ipa_limit": 64}, "kvm.ipa_limit: expected an integer from 32 to 52"),
    ({"page_size": 8192}, "kvm.page_size: expected one of 4096, 16384, 65536"),
    ({"register_lists": {"sve": ["TCR2_EL1"]}}, "'TCR2_EL1' is neither a system register"),
    ({"register_lists": {"mte": ["S3_0_C2_C0_3"]}}, "'mte' is not among the host's vcpu_features"),
])
def test_bad_facts_are_refused_with_the_field_named(change, message):
    data = with_facts(G3).to_dict()
    data["kvm"].update(change)
    with pytest.raises(InputError, match=message):
        HostSnapshot.from_dict(data)


def test_format_2_round_trips_and_the_fingerprint_covers_the_facts():
    a = with_facts(G3)
    assert HostSnapshot.from_dict(a.to_dict()).fingerprint == a.fingerprint
    assert with_facts(G3, pmu=5).fingerprint != a.fingerprint
    assert isinstance(a.vcpu_facts, VcpuFacts) and a.to_dict()["format"] == 2
    assert dataclasses.replace(a, vcpu_facts=None).to_dict()["format"] == 1


def test_a_vm_moved_onto_an_upgraded_kernel_cannot_move_back():
    from arm_cpu_filter.engine.migrate import moved

    old = with_facts(G3, host="old", kernel="6.12.95", drop=("S3_3_C9_C12_0",))
    new = with_facts(G3, host="new", kernel="7.3.4")
    vm = passthrough_vm(old)
    assert migrate(vm, new).ok
    back = migrate(moved(vm, new), old)
    assert [(b.kind, b.subject) for b in back.blockers] == [(REGISTER_LIST, "S3_3_C9_C12_0")]
    assert "destination kernel 6.12.95 has no S3_3_C9_C12_0" in back.blockers[0].reason


def test_a_cold_move_only_needs_the_guests_cpu_realizable():
    old = with_facts(G3, host="old", kernel="6.12.95")
    new = with_facts(G3, host="new", kernel="7.3.4", drop=("S3_0_C2_C0_3",))
    vm = passthrough_vm(old)
    assert not migrate(vm, new).ok
    assert migrate(vm, new, live=False).ok  # nothing saved travels: the list does not matter
    assert migrate(vm, G3, live=False).ok  # nor do format 1's unknown facts
    g2 = migrate(passthrough_vm(with_facts(sample_host("graviton2"))), G3, live=False)
    assert not g2.ok and {b.kind for b in g2.blockers} == {ID_REGISTERS}


def test_qemu_does_not_enable_writable_impl_id_regs_for_a_passthrough_vm():
    import dataclasses as dc

    g2 = sample_host("graviton2-7.3")  # 7.3: the cap is on in the snapshot
    assert g2.writable_impl_id_regs
    src = with_facts(g2, host="src")
    other_midr = dc.replace(src, registers={**src.registers, "MIDR_EL1": src.registers["MIDR_EL1"] ^ 0x10})
    assert check_usable(passthrough_vm(other_midr).definition, src)  # KVM could take it with the cap
    result = migrate(passthrough_vm(other_midr), src)
    assert [b.subject for b in result.blockers] == ["MIDR_EL1.PartNum"]  # QEMU's VMs do not enable it
    assert migrate(defined_vm(passthrough_vm(other_midr).definition, other_midr), src).ok


def test_destination_vmm_settings_replace_the_defaults():
    from arm_cpu_filter.engine.migrate import DestinationVmm

    no_sve = with_facts(G3, host="nosve", features=G3.vcpu_features - {"sve"})
    full = with_facts(G3, host="full")
    settings = DestinationVmm(features=full.vcpu_features - {"sve"})
    assert migrate(passthrough_vm(no_sve), full, vmm=settings).ok
    # a VM with every vector length loads onto sve128=on in QEMU, but its guest would lose 256
    narrowed = migrate(passthrough_vm(full), full, vmm=DestinationVmm(vector_lengths=frozenset({128})))
    assert [(b.kind, b.lifted_by) for b in narrowed.blockers] == [(VECTOR_LENGTHS, "sve256=on")]


def test_the_setting_that_lifts_a_missing_feature_turns_it_on():
    from arm_cpu_filter.engine.migrate import DestinationVmm, matching_settings

    assert matching_settings(frozenset({"psci-0.2", "sve"}), frozenset({"psci-0.2"})) == "sve=off"
    assert matching_settings(frozenset({"psci-0.2"}), frozenset({"psci-0.2", "pmu-v3"})) == "pmu=on"
    full = with_facts(G3, host="full")
    no_pmu = DestinationVmm(features=full.vcpu_features - {"pmu-v3"})
    result = migrate(passthrough_vm(full), full, vmm=no_pmu)  # QEMU: PMU registers the destination lacks
    assert not result.ok and {b.lifted_by for b in result.blockers} == {"pmu=on"}
