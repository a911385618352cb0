"""Thin, closing wrappers around the /dev/kvm, VM and vCPU file descriptors.

Only os/fcntl/struct/array/errno: the buffer for `kvm_one_reg.addr` is an `array('Q')`
whose address `buffer_info()` provides, so no ctypes is needed.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import struct
from collections.abc import Iterable
from typing import Self

from . import ioctls as k
from .errors import KvmError


def errno_name(code: int) -> str:
    """'EINVAL' for 22: stable across machines, unlike messages."""
    return errno.errorcode.get(code, str(code))


def check_platform() -> None:
    """Refuse early on a non-arm64 machine: KVM there cannot host an arm64 CPU model."""
    machine = os.uname().machine
    if machine not in ("aarch64", "arm64"):
        raise KvmError(
            f"this machine is {machine}, not aarch64: KVM here cannot describe an ARM64 host; "
            "read a snapshot on the ARM64 host, or use --from-file"
        )


def open_kvm(device: str = "/dev/kvm") -> int:
    """Open /dev/kvm, turning the usual failures into instructions."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KvmError(
            f"{device} does not exist: this is not an ARM64 KVM host (or KVM is disabled); "
            "use --from-file with a snapshot taken on the host"
        ) from None
    except PermissionError:
        raise KvmError(
            f"permission denied opening {device}: add the user to the 'kvm' group (usermod -aG kvm USER) or run as root"
        ) from None
    version = fcntl.ioctl(fd, k.KVM_GET_API_VERSION, 0)
    if version != k.KVM_API_VERSION:
        os.close(fd)
        raise KvmError(f"{device}: unexpected KVM API version {version} (want {k.KVM_API_VERSION})")
    return fd


def check_extension(fd: int, cap: int) -> int:
    """KVM_CHECK_EXTENSION value (0 = absent)."""
    return fcntl.ioctl(fd, k.KVM_CHECK_EXTENSION, cap)


def create_vm(kvm_fd: int) -> int:
    """A scratch VM (default IPA size); retried on EINTR as KVM documents."""
    while True:
        try:
            return fcntl.ioctl(kvm_fd, k.KVM_CREATE_VM, 0)
        except InterruptedError:
            continue


def enable_cap(vm_fd: int, cap: int) -> None:
    """KVM_ENABLE_CAP with no arguments (must precede the first vCPU for VM caps)."""
    fcntl.ioctl(vm_fd, k.KVM_ENABLE_CAP, struct.pack(k.KVM_ENABLE_CAP_FMT, cap, 0, 0, 0, 0, 0))


def preferred_target(vm_fd: int) -> int:
    buf = bytearray(struct.calcsize(k.KVM_VCPU_INIT))
    fcntl.ioctl(vm_fd, k.KVM_ARM_PREFERRED_TARGET, buf, True)
    return struct.unpack(k.KVM_VCPU_INIT, buf)[0]


def feature_bits(features: Iterable[str]) -> int:
    bits = 0
    for name in features:
        if name not in k.VCPU_FEATURES:
            raise KvmError(f"unknown vCPU feature {name!r} (known: {', '.join(k.VCPU_FEATURES)})")
        bits |= 1 << k.VCPU_FEATURES[name][0]
    return bits


def create_vcpu(vm_fd: int, target: int, features: Iterable[str]) -> int:
    """vCPU 0 initialised with `features`; SVE is finalized (default vector lengths)."""
    features = list(features)
    vcpu = fcntl.ioctl(vm_fd, k.KVM_CREATE_VCPU, 0)
    try:
        init = struct.pack(k.KVM_VCPU_INIT, target, feature_bits(features), 0, 0, 0, 0, 0, 0)
        fcntl.ioctl(vcpu, k.KVM_ARM_VCPU_INIT, init)
        if "sve" in features:
            fcntl.ioctl(vcpu, k.KVM_ARM_VCPU_FINALIZE, struct.pack("<i", k.FINALIZE_SVE))
    except BaseException:
        os.close(vcpu)
        raise
    return vcpu


def get_reg(vcpu_fd: int, reg_id: int) -> int:
    """KVM_GET_ONE_REG of a 64-bit register; raises OSError (ENOENT = unknown register)."""
    buf = array.array("Q", [0])
    fcntl.ioctl(
        vcpu_fd,
        k.KVM_GET_ONE_REG,
        struct.pack(k.KVM_ONE_REG, reg_id, buf.buffer_info()[0]),
    )
    return buf[0]


def set_reg(vcpu_fd: int, reg_id: int, value: int) -> None:
    """KVM_SET_ONE_REG of a 64-bit register; raises OSError (EINVAL = refused)."""
    buf = array.array("Q", [value])
    fcntl.ioctl(
        vcpu_fd,
        k.KVM_SET_ONE_REG,
        struct.pack(k.KVM_ONE_REG, reg_id, buf.buffer_info()[0]),
    )


def writable_masks(vm_fd: int) -> list[int] | None:
    """The 192-entry feature-ID writable-mask array, or None before Linux 6.7."""
    buf = array.array("Q", [0] * k.WRITABLE_MASKS_COUNT)
    arg = struct.pack(k.REG_MASK_RANGE, buf.buffer_info()[0], k.FEATURE_ID_RANGE, *([0] * 13))
    try:
        fcntl.ioctl(vm_fd, k.KVM_ARM_GET_REG_WRITABLE_MASKS, arg)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ENOTTY):
            return None
        raise
    return list(buf)


class ScratchVcpu:
    """A fresh VM with one initialised vCPU; closes both fds on exit (never runs guest code)."""

    def __init__(self, kvm_fd: int, features: Iterable[str], enable_caps: Iterable[int] = ()) -> None:
        self.vm = create_vm(kvm_fd)
        try:
            for cap in enable_caps:
                enable_cap(self.vm, cap)
            self.vcpu = create_vcpu(self.vm, preferred_target(self.vm), features)
        except BaseException:
            os.close(self.vm)
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.vcpu)
        os.close(self.vm)


def reg_list(vcpu_fd: int) -> list[int]:
    """KVM_GET_REG_LIST: every register id the vCPU has (asks for the count, then the ids)."""
    head = array.array("Q", [0])
    try:
        fcntl.ioctl(vcpu_fd, k.KVM_GET_REG_LIST, head, True)
    except OSError as e:
        if e.errno != errno.E2BIG:
            raise
    buf = array.array("Q", [head[0]] + [0] * head[0])
    fcntl.ioctl(vcpu_fd, k.KVM_GET_REG_LIST, buf, True)
    return list(buf[1 : 1 + buf[0]])


def get_sve_vls(vcpu_fd: int) -> list[int]:
    """The SVE vector lengths (bits) an SVE vCPU has, from the KVM_REG_ARM64_SVE_VLS bitmap."""
    buf = array.array("Q", [0] * k.SVE_VLS_WORDS)
    fcntl.ioctl(vcpu_fd, k.KVM_GET_ONE_REG, struct.pack(k.KVM_ONE_REG, k.SVE_VLS_ID, buf.buffer_info()[0]))
    return [(word * 64 + bit + 1) * 128 for word, bits in enumerate(buf) for bit in range(64) if bits >> bit & 1]
