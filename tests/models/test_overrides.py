"""Overrides and composites: what they change, and clear errors for what they cannot."""

from __future__ import annotations

import pytest

from arm_cpu_filter.engine import check, supported
from arm_cpu_filter.errors import InputError, UnknownNameError
from arm_cpu_filter.models import realize, realize_model
from arm_cpu_filter.models.realization import fields_of
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.table import load_table


def changed(a, b):
    fa, fb = fields_of(a.registers), fields_of(b.registers)
    return {k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k)}


def test_override_changes_only_its_field():
    base, d = realize("neoverse-n1-v1"), realize("neoverse-n1-v1,feat_DP=off")
    assert changed(base, d) == {"ID_AA64ISAR0_EL1.DP"}
    assert d.name == "neoverse-n1-v1,feat_DP=off" and d.provenance["overrides"] == {"feat_DP": "off"}


def test_sysreg_alias_and_property_spellings_are_the_same_knob():
    a = realize("graviton3-v1,feat_AES=aes")
    b = realize("graviton3-v1,SYSREG_ID_AA64ISAR0_EL1_AES=1")
    assert a.fingerprint == b.fingerprint and changed(realize("graviton3-v1"), a) == {"ID_AA64ISAR0_EL1.AES"}
    assert realize_model("graviton3-v1", {"feat_AES": "aes"}).fingerprint == a.fingerprint


def test_fraction_and_identification_properties():
    d = realize("neoverse-v1-v1,feat_RAS=1.1")
    assert d.registers["ID_AA64PFR0_EL1"] >> 28 & 0xF == 1 and d.registers["ID_AA64PFR1_EL1"] >> 12 & 0xF == 1
    d = realize("neoverse-n1-v1,cpu_revision=3,cpu_revidr=0x1c7")
    assert d.registers["MIDR_EL1"] == 0x414FD0C3 and d.registers["REVIDR_EL1"] == 0x1C7


def test_composites_switch_fields_and_vcpu_features():
    on = realize("graviton3-v1")
    assert on.vcpu_features == {"psci-0.2", "pmu-v3", "sve", "ptrauth-address", "ptrauth-generic"}
    off = realize("graviton3-v1,pauth=off,sve=off,pmu=off")
    assert off.vcpu_features == {"psci-0.2"}
    assert changed(on, off) == {
        "ID_AA64ISAR1_EL1.APA", "ID_AA64ISAR1_EL1.GPA", "ID_AA64PFR0_EL1.SVE", "ID_AA64ZFR0_EL1.BF16",
        "ID_AA64ZFR0_EL1.I8MM", "ID_AA64DFR0_EL1.PMUVer", "ID_DFR0_EL1.PerfMon"}
    assert off.registers["ID_AA64ZFR0_EL1"] == 0
    assert realize("neoverse-n1-v1").vcpu_features == {"psci-0.2", "pmu-v3"}  # N1 has no SVE/PAuth


@pytest.mark.parametrize("spec, error, text", [
    ("grace-v1,feat_FOO=on", UnknownNameError, "unknown property 'feat_FOO'"),
    ("grace-v1,SYSREG_ID_AA64ISAR0_EL1_NOPE=1", UnknownNameError, "has no field 'NOPE'"),
    ("nosuch-v1", UnknownNameError, "unknown CPU model 'nosuch-v1'"),
    ("grace-v1,feat_AES=fast", InputError, "invalid value 'fast' (valid: off, aes, pmull)"),
    ("grace-v1,hw_prop_BRPs=99", InputError, "does not fit"),
    ("grace-v1,sve=maybe", InputError, "valid: on, off"),
    ("grace-v1,feat_AES", InputError, "not PROP=VALUE"),
    ("grace-v1,feat_AES=aes,feat_AES=off", InputError, "given twice"),
    ("", InputError, "empty CPU model"),
    # properties the model cannot have
    ("graviton4-v1,feat_AA32_AES=vmull", InputError, "no AArch32 EL0"),
    ("neoverse-n1-v1,sve=on", InputError, "sve=on is not applicable"),
    ("graviton3-v1,sve=off,feat_SVE_AES=aes", InputError, "feat_SVE_AES=aes needs sve=on"),
    ("grace-v1,SYSREG_DCZID_EL0_BS=4", InputError, "KVM cannot set"),
    ("grace-v1,feat_NMI=5", InputError, "5 is no value of ID_AA64PFR1_EL1.NMI, and KVM shows that field"),
])
def test_bad_overrides_are_one_line_errors_naming_the_culprit(spec, error, text):
    with pytest.raises(error) as exc:
        realize(spec)
    assert text in str(exc.value) and "\n" not in str(exc.value)


