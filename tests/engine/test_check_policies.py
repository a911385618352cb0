"""KVM's acceptance rule, one branch at a time, with concrete register values.

The 6.12 values and masks are the ones measured in the lab (`-cpu max` on kernel 6.12.95,
arm-kvm-lab.md "Full dump"); each case states what the kernel does and why.
"""

from __future__ import annotations

import pytest

from arm_cpu_filter.engine import check
from arm_cpu_filter.testing.bench.reference import MAX_612  # noqa: E402  (lab values, 6.12.95)
from tests.conftest import make_def, make_host


def host(**kw):
    return make_host({k: v for k, (v, _) in MAX_612.items()}, {k: m for k, (_, m) in MAX_612.items()}, **kw)


def with_field(reg: str, shift: int, value: int, width: int = 4) -> dict[str, int]:
    regs = {k: v for k, (v, _) in MAX_612.items()}
    mask = ((1 << width) - 1) << shift
    regs[reg] = (regs[reg] & ~mask) | (value << shift)
    return regs


def blocked(regs, h=None, features=None):
    result = check(make_def(regs, features), h or host())
    return {(b.register, b.field) for b in result.blockers}


def test_host_accepts_its_own_values():
    assert check(make_def({k: v for k, (v, _) in MAX_612.items()}), host()).usable


def test_lower_field_lowered_is_accepted_raised_is_refused():
    # ISAR0.AES (bits 7:4) = 2 (PMULL) on the host: 1 accepted, nothing above 2 exists; SHA2 1 -> 2 refused
    assert blocked(with_field("ID_AA64ISAR0_EL1", 4, 1)) == set()
    assert blocked(with_field("ID_AA64ISAR0_EL1", 4, 0)) == set()
    assert blocked(with_field("ID_AA64ISAR0_EL1", 4, 3)) == {("ID_AA64ISAR0_EL1", "AES")}


def test_field_outside_writable_mask_must_equal_host():
    # ISAR0 mask 0x...fff0: bits 3:0 are RES0 in the table and outside the mask
    regs = with_field("ID_AA64ISAR0_EL1", 0, 1)
    assert blocked(regs) == {("ID_AA64ISAR0_EL1", None)}
    # PFR0.FP (bits 19:16) is outside the 6.12 mask: lowering it is refused
    assert blocked(with_field("ID_AA64PFR0_EL1", 16, 0xF)) == {("ID_AA64PFR0_EL1", "FP")}


def test_signed_field_compares_as_signed():
    # MMFR0.TGran64 (bits 27:24) signed: host 0 (implemented); 0xF (= -1, not implemented) is lower: accepted
    assert blocked(with_field("ID_AA64MMFR0_EL1", 24, 0xF)) == set()
    # TGran4 (31:28) signed, host 1 (52-bit): 0xF (-1) is a lowering, accepted although 0xF > 1 unsigned;
    # 2 is higher: refused
    assert blocked(with_field("ID_AA64MMFR0_EL1", 28, 0xF)) == set()
    assert blocked(with_field("ID_AA64MMFR0_EL1", 28, 2)) == {("ID_AA64MMFR0_EL1", "TGRAN4")}


def test_signed_field_not_implemented_cannot_be_raised():
    h = make_host({"ID_AA64DFR0_EL1": 0x0000000F10305609}, {"ID_AA64DFR0_EL1": 0x000000F000F00F0F})
    # DoubleLock (39:36) host 0xF (not implemented) -> 0 (implemented) refused; the lab saw 0 -> 0xF accepted
    assert not check(make_def({"ID_AA64DFR0_EL1": 0x0000000010305609}), h).usable


