"""Format-2 variants of the sample hosts for migration tests, the Nova tests, the soak and the
bench: synthetic ``kvm`` facts (register lists, vector lengths, PMU counters) standing in for
the shape the lab reads from real kernels, varied one at a time."""

from __future__ import annotations

from arm_cpu_filter.engine.hostview import hidden_mask
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.snapshot.vcpu_facts import feature_key

#: Enough of a register list to tell kernels apart: TCR2_EL1 (S3_0_C2_C0_3) went away in 6.13;
#: PMCR_EL0 (S3_3_C9_C12_0) is one the kernel's sysreg file does not name (shown as spelled).
BASE_LIST = ["0x6030000000100000", "S3_0_C0_C4_0", "S3_0_C0_C6_0", "S3_0_C2_C0_3", "S3_3_C9_C12_0"]
SVE_EXTRA = ["S3_0_C1_C2_0", "0x6080000000150000"]


def with_facts(snap: HostSnapshot, *, host: str | None = None, kernel: str | None = None, drop: tuple[str, ...] = (),
               vls: tuple[int, ...] = (128, 256), pmu: int = 6, features: frozenset[str] | None = None) -> HostSnapshot:
    """``snap`` as a format-2 snapshot, optionally with fewer vCPU features (a kernel without SVE...)."""
    offered = snap.vcpu_features if features is None else features
    regs = {n: v & ~hidden_mask(n, offered) for n, v in snap.registers.items()}
    lists = {}
    for fs in (offered, offered - {"sve"}, offered - {"pmu-v3"}):
        entries = BASE_LIST + (SVE_EXTRA if "sve" in fs else [])
        lists[feature_key(fs)] = [e for e in entries if e not in drop]
    data = {**snap.to_dict(), "format": 2, "registers": {n: f"0x{v:016x}" for n, v in regs.items()},
            "vcpu_features": sorted(offered), "host": host or snap.host, "kernel": kernel or snap.kernel,
            "kvm": {"default_vcpu_features": sorted(offered), "register_lists": lists,
                    "sve_vector_lengths": list(vls) if "sve" in offered else [], "ipa_limit": 48,
                    "pmu_counters": pmu, "pmu_counters_writable": True, "page_size": 4096}}
    return HostSnapshot.from_dict(data)




#: Kernels from this version on list no TCR2_EL1 (see BASE_LIST): the synthetic kernel change.
TCR2_GONE = (6, 13, 0)


def with_kernel_facts(snap: HostSnapshot, **kwargs) -> HostSnapshot:
    """``snap`` as format 2 with the register list its kernel would give in this synthetic model
    (TCR2_EL1 gone from 6.13): a live move from an older kernel to a newer one is refused."""
    drop = ("S3_0_C2_C0_3",) if snap.kernel_version >= TCR2_GONE else ()
    return with_facts(snap, drop=drop, **kwargs)