def test_aarch32_override_applies_once_el0_has_aarch32():
    d = realize("graviton3-v1,feat_AA32_AES=off")
    assert d.registers["ID_ISAR5_EL1"] >> 4 & 0xF == 0
    no32 = realize("graviton3-v1,feat_EL0=aarch64")
    assert "ID_ISAR5_EL1" not in no32.registers and "ID_PFR0_EL1" not in no32.registers


# ---- aarch32: one switch for AArch32 at every exception level -------------------------------------

def _levels(spec: str) -> tuple[int, ...]:
    pfr0 = realize(spec).registers["ID_AA64PFR0_EL1"]
    return tuple(pfr0 >> shift & 0xF for shift in (0, 4, 8, 12))  # EL0, EL1, EL2, EL3


def test_aarch32_off_caps_every_level_at_aarch64_and_drops_the_aarch32_registers():
    assert _levels("cortex-a72-v1") == (2, 2, 0, 0)
    assert _levels("cortex-a72-v1,aarch32=off") == (1, 1, 0, 0)
    assert _levels("graviton3-v1") == (2, 1, 0, 0)
    on, off = realize("graviton3-v1"), realize("graviton3-v1,aarch32=off")
    assert (len(on.registers), len(off.registers)) == (47, 25)
    changed = {r for r in on.registers if on.registers[r] != off.registers.get(r)}
    assert changed - {"ID_AA64PFR0_EL1"} == {r for r in on.registers if load_table().register(r).aarch32}
    assert off.registers["ID_AA64PFR0_EL1"] == on.registers["ID_AA64PFR0_EL1"] & ~0xF | 1
    assert off.vcpu_features == on.vcpu_features
    # a model without AArch32 is unchanged by aarch32=off (its default)
    assert realize("graviton4-v1,aarch32=off").registers == realize("graviton4-v1").registers


@pytest.mark.parametrize("spec, text", [
    ("graviton4-v1,aarch32=on", "aarch32=on is not applicable: the model does not implement aarch32"),
    ("graviton3-v1,aarch32=off,feat_EL0=aarch32", "feat_EL0=aarch32 needs aarch32=on"),
    ("graviton3-v1,aarch32=off,feat_AA32_AES=off", "the model has no AArch32 EL0: aarch32=off"),
    ("graviton3-v1,aarch32=maybe", "invalid value 'maybe' for aarch32 (valid: on, off)"),
])
def test_aarch32_errors_name_the_conflict(spec, text):
    with pytest.raises(InputError) as exc:
        realize(spec)
    assert text in str(exc.value)


def test_aarch32_off_moves_graviton3_v1_to_graviton4_without_aarch32_blockers():
    g4 = sample_host("graviton4")
    before = check(realize("graviton3-v1"), g4).blockers
    after = check(realize("graviton3-v1,aarch32=off"), g4).blockers
    assert sum(load_table().register(b.register).aarch32 for b in before) == 92
    assert sorted((b.register, b.field) for b in after) == [
        ("ID_AA64ISAR0_EL1", "SM3"), ("ID_AA64ISAR0_EL1", "SM4"), ("ID_AA64ISAR1_EL1", "APA"),
        ("ID_AA64MMFR0_EL1", "TGRAN16_2"), ("ID_AA64MMFR0_EL1", "TGRAN4_2"), ("ID_AA64MMFR0_EL1", "TGRAN64_2"),
        ("ID_AA64MMFR2_EL1", "NV"), ("MIDR_EL1", "PartNum"), ("MIDR_EL1", "Variant"), ("REVIDR_EL1", None),
    ]  # the rest: another core (MIDR), SM3/SM4, QARMA level, TGRAN*_2, NV on 6.12


def test_supported_lists_the_composites():
    got = {name: {h: (s[name]["value"], s[name]["supported"]) for h, s in
                  ((h, supported(sample_host(h))) for h in ("graviton4", "graviton3", "graviton3-6.1", "cortex-a72"))}
           for name in ("aarch32", "sve", "pmu")}
    assert got["aarch32"] == {"graviton4": ("off", ["off"]), "graviton3": ("on", ["off", "on"]),
                              "graviton3-6.1": ("on", ["on"]),  # no writable masks: EL0 cannot be lowered
                              "cortex-a72": ("on", ["off", "on"])}
    assert got["sve"] == {"graviton4": ("on", ["off", "on"]), "graviton3": ("on", ["off", "on"]),
                          "graviton3-6.1": ("off", ["off"]), "cortex-a72": ("off", ["off"])}
    assert got["pmu"]["cortex-a72"] == ("on", ["off", "on"])
    assert supported(sample_host("graviton4"))["aarch32"]["type"] == "composite"