def test_exact_field_only_host_or_safe_value():
    # 7.3 makes MMFR0.TGran4_2 (43:40) writable, EXACT with safe value 1: host 2 -> 1 ok, -> 3 refused, -> 0 refused
    regs = {"ID_AA64MMFR0_EL1": 0x0000022200101125}
    h = make_host(regs, {"ID_AA64MMFR0_EL1": 0xFF00FFFFFFFFFF0F}, kernel="7.3.4")
    def at(v):
        r = (regs["ID_AA64MMFR0_EL1"] & ~(0xF << 40)) | (v << 40)
        return {(b.register, b.field) for b in check(make_def({"ID_AA64MMFR0_EL1": r}), h).blockers}
    assert at(1) == set()
    assert at(3) == {("ID_AA64MMFR0_EL1", "TGRAN4_2")}
    assert at(0) == {("ID_AA64MMFR0_EL1", "TGRAN4_2")}


def test_higher_or_zero_field():
    # CTR_EL0.CWG (27:24) HIGHER_OR_ZERO; make it writable in a synthetic mask to exercise the branch
    h = make_host({"CTR_EL0": 0x000000009444C004}, {"CTR_EL0": 0x000000003F0F000F})
    def at(v):
        r = (0x000000009444C004 & ~(0xF << 24)) | (v << 24)
        return check(make_def({"CTR_EL0": r}), h).usable
    assert at(0) is True   # 0 = "not reported" is always safe
    assert at(5) is True   # higher than the host's 4
    assert at(3) is False  # lower and non-zero


def test_higher_field():
    # MMFR1.SpecSEI (27:24) HIGHER: a model may claim more than the host, never less
    h = make_host({"ID_AA64MMFR1_EL1": 0x0000000011212122}, {"ID_AA64MMFR1_EL1": 0xFFFFFFFF0FFFF00F})
    assert check(make_def({"ID_AA64MMFR1_EL1": 0x0000000011212122}), h).usable
    lowered = 0x0000000010212122 & ~(0xF << 24)
    assert not check(make_def({"ID_AA64MMFR1_EL1": lowered}), h).usable


def test_kvm_compares_pmuver_and_debugver_as_lower():
    # host table says EXACT; KVM overrides to LOWER: PMUVer 6 -> 1 accepted
    assert blocked(with_field("ID_AA64DFR0_EL1", 8, 1)) == set()
    # DebugVer (3:0) below 6 refused by the setter even though lowering is allowed
    assert blocked(with_field("ID_AA64DFR0_EL1", 0, 6)) == set()
    assert blocked(with_field("ID_AA64DFR0_EL1", 0, 5)) == {("ID_AA64DFR0_EL1", "DebugVer")}
    # PMUVer 0xF (IMPLEMENTATION DEFINED) is stored as 0: the guest would not see it
    assert blocked(with_field("ID_AA64DFR0_EL1", 8, 0xF)) == {("ID_AA64DFR0_EL1", "PMUVer")}


def test_id_dfr0_setter_rules():
    assert blocked(with_field("ID_DFR0_EL1", 24, 1)) == {("ID_DFR0_EL1", "PerfMon")}  # pre-PMUv3
    assert blocked(with_field("ID_DFR0_EL1", 24, 0)) == set()
    assert blocked(with_field("ID_DFR0_EL1", 0, 5)) == {("ID_DFR0_EL1", "CopDbg")}


def test_implementation_id_registers():
    regs = {k: v for k, (v, _) in MAX_612.items()}
    regs["MIDR_EL1"] = 0x00000000410FD0C1
    assert blocked(regs) == {("MIDR_EL1", "Implementer"), ("MIDR_EL1", "PartNum"), ("MIDR_EL1", "Revision")} or \
        {r for r, _ in blocked(regs)} == {"MIDR_EL1"}
    assert check(make_def(regs), host(impl_writable=True, kernel="7.3.4")).usable
    regs["MIDR_EL1"] = 0x1_410FD0C1  # bits 63:32 are RES0 even when writable
    assert not check(make_def(regs), host(impl_writable=True, kernel="7.3.4")).usable


def test_clidr_is_not_compared_with_the_host():
    regs = {k: v for k, (v, _) in MAX_612.items()}
    regs["CLIDR_EL1"] = 0x000000000A200023  # different cache levels: accepted
    assert blocked(regs) == set()
    regs["CLIDR_EL1"] = 0x0000800000000000  # RES0 bit 47
    assert blocked(regs) == {("CLIDR_EL1", None)}


