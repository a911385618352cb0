"""``supported(host)``: every field ``check`` takes a value for (CLIDR_EL1 too), the composites,
and never an encoding the table gives no meaning."""

from __future__ import annotations

import pytest

from arm_cpu_filter.engine import check, supported
from arm_cpu_filter.properties import ENUM, properties
from arm_cpu_filter.samples import sample_host, sample_names
from arm_cpu_filter.snapshot import CpuDefinition
from arm_cpu_filter.table import load_table

CLIDR_PROPERTIES = ["hw_prop_Ttypen", "hw_prop_ICB", "hw_prop_LoUU", "hw_prop_LoC", "hw_prop_LoUIS",
                    *(f"hw_prop_Ctype{i}" for i in range(7, 0, -1))]


def test_clidr_fields_list_what_check_accepts():
    result = supported(sample_host("cortex-a72"))  # Cortex-A72: no CTR_EL0.IDC
    assert [name for name in result if name in CLIDR_PROPERTIES] == CLIDR_PROPERTIES
    assert result["hw_prop_LoC"] == {"type": "number", "value": "1", "writable": True,
                                     "supported": ["1", "2", "3", "4", "5", "6", "7"]}
    assert result["hw_prop_Ttypen"]["supported"] == [result["hw_prop_Ttypen"]["value"]]  # 14 bits: host only
    assert supported(sample_host("graviton3"))["hw_prop_LoC"]["supported"] == [str(n) for n in range(8)]
    for name in CLIDR_PROPERTIES[1:]:  # each listed value, and only those, is accepted by check
        for host_name in ("cortex-a72", "graviton3"):
            host = sample_host(host_name)
            listed = supported(host)[name]["supported"]
            for value in range(8):
                regs = dict(host.as_definition().registers)
                properties().get(name).write(regs, str(value))
                definition = CpuDefinition(regs, host.vcpu_features)
                assert check(definition, host).usable == (str(value) in listed), (host_name, name, value)


@pytest.mark.parametrize("sample, expected", [
    ("graviton3", {"sve": ("on", ["off", "on"]), "pauth": ("on", ["off", "on"]), "pmu": ("on", ["off", "on"])}),
    ("altra", {"sve": ("off", ["off"]), "pauth": ("off", ["off"]), "pmu": ("on", ["off", "on"])}),
])
def test_composites_are_listed(sample, expected):
    result = supported(sample_host(sample))
    assert {k: (result[k]["value"], result[k]["supported"]) for k in expected} == expected
    assert {result[k]["type"] for k in expected} == {"composite"}
    assert supported(sample_host(sample), frozenset({"psci-0.2"}))["pmu"]["supported"] == ["off"]


@pytest.mark.parametrize("sample", sample_names())
def test_no_reserved_values(sample):
    """An enumerated field's listed values are the table's named ones (the host's own excepted)."""
    host = sample_host(sample)
    for name, info in supported(host).items():
        prop = properties().by_name.get(name)
        if prop is None or prop.kind != ENUM:
            continue
        (f,) = prop.fields
        named = {prop.format((raw,)) for raw in f.values} | {info["value"]}
        assert set(info["supported"]) <= named, (name, info["supported"], f.values)


def test_reserved_values_gone_where_kvm_would_take_them():
    g3 = supported(sample_host("graviton3"))
    assert g3["feat_DoubleLock"]["supported"] == ["off"]  # was 8..14 (reserved) and off
    assert g3["feat_EL0"]["supported"] == ["aarch64", "aarch32"]  # 0 is reserved
    assert load_table().field("ID_AA64DFR0_EL1.DoubleLock").values == {0: "IMP", 15: "NI"}
