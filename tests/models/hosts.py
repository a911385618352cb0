"""Host snapshots for the model tests, built from the real dumps committed in tools/inputs/hosts.

The bundled samples (``arm_cpu_filter.samples``) model Linux 6.12 hosts.  The known cases of the
model issue (Graviton3 -> Graviton4, Neoverse V1 on Grace, ...) are about hosts whose KVM lets
userspace set the fields involved (Linux 7.3: TGRAN*_2 writable; >= 6.15: MIDR/REVIDR writable),
so they are built here the way the issue says: registers from the newest real KVM dump (Firecracker
fingerprints, host kernel 6.18.30), the fields Firecracker hides (PMU, SVE, PtrAuth) from the
system-litmus-harness dumps of the same instance types, ZFR0 from the arm-cpusysregs dump, and
the writable masks of the 7.3 table (tools/inputs/linux/idreg-fields.json ``kvm.writable_mask``).
A missing input fails the test naming the file (tools.inputs.MissingInput), it never skips.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.table import load_table
from tools import inputs

ALL_FEATURES = ["psci-0.2", "pmu-v3", "sve", "ptrauth-address", "ptrauth-generic"]
GATED = {
    "pmu": ["ID_AA64DFR0_EL1.PMUVer", "ID_DFR0_EL1.PerfMon"],
    "sve": ["ID_AA64PFR0_EL1.SVE"],
    "pauth": ["ID_AA64ISAR1_EL1.APA", "ID_AA64ISAR1_EL1.API", "ID_AA64ISAR1_EL1.GPA", "ID_AA64ISAR1_EL1.GPI"],
}


def dump(name: str) -> Path:
    """The committed reference dump ``name`` (fails naming it when absent)."""
    return inputs.path(f"hosts/{name}")


def _regs(name: str) -> dict[str, int]:
    table = load_table()
    data = json.loads(dump(name).read_text())["registers"]
    return {table.register(k).name: int(v, 16) for k, v in data.items() if table.get(k)}


@cache
def masks_73() -> dict[str, int]:
    data = json.loads(inputs.path("linux/idreg-fields.json").read_text())
    return {r["name"]: int(r["kvm"]["writable_mask"], 16) for r in data["registers"]
            if r["kvm"].get("writable_mask") and load_table().get(r["name"])}


def _set(regs: dict[str, int], qualname: str, value: int) -> None:
    f = load_table().field(qualname)
    regs[f.register] = f.insert(regs.get(f.register, 0), value)


def _snapshot(name: str, regs: dict[str, int], features: list[str], kernel: str = "6.18.30") -> HostSnapshot:
    regs = {k: v for k, v in regs.items() if k != "MPIDR_EL1"}
    for reg in load_table().registers:  # the dumps keep only named registers; KVM reads these as 0
        if reg.kvm in ("hidden", "unallocated") and not reg.aarch32:
            regs.setdefault(reg.name, 0)
    return HostSnapshot.from_dict({
        "format": 1, "host": name, "kernel": kernel, "source": "test",
        "vcpu_features": features,
        "registers": {k: f"0x{v:016x}" for k, v in regs.items()},
        "writable_masks": {k: f"0x{m:016x}" for k, m in masks_73().items() if k in regs},
        "capabilities": {"writable_impl_id_regs": True},
    })


def _merged(fc: str, litmus: str, gated: list[str]) -> dict[str, int]:
    regs, lit = _regs(fc), _regs(litmus)
    for group in gated:
        for q in GATED[group]:
            f = load_table().field(q)
            if f.register in lit:
                _set(regs, q, f.extract(lit[f.register]))
    return regs


@cache
def graviton3() -> HostSnapshot:
    regs = _merged("graviton3.firecracker-fingerprint-6.18host.json", "graviton3.system-litmus-ec2-m7g-metal.json",
                   ["pmu", "sve", "pauth"])
    regs["ID_AA64ZFR0_EL1"] = _regs("graviton3.arm-cpusysregs-c7g-host.json")["ID_AA64ZFR0_EL1"]
    return _snapshot("graviton3-6.18", regs, ALL_FEATURES)


@cache
def graviton4() -> HostSnapshot:
    """ZFR0 of Graviton4 with the SVE vCPU feature was never read by a public dump: it comes from
    the cpuinfo flags of a Graviton4 guest with SVE (the hwcap-derived input; see its notes)."""
    regs = _merged("graviton4.firecracker-fingerprint-6.18host.json", "graviton4.system-litmus-ec2-m8g-metal.json",
                   ["pmu", "sve", "pauth"])
    regs["ID_AA64ZFR0_EL1"] = _regs("graviton4.firecracker-sve-guest-hwcaps.json")["ID_AA64ZFR0_EL1"]
    return _snapshot("graviton4-6.18", regs, ALL_FEATURES)


@cache
def grace() -> HostSnapshot:
    """A Neoverse V2 r0p0 host (Grace's published MIDR) with Graviton4's KVM view of the core
    (no Grace dump exists): good for the core-level questions, not for Grace specifics."""
    regs = dict(graviton4().registers)
    _set(regs, "MIDR_EL1.Revision", 0)
    regs["REVIDR_EL1"] = 0
    return _snapshot("grace-inferred", regs, ALL_FEATURES)


@cache
def graviton2() -> HostSnapshot:
    regs = _merged("graviton2.firecracker-fingerprint-6.18host.json", "graviton2.system-litmus-ec2-m6g-metal.json", ["pmu"])
    return _snapshot("graviton2-6.18", regs, ["psci-0.2", "pmu-v3"])


def sample(name: str) -> HostSnapshot:
    """The bundled sample ``name`` (an unknown name is an error naming the choices)."""
    return sample_host(name)