def test_clidr_implying_idc_needs_idc_on_the_host():
    # KVM's set_clidr() compares with the host's sanitised CTR_EL0 (measured on 6.12 and 7.3)
    regs = {k: v for k, (v, _) in MAX_612.items()}
    regs["CTR_EL0"] = 0x000000008444C004  # the VM lowers IDC to 0: its CLIDR is still accepted
    regs["CLIDR_EL1"] = 0x0000000000000023  # LoC = 0 implies IDC
    assert blocked(regs) == set()
    no_idc = make_host({"CTR_EL0": 0x000000008444C004, "CLIDR_EL1": 0x000000000A200023},
                       {"CTR_EL0": 0x00000000300F000F, "CLIDR_EL1": 0x00007FFFFFFFFFFF})
    result = check(make_def({"CTR_EL0": 0x000000008444C004, "CLIDR_EL1": 0x0000000001000004}), no_idc)
    assert {(b.register, b.field) for b in result.blockers} == {("CLIDR_EL1", "LoC")}


def test_ctr_l1ip_reserved_values_refused():
    h = make_host({"CTR_EL0": 0x000000009444C004}, {"CTR_EL0": 0x00000000300FC00F}, kernel="7.3.4")
    vipt_to_pipt = 0x000000009444C004  # L1Ip = 3 (PIPT) on the host
    assert check(make_def({"CTR_EL0": vipt_to_pipt & ~(0b01 << 14)}), h).usable  # VIPT (2): the safe value
    assert not check(make_def({"CTR_EL0": vipt_to_pipt & ~(0b11 << 14)}), h).usable  # VPIPT (0)


def test_el0_zero_accepted_on_612_refused_on_73():
    regs = with_field("ID_AA64PFR0_EL1", 0, 0)
    assert blocked(regs) == set()
    assert blocked(regs, host(kernel="7.3.4")) == {("ID_AA64PFR0_EL1", "EL0")}
    assert blocked(regs, host(kernel="6.15.2")) == {("ID_AA64PFR0_EL1", "EL0")}  # not measured: refuse


def test_aarch32_registers_on_a_host_without_aarch32_el0_must_be_zero():
    regs = {"ID_AA64PFR0_EL1": 0x1101001021110211, "ID_ISAR0_EL1": 0, "ID_DFR0_EL1": 0}
    h = make_host(regs, {"ID_AA64PFR0_EL1": 0xFFFF00F00F00FFFF, "ID_ISAR0_EL1": 0xFFFFFFFF, "ID_DFR0_EL1": 0xFFFFFFFF})
    assert check(make_def(regs), h).usable  # CopDbg 0 is fine: the register is RAZ/WI there
    assert not check(make_def({**regs, "ID_ISAR0_EL1": 0x02101110}), h).usable  # reads back 0


def test_vcpu_features_hide_fields_and_missing_features_block():
    full = {k: v for k, (v, _) in MAX_612.items()}
    # a VM without SVE: the host's view has PFR0.SVE = 0 and ZFR0 = 0
    no_sve = dict(full, ID_AA64PFR0_EL1=full["ID_AA64PFR0_EL1"] & ~(0xF << 32), ID_AA64ZFR0_EL1=0)
    feats = ["psci-0.2", "pmu-v3", "ptrauth-address", "ptrauth-generic"]
    assert check(make_def(no_sve, feats), host()).usable
    # the same featureless definition onto the host's full-feature view would be refused on SVE
    assert blocked(no_sve) == {("ID_AA64PFR0_EL1", "SVE")}
    # a VM needing SVE on a host without it
    result = check(make_def(full), host(features=feats))
    assert ("", "sve") in {(b.register, b.field) for b in result.blockers}


def test_no_writable_masks_means_nothing_writable():
    regs = {k: v for k, (v, _) in MAX_612.items()}
    h = make_host(regs, None, kernel="6.1.0")
    assert check(make_def(regs), h).usable
    assert not check(make_def(with_field("ID_AA64ISAR0_EL1", 4, 1)), h).usable


