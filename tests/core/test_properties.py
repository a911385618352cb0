"""Property names, values and parsing."""

from __future__ import annotations

import pytest

from arm_cpu_filter.errors import InputError, UnknownNameError
from arm_cpu_filter.properties import properties


def test_single_field_properties():
    p = properties()
    assert p.get("feat_AES").choices() == ["off", "aes", "pmull"]
    assert p.get("feat_SHA2").choices() == ["off", "sha256", "sha512"]
    assert p.get("hw_prop_DIC").kind == "bool"
    assert p.get("hw_prop_BRPs").kind == "number"
    assert p.get("hw_prop_PARANGE").choices()[:3] == ["32bit", "36bit", "40bit"]
    # names that collide across registers get a register prefix
    assert p.get("feat_SVE_AES").field.qualname == "ID_AA64ZFR0_EL1.AES"
    assert p.get("feat_AA32_AES").field.qualname == "ID_ISAR5_EL1.AES"


def test_values_parse_by_name_and_number():
    aes = properties().get("feat_AES")
    assert aes.parse("pmull") == (2,) and aes.parse("PMULL") == (2,) and aes.parse("1") == (1,)
    assert aes.parse("0x2") == (2,)
    regs: dict[str, int] = {}
    aes.write(regs, "aes")
    assert regs == {"ID_AA64ISAR0_EL1": 0x10}
    assert aes.read({"ID_AA64ISAR0_EL1": 0x20}) == "pmull"
    dic = properties().get("hw_prop_DIC")
    assert dic.parse("on") == (1,) and dic.parse("false") == (0,)


def test_fractional_properties():
    csv2 = properties().get("feat_CSV2")
    assert [f.qualname for f in csv2.fields] == ["ID_AA64PFR0_EL1.CSV2", "ID_AA64PFR1_EL1.CSV2_frac"]
    regs: dict[str, int] = {}
    csv2.write(regs, "1.1")
    assert regs == {"ID_AA64PFR0_EL1": 1 << 56, "ID_AA64PFR1_EL1": 1 << 32}
    assert csv2.read(regs) == "1.1"
    for name in ("feat_RAS", "feat_MPAM", "feat_NV"):
        assert properties().get(name).kind == "fraction"


def test_identification_and_raw_aliases():
    p = properties()
    assert p.get("cpu_partnum").field.qualname == "MIDR_EL1.PartNum"
    regs = {"MIDR_EL1": 0x413FD0C1}
    assert p.get("cpu_implementer").read(regs) == "0x41" and p.get("cpu_partnum").read(regs) == "0xd0c"
    raw = p.get("SYSREG_ID_AA64ISAR0_EL1_DP")
    assert raw.field.qualname == "ID_AA64ISAR0_EL1.DP" and raw.parse("1") == (1,)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("feat_AES", "sha3", "property feat_AES: invalid value 'sha3' (valid: off, aes, pmull)"),
        ("feat_AES", "16", "property feat_AES: value '16' does not fit ID_AA64ISAR0_EL1.AES (4 bits)"),
        ("hw_prop_BRPs", "many", "property hw_prop_BRPs: invalid value 'many' (valid: a number)"),
        ("feat_CSV2", "x.1", "property feat_CSV2: invalid value 'x' for ID_AA64PFR0_EL1.CSV2 (valid: NI, IMP, CSV2_2, CSV2_3)"),
    ],
)
def test_invalid_values_name_the_culprit(name, value, message):
    with pytest.raises(InputError) as exc:
        properties().get(name).parse(value)
    assert str(exc.value) == message


def test_unknown_properties():
    with pytest.raises(UnknownNameError, match="unknown property 'feat_BOGUS'"):
        properties().get("feat_BOGUS")
    with pytest.raises(UnknownNameError, match="ID_AA64ISAR0_EL1 has no field 'NOPE'"):
        properties().get("SYSREG_ID_AA64ISAR0_EL1_NOPE")
