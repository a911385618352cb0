"""Read a HostSnapshot (format 2) from /dev/kvm: what this host's KVM offers a new VM.

The values are those of a fresh vCPU of a scratch VM created with every optional vCPU feature
the host offers (KVM computes the VM's ID registers from the first vCPU's features), plus the
writable masks and capabilities. No guest code ever runs.

`kernel` is the full `uname -r` release (e.g. "6.12.95+deb12-cloud-arm64"): the distribution
suffix identifies the build, and consumers parse the leading X.Y.Z.
"""

from __future__ import annotations

import errno
import os

from arm_cpu_filter.snapshot import HostSnapshot

from . import device as dev
from . import ioctls as k
from .errors import KvmError
from .registers import table_registers
from .vcpu_facts import read_vcpu_facts


def offered_features(kvm_fd: int) -> list[str]:
    """vCPU features this host's KVM allows (PtrAuth only as the address+generic pair KVM requires)."""
    names = [n for n, (_, cap) in k.VCPU_FEATURES.items() if dev.check_extension(kvm_fd, cap)]
    if not {"ptrauth-address", "ptrauth-generic"} <= set(names):
        names = [n for n in names if not n.startswith("ptrauth-")]
    return names


def choose_features(offered: list[str], requested: list[str] | None) -> list[str]:
    """`requested` (default: all offered) in canonical order; refuse what the host cannot do."""
    if requested is None:
        return offered
    unknown = sorted(set(requested) - set(k.VCPU_FEATURES))
    if unknown:
        raise KvmError(f"unknown vCPU feature(s) {', '.join(unknown)} (known: {', '.join(k.VCPU_FEATURES)})")
    if ("ptrauth-address" in requested) != ("ptrauth-generic" in requested):
        raise KvmError("KVM requires ptrauth-address and ptrauth-generic together")
    missing = [f for f in requested if f not in offered]
    if missing:
        raise KvmError(f"this host's KVM does not offer vCPU feature(s): {', '.join(missing)}")
    return [f for f in k.VCPU_FEATURES if f in requested]


def impl_id_choice(kvm_fd: int, enable: bool | None) -> bool:
    """Whether the scratch VM (and the VMs the snapshot describes) enable WRITABLE_IMP_ID_REGS."""
    supported = dev.check_extension(kvm_fd, k.CAP_ARM_WRITABLE_IMP_ID_REGS) != 0
    if enable and not supported:
        raise KvmError("this kernel lacks KVM_CAP_ARM_WRITABLE_IMP_ID_REGS (239): Linux 6.15+ is needed")
    return supported if enable is None else enable


def read_snapshot(
    host: str | None = None,
    features: list[str] | None = None,
    device: str = "/dev/kvm",
    enable_impl_id_regs: bool | None = None,
) -> dict:
    """HostSnapshot format-2 dict of this host (written by `HostSnapshot.to_dict`, the format's one writer).

    `features` restricts the vCPU features (default: every one offered). `enable_impl_id_regs`
    None = enable KVM_CAP_ARM_WRITABLE_IMP_ID_REGS when the kernel has it; False describes VMs
    that do not enable it (`capabilities.writable_impl_id_regs` records the choice).
    """
    dev.check_platform()
    kvm = dev.open_kvm(device)
    try:
        chosen = choose_features(offered_features(kvm), features)
        impl_id = impl_id_choice(kvm, enable_impl_id_regs)
        caps = [k.CAP_ARM_WRITABLE_IMP_ID_REGS] if impl_id else []
        has_masks = dev.check_extension(kvm, k.CAP_ARM_SUPPORTED_REG_MASK_RANGES) & 1
        with dev.ScratchVcpu(kvm, chosen, caps) as vm:
            values = _read_registers(vm.vcpu)
            masks = dev.writable_masks(vm.vm) if has_masks else None
            facts = read_vcpu_facts(kvm, frozenset(chosen), caps, full_vcpu=vm.vcpu)  # after the reads above
    finally:
        os.close(kvm)
    if masks is None:
        writable = None
    else:
        writable = {r.name: masks[r.mask_index] for r in table_registers() if r.name in values and r.mask_index is not None}
    snapshot = HostSnapshot(
        host=host if host is not None else os.uname().nodename,
        kernel=os.uname().release,
        registers=values,
        writable_masks=writable,
        vcpu_features=frozenset(chosen),
        capabilities={"writable_impl_id_regs": impl_id, "writable_masks": masks is not None},
        source="kvm",
        vcpu_facts=facts,
    )
    return snapshot.to_dict()


def _read_registers(vcpu_fd: int) -> dict[str, int]:
    """Every table register KVM knows; ENOENT (unknown to this kernel) leaves it out."""
    values: dict[str, int] = {}
    for reg in table_registers():
        try:
            values[reg.name] = dev.get_reg(vcpu_fd, reg.kvm_id)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise KvmError(f"KVM_GET_ONE_REG {reg.name}: {dev.errno_name(e.errno or 0)}") from e
    return values