def test_kernel_6_1_takes_csv2_and_csv3_lowered_and_nothing_else():
    """6.1's set_id_aa64pfr0_el1() lets userspace set CSV2/CSV3 to 0, or to 1 where the host
    reports 1 (unaffected; lab: all nine hosts); every other bit must equal.  A kernel series
    without masks the lab has not measured (6.6) keeps every bit equal (fail closed)."""
    regs = {k: v for k, (v, _) in MAX_612.items()}
    assert (regs["ID_AA64PFR0_EL1"] >> 56) & 0xF == 1 and regs["ID_AA64PFR0_EL1"] >> 60 == 1
    no_csv2, no_csv3 = with_field("ID_AA64PFR0_EL1", 56, 0), with_field("ID_AA64PFR0_EL1", 60, 0)
    h61 = make_host(regs, None, kernel="6.1.192")
    assert blocked(no_csv2, h61) == set() and blocked(no_csv3, h61) == set()
    (b,) = check(make_def(with_field("ID_AA64PFR0_EL1", 56, 2)), h61).blockers
    assert (b.field, b.requested, b.host, b.reason) == ("CSV2", "2.0", "1.0", "LOWER field: host offers 1")
    assert b.supported == ("0.0", "1.0")
    (b,) = check(make_def(with_field("ID_AA64PFR0_EL1", 48, 0)), h61).blockers  # DIT 1 -> 0
    assert (b.register, b.field, b.reason) == ("ID_AA64PFR0_EL1", "DIT", "kernel without writable ID registers (< 6.7)")
    assert blocked(with_field("ID_AA64PFR0_EL1", 48, 0)) == set()  # the same write on 6.12 is fine
    affected = make_host(no_csv3, None, kernel="6.1.192")  # Meltdown-affected host: KVM reports CSV3 0
    assert blocked(regs, affected) == {("ID_AA64PFR0_EL1", "CSV3")}
    h66 = make_host(regs, None, kernel="6.6.0")
    assert blocked(no_csv2, h66) == {("ID_AA64PFR0_EL1", "CSV2")}
    assert blocked(no_csv3, h66) == {("ID_AA64PFR0_EL1", "CSV3")}


def test_unknown_and_missing_registers():
    regs = {k: v for k, (v, _) in MAX_612.items()}
    h = make_host({**regs, "S3_0_C0_C7_7": 5}, {k: m for k, (_, m) in MAX_612.items()})
    assert check(make_def({**regs, "S3_0_C0_C7_7": 5}), h).usable  # unknown: compared exactly
    assert blocked({**regs, "S3_0_C0_C7_7": 4}, h) == {("S3_0_C0_C7_7", None)}
    assert blocked({**regs, "ID_AA64ISAR3_EL1": 0}) == {("ID_AA64ISAR3_EL1", None)}  # host has no value
    assert check(make_def({"MIDR_EL1": regs["MIDR_EL1"]}), h).usable  # omitted registers are not written


def test_blocker_reports_property_values_and_supported():
    result = check(make_def(with_field("ID_AA64ISAR0_EL1", 12, 2)), host(features=None))
    assert result.usable  # SHA2 = 2 on the host already
    regs = with_field("ID_AA64ISAR0_EL1", 44, 2)  # DP 1 -> 2 (no such value, higher)
    (b,) = check(make_def(regs), host()).blockers
    assert (b.register, b.field, b.property, b.requested, b.host) == ("ID_AA64ISAR0_EL1", "DP", "feat_DP", "2", "dp")
    assert b.supported == ("off", "dp")
    assert b.to_dict()["supported"] == ["off", "dp"]


@pytest.mark.parametrize("kernel", ["6.12.95", "7.3.4"])
def test_check_result_json_shape(kernel):
    d = check(make_def(with_field("ID_AA64ISAR0_EL1", 4, 3)), host(kernel=kernel)).to_dict()
    assert set(d) == {"usable", "blockers"} and d["usable"] is False
    assert set(d["blockers"][0]) >= {"register", "field", "property", "requested", "host", "supported"}
