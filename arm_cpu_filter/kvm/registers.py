"""The registers the adapter reads and writes: the project's table, minus per-vCPU MPIDR_EL1,
with their KVM ONE_REG ids and writable-mask indexes (computed by `ioctls`, KVM's ABI)."""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

from arm_cpu_filter.snapshot import PER_VCPU_REGISTERS
from arm_cpu_filter.table import load_table

from .ioctls import mask_index, sysreg_id


class KvmRegister(NamedTuple):
    name: str
    kvm_id: int
    mask_index: int | None


@cache
def table_registers() -> tuple[KvmRegister, ...]:
    """Table order (the order snapshots list and probes write them)."""
    return tuple(
        KvmRegister(r.name, sysreg_id(*r.encoding), mask_index(*r.encoding))
        for r in load_table().registers
        if r.name not in PER_VCPU_REGISTERS
    )


def write_order(names: list[str]) -> list[str]:
    """Table order, except CTR_EL0 goes before CLIDR_EL1.

    CLIDR_EL1's setter consults CTR_EL0.IDC. The lab shows Linux 6.12 and 7.3 consult the
    host's CTR_EL0, not the value just written (lowering IDC, then writing an IDC-style CLIDR,
    is accepted), so the order should not matter; it is fixed so probes are reproducible.
    """
    rank: dict[str, float] = {r.name: i for i, r in enumerate(table_registers())}
    if "CTR_EL0" in rank and "CLIDR_EL1" in rank:
        rank["CTR_EL0"] = rank["CLIDR_EL1"] - 0.5
    return sorted(names, key=lambda n: rank[n])
