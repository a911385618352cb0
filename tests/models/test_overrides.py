"""Overrides and composites: what they change, and clear errors for what they cannot."""

from __future__ import annotations

import pytest

from arm_cpu_filter.errors import InputError, UnknownNameError
from arm_cpu_filter.models import realize, realize_model
from arm_cpu_filter.models.realization import fields_of


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
