"""``baseline(hosts)`` depends on the set of hosts, not their order; REVIDR_EL1 and CLIDR_EL1 rules."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arm_cpu_filter.engine import baseline, check
from arm_cpu_filter.engine.baseline import kvm_clidr
from arm_cpu_filter.samples import sample_host, sample_names
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.table import load_table

SAMPLES = {name: sample_host(name) for name in sample_names()}
IDC = load_table().field("CTR_EL0.IDC")


def variant(base: str, name: str, **registers: int) -> HostSnapshot:
    """Sample host ``base`` under another name, with some register values replaced."""
    snap = SAMPLES[base]
    return dataclasses.replace(snap, host=name, registers={**snap.registers, **registers})


def as_json(hosts: list[HostSnapshot]) -> str:
    return json.dumps(baseline(hosts).to_dict())


@st.composite
def pools(draw):
    """A pool of sample hosts (some twice under another name) and a permutation of it."""
    names = draw(st.lists(st.sampled_from(sorted(SAMPLES)), min_size=1, max_size=5, unique=True))
    pool = [SAMPLES[n] for n in names]
    for n in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
        pool.append(dataclasses.replace(SAMPLES[n], host=f"{n}-twin"))
    return pool, draw(st.permutations(pool))


@settings(max_examples=60, deadline=None)
@given(pools())
def test_any_permutation_gives_the_identical_baseline(drawn):
    pool, shuffled = drawn
    assert as_json(shuffled) == as_json(pool)


@settings(max_examples=40, deadline=None)
@given(st.permutations(["altra-7.3", "graviton2-7.3", "altra-7.3-b", "graviton2-7.3-b"]))
def test_a_possible_pool_baseline_is_byte_identical_in_any_order(order):
    hosts = {n: variant(n.removesuffix("-b"), n) for n in order}
    result = baseline([hosts[n] for n in order])
    assert result.definition is not None
    assert as_json([hosts[n] for n in order]) == as_json([hosts[n] for n in sorted(order)])


def test_altra_graviton2_on_7_3_in_both_orders():
    altra, g2 = SAMPLES["altra-7.3"], SAMPLES["graviton2-7.3"]
    forward, reverse = baseline([altra, g2]), baseline([g2, altra])
    assert forward.definition is not None and reverse.definition is not None
    assert json.dumps(forward.to_dict()) == json.dumps(reverse.to_dict())
    regs = forward.definition.registers
    assert regs["MIDR_EL1"] == 0x413FD0C1
    assert regs["REVIDR_EL1"] == 0xC7  # 0x1c7 & 0xff
    assert regs["CTR_EL0"] == 0x9444C004 and regs["CLIDR_EL1"] == 0x02000021  # DIC off: L1 I-cache + L2
    assert check(forward.definition, altra).usable and check(forward.definition, g2).usable


def test_revidr_is_the_and_across_hosts_of_one_midr():
    hosts = [variant("altra-7.3", "a", REVIDR_EL1=0b1100), variant("altra-7.3", "b", REVIDR_EL1=0b1010),
             variant("altra-7.3", "c", REVIDR_EL1=0b1110)]
    result = baseline(hosts)
    assert result.definition is not None and result.definition.registers["REVIDR_EL1"] == 0b1000
    assert result.gives_up == {"a": ["cpu_revidr: 0xc -> 0x8"], "b": ["cpu_revidr: 0xa -> 0x8"],
                               "c": ["cpu_revidr: 0xe -> 0x8"]}
    assert all(check(result.definition, h).usable for h in hosts)


def test_revidr_claims_no_fix_when_midrs_differ():
    hosts = [variant("altra-7.3", "a", MIDR_EL1=0x414FD0C1, REVIDR_EL1=0xFF),
             variant("altra-7.3", "b", MIDR_EL1=0x413FD0C1, REVIDR_EL1=0xFF),
             variant("altra-7.3", "c", MIDR_EL1=0x414FD0C1, REVIDR_EL1=0x0F)]
    result = baseline(hosts)
    assert result.definition is not None
    assert result.definition.registers["MIDR_EL1"] == 0x414FD0C1  # the most common
    assert result.definition.registers["REVIDR_EL1"] == 0
    assert result.warnings == ["REVIDR_EL1: the hosts' MIDR_EL1 values differ, so no erratum fix is claimed (0)"]
    # one REVIDR value shared by different MIDRs claims nothing either
    same = baseline([variant("altra-7.3", "a", MIDR_EL1=0x414FD0C1), variant("altra-7.3", "b")])
    assert same.definition.registers["REVIDR_EL1"] == 0 and len(same.warnings) == 1


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_midr_tie_goes_to_the_smallest_value(order):
    midrs = {"a": 0x414FD0C1, "b": 0x413FD0C1}
    hosts = [variant("altra-7.3", n, MIDR_EL1=midrs[n]) for n in order]
    assert baseline(hosts).definition.registers["MIDR_EL1"] == 0x413FD0C1


def test_differing_revidr_without_writable_impl_id_regs_conflicts():
    result = baseline([SAMPLES["altra"], SAMPLES["graviton2"]])
    assert result.definition is None
    assert result.conflicts == [{
        "register": "REVIDR_EL1", "field": None,
        "hosts": {"altra": "0x00000000000001c7", "graviton2": "0x00000000000000ff"},
        "reason": "differs and cannot be changed on every host "
                  "(implementation ID registers are writable only with writable_impl_id_regs)",
    }]


@pytest.mark.parametrize(("ctr", "clidr"), [
    (0x9444C004, 0x02000021),  # IDC, no DIC: L1 I-cache, unified L2 = LoC
    (0xB444C004, 0x01000004),  # IDC and DIC: one unified level
    (0x8444C004, 0x09200003),  # neither: L1 separate I+D, LoUU = LoUIS = LoC = 1
    (0xA444C004, 0x09200002),  # DIC without IDC: L1 data only
])
def test_kvm_clidr_follows_ctr(ctr, clidr):
    assert kvm_clidr(ctr) == clidr


def test_kvm_clidr_tag_cache_sits_at_loc():
    assert kvm_clidr(0x9444C004, tag_cache=True) == 0x02000021 | 2 << 35  # Ttype2
    assert kvm_clidr(0xB444C004, tag_cache=True) == 0x01000004 | 2 << 33  # Ttype1


def test_kvm_clidr_is_what_every_sample_kernel_with_writable_registers_reports():
    with_masks = {n: s for n, s in SAMPLES.items() if s.writable_masks is not None and "CLIDR_EL1" in s.registers}
    assert len(with_masks) >= 10  # every sample of a kernel >= 6.7 (10 when this was written)
    for name, snap in with_masks.items():
        assert kvm_clidr(snap.registers["CTR_EL0"]) == snap.registers["CLIDR_EL1"], name


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_clidr_of_a_pool_without_idc_implies_no_idc(order):
    """An IDC host and one without: the baseline drops IDC and takes KVM's CLIDR for that CTR_EL0,
    which the non-IDC host accepts (a CLIDR with LoUU = LoUIS = 0 it would refuse)."""
    no_idc_ctr = IDC.insert(0x9444C004, 0)
    hosts = [SAMPLES["altra-7.3"], variant("altra-7.3", "altra-no-idc", CTR_EL0=no_idc_ctr,
                                           CLIDR_EL1=kvm_clidr(no_idc_ctr))]
    result = baseline([hosts[i] for i in order])
    assert result.definition is not None
    assert result.definition.registers["CTR_EL0"] == no_idc_ctr == 0x8444C004
    assert result.definition.registers["CLIDR_EL1"] == 0x09200003
    assert all(check(result.definition, h).usable for h in hosts)
    idc_clidr = dataclasses.replace(result.definition, registers={**result.definition.registers,
                                                                  "CLIDR_EL1": 0x02000021})
    assert not check(idc_clidr, hosts[1]).usable


def test_two_contents_under_one_name_are_ordered_by_fingerprint():
    hosts = [variant("altra-7.3", "x"), variant("graviton2-7.3", "x")]
    assert as_json(hosts) == as_json(hosts[::-1])
