"""Read format 2's migration facts from /dev/kvm: register lists, vector lengths, limits.

Each vCPU feature set a VMM may give a VM (PSCI always, as QEMU does; any mix of PMU, SVE and
the PtrAuth pair the host offers) gets its own scratch vCPU and ``KVM_GET_REG_LIST``: the list
is what QEMU migrates, and it depends on the features and the kernel.  No guest code runs.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
from collections.abc import Iterator

from arm_cpu_filter.snapshot.vcpu_facts import IPA_DEFAULT, VcpuFacts, sysreg_spelling

from . import device as dev
from . import ioctls as k

#: What a VMM can switch per VM; PSCI 0.2 is always on (QEMU sets it for every -cpu).
OPTIONAL = (("pmu-v3",), ("sve",), ("ptrauth-address", "ptrauth-generic"))
ALWAYS = frozenset({"psci-0.2"})


def feature_sets(offered: frozenset[str]) -> list[frozenset[str]]:
    """Every feature set a VM on this host can have, the full one first."""
    groups = [g for g in OPTIONAL if set(g) <= offered]
    always = ALWAYS & offered
    out = []
    for n in range(len(groups), -1, -1):
        for chosen in itertools.combinations(groups, n):
            out.append(always | frozenset(f for g in chosen for f in g))
    return out


def entry(reg_id: int) -> str:
    """A register-list entry: ``S3_0_C2_C0_3`` for a system register, else the KVM id in hex."""
    enc = k.sysreg_encoding(reg_id)
    return sysreg_spelling(*enc) if enc else f"0x{reg_id:016x}"


def read_vcpu_facts(kvm_fd: int, offered: frozenset[str], caps: list[int], full_vcpu: int | None = None) -> VcpuFacts:
    """The facts of this host's KVM for VMs created with ``caps`` enabled (as the snapshot's VM).
    ``full_vcpu``: the caller's scratch vCPU with every feature in ``offered`` (the snapshot's
    own), used instead of creating one more VM; this may lower its PMCR_EL0.N."""
    lists: dict[frozenset[str], frozenset[str]] = {}
    vls: list[int] = []
    pmu_counters: int | None = None
    pmu_writable = False
    for features in feature_sets(offered):
        with _vcpu(kvm_fd, features, caps, full_vcpu if features == offered else None) as vcpu:
            lists[features] = frozenset(entry(r) for r in dev.reg_list(vcpu))
            if "sve" in features and not vls:
                vls = dev.get_sve_vls(vcpu)
            if "pmu-v3" in features and pmu_counters is None:
                pmu_counters, pmu_writable = _pmu_counters(vcpu)
    ipa = dev.check_extension(kvm_fd, k.CAP_ARM_VM_IPA_SIZE)
    return VcpuFacts(
        default_features=frozenset(offered),  # QEMU's -cpu host turns on every feature KVM offers
        register_lists=lists,
        sve_vector_lengths=frozenset(vls),
        ipa_limit=ipa or IPA_DEFAULT,
        pmu_counters=pmu_counters,
        pmu_counters_writable=pmu_writable,
        page_size=os.sysconf("SC_PAGE_SIZE"),
    )


@contextlib.contextmanager
def _vcpu(kvm_fd: int, features: frozenset[str], caps: list[int], existing: int | None) -> Iterator[int]:
    """``existing`` when given, else a scratch vCPU with ``features`` (closed on exit)."""
    if existing is not None:
        yield existing
        return
    with dev.ScratchVcpu(kvm_fd, sorted(features), caps) as vm:
        yield vm.vcpu


def _pmu_counters(vcpu_fd: int) -> tuple[int, bool]:
    """PMCR_EL0.N, and whether KVM lets userspace lower it (tried on this scratch vCPU, read back)."""
    reg = k.sysreg_id(*k.PMCR_EL0)
    pmcr = dev.get_reg(vcpu_fd, reg)
    n = pmcr >> 11 & 0x1F
    if n == 0:
        return 0, False
    lowered = pmcr & ~(0x1F << 11) | (n - 1) << 11
    try:
        dev.set_reg(vcpu_fd, reg, lowered)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return n, False
    return n, dev.get_reg(vcpu_fd, reg) >> 11 & 0x1F == n - 1
