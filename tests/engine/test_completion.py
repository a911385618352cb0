"""Completion: the smallest override set that makes a blocked model usable on a host (a pool of
one) -- writable fields lowered first, then implementation-defined values completed."""

from __future__ import annotations

import pytest

from arm_cpu_filter.engine import check, fix_model
from arm_cpu_filter.engine.completion import complete
from arm_cpu_filter.errors import InputError
from arm_cpu_filter.models import catalog, realize
from arm_cpu_filter.samples import sample_host, sample_hosts

GRAVITON2_COMPLETION = {
    "cpu_implementer": "0x41", "cpu_variant": "0x3", "cpu_partnum": "0xd0c", "cpu_revision": "0x1",
    "cpu_revidr": "0xff", "feat_AdvSIMD": "fp16", "feat_FP": "fp16", "hw_prop_CTX_CMPs": "1", "hw_prop_BRPs": "5",
    "hw_prop_TGRAN4_2": "tgran4", "hw_prop_TGRAN64_2": "tgran64", "hw_prop_TGRAN16_2": "tgran16",
    "hw_prop_ASIDBITS": "16bit", "hw_prop_VMIDBits": "16bit", "feat_EVT": "evt", "hw_prop_CWG": "4",
    "hw_prop_ERG": "4", "hw_prop_L1Ip": "pipt",
}


def test_armv8_2_a_on_graviton2_is_completed_with_the_hosts_implementation_defined_values():
    host = sample_host("graviton2")
    assert len(check(realize("armv8.2-a-v1"), host).blockers) == 18
    found = complete("armv8.2-a-v1", [host])
    assert found.usable and found.lowered == {} and found.completed == GRAVITON2_COMPLETION
    assert check(realize(found.spec), host).usable
    assert found.hosts == ("graviton2",) and found.conflicts == ()


def test_lowering_comes_first_and_completion_covers_the_rest():
    found = complete("kunpeng-920-v1", [sample_host("altra-7.3")])
    assert found.lowered == {"feat_FHM": "off", "feat_FCMA": "off", "feat_JSCVT": "off", "feat_IESB": "off"}
    assert found.completed == {"feat_EVT": "evt"}
    assert check(realize(found.spec), sample_host("altra-7.3")).usable
    found = complete("neoverse-v1-v1", [sample_host("graviton3")])
    assert found.lowered == {} and found.completed == {"cpu_revision": "0x1", "cpu_revidr": "0x1", "feat_NV": "2.0"}
    # a writable field and a register KVM does not let 6.12 set: one of each group
    found = complete("graviton2-v1", [sample_host("altra")])
    assert (found.lowered, found.completed) == ({"hw_prop_DIC": "off"}, {"cpu_revidr": "0x1c7"})


def test_fix_model_stays_the_lowering_only_case():
    assert not fix_model("armv8.2-a-v1", sample_host("graviton2")).usable
    lowering = complete("kunpeng-920-v1", [sample_host("altra-7.3")], complete_ids=False)
    assert not lowering.usable and lowering.completed == {}
    assert [(b.register, b.field) for b in lowering.blocked["altra-7.3"]] == [("ID_AA64MMFR2_EL1", "EVT")]


def test_partial_fix_names_what_remains_and_keeps_only_overrides_that_help():
    host = sample_host("graviton3-6.1")  # Linux 6.1: nothing writable, CLIDR must equal the host's
    found = complete("graviton3-v1", [host])
    assert not found.usable
    assert {(b.register, b.field) for b in found.blocked["graviton3-6.1"]} == {
        ("ID_AA64DFR2_EL1", None), ("CLIDR_EL1", None)}
    assert found.lowered == {"pmu": "off", "pauth": "off", "sve": "off"}
    assert found.completed == {"feat_MPAM": "1.0", "feat_EL3": "aarch64", "feat_EL2": "aarch64",
                               "feat_DebugVer": "v8", "feat_NV": "2.0"}
    assert _minimal(found, [host])


def test_no_host_is_an_error():
    with pytest.raises(InputError, match="no hosts"):
        complete("kvm-base-v1", [])


def _blocker_count(spec: str, hosts) -> int | None:
    try:
        definition = realize(spec)
    except InputError:
        return None
    return sum(len(check(definition, h).blockers) for h in hosts)


def _minimal(found, hosts) -> bool:
    """Dropping any one proposed override makes the model blocked again (a full fix) or adds
    blockers (a partial one)."""
    with_all = _blocker_count(found.spec, hosts)
    for key in found.changes:
        fewer = ",".join([found.model, *(f"{k}={v}" for k, v in found.overrides.items() if k != key)])
        count = _blocker_count(fewer, hosts)
        if count is not None and count <= with_all:
            return False
    return True


def test_every_completion_over_catalog_and_samples_is_usable_or_partial_and_minimal():
    seen = full = 0
    for name in sorted(catalog()):
        definition = realize(name)
        for host_name, host in sorted(sample_hosts().items()):
            if check(definition, host).usable:
                continue
            found = complete(name, [host])
            seen += 1
            full += found.usable
            assert found.usable == check(realize(found.spec), host).usable, (name, host_name)
            assert _minimal(found, [host]), (name, host_name, found.changes)
    assert seen > 200 and full > 100
