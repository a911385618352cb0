"""Adding a field or a register to the table leaves every model's other fields unchanged.

The table is extended with a synthetic field in bits no field of the first writable register with room uses yet and a
synthetic new register (both with a non-zero "not implemented" default, so a leak would show);
every model is realized against the extended table and compared with the real realization."""

from __future__ import annotations

import pytest

from arm_cpu_filter.models import catalog, realize_model
from arm_cpu_filter.models.realization import composite_masks
from arm_cpu_filter.table import Field, Register, RegisterTable, load_table


def _free_nibble(reg: Register) -> int | None:
    used = 0
    for f in reg.fields:
        if f.type != "Reserved":
            used |= f.mask
    return next((s for s in range(0, 64, 4) if not used >> s & 0xF), None)


def extended_table() -> tuple[RegisterTable, Field, Register]:
    t = load_table()
    regs = []
    new_field = None
    for reg in t.registers:
        shift = _free_nibble(reg)
        gated = any(reg.name in m for m in composite_masks().values())  # ZFR0: all hidden without SVE
        if new_field is None and reg.kvm == "writable" and reg.fields and shift is not None and not gated:
            new_field = Field(reg.name, "FUTURE", shift, 4, False, "UnsignedEnum", {0: "NI", 1: "IMP"},
                              "LOWER", "LOWER", 0, 0xA)
            kept = tuple(f for f in reg.fields if not (f.type == "Reserved" and f.mask & new_field.mask))
            reg = Register(reg.name, reg.op0, reg.op1, reg.crn, reg.crm, reg.op2, reg.kvm, reg.aarch32, reg.res1,
                           tuple(sorted(kept + (new_field,), key=lambda f: -f.shift)))
        regs.append(reg)
    extra_field = Field("ID_AA64FUTURE0_EL1", "THING", 8, 4, False, "UnsignedEnum", {}, "LOWER", "LOWER", 0, 5)
    extra = Register("ID_AA64FUTURE0_EL1", 3, 0, 0, 7, 7, "writable", False, 0, (extra_field,))
    return RegisterTable(tuple(regs) + (extra,), t.inputs), new_field, extra


@pytest.mark.parametrize("name", sorted(catalog()))
def test_new_table_entries_take_their_default_and_change_nothing_else(name):
    table, new_field, extra = extended_table()
    before = realize_model(name)
    after = realize_model(name, table=table)
    assert after.registers[extra.name] == 0x500  # the new register: its default
    assert new_field.extract(after.registers[new_field.register]) == 0xA  # the new field: its default
    assert set(after.registers) == set(before.registers) | {extra.name}
    for reg, value in before.registers.items():
        mask = new_field.mask if reg == new_field.register else 0
        assert after.registers[reg] & ~mask == value, f"{name}: {reg} changed"
    assert after.vcpu_features == before.vcpu_features
