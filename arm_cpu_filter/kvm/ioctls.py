"""KVM/arm64 userspace ABI as plain numbers and struct formats.

Pure stdlib (fcntl/struct/array) so it runs under Debian's python3.11-minimal, which has no
ctypes and no mmap. Numbers come from include/uapi/linux/kvm.h and arch/arm64/include/uapi/asm/kvm.h
(generic Linux ioctl encoding: dir<<30 | size<<16 | type<<8 | nr).
"""

from __future__ import annotations

KVMIO = 0xAE
_NONE, _WRITE, _READ = 0, 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (KVMIO << 8) | nr


KVM_API_VERSION = 12

# /dev/kvm and VM ioctls
KVM_GET_API_VERSION = _ioc(_NONE, 0x00, 0)
KVM_CREATE_VM = _ioc(_NONE, 0x01, 0)
KVM_CHECK_EXTENSION = _ioc(_NONE, 0x03, 0)
KVM_CREATE_VCPU = _ioc(_NONE, 0x41, 0)
KVM_ENABLE_CAP = _ioc(_WRITE, 0xA3, 104)
KVM_ARM_PREFERRED_TARGET = _ioc(_READ, 0xAF, 32)
KVM_ARM_GET_REG_WRITABLE_MASKS = _ioc(_READ, 0xB6, 64)
KVM_GET_REG_LIST = _ioc(_READ | _WRITE, 0xB0, 8)  # _IOWR: struct kvm_reg_list { __u64 n; __u64 reg[]; }
# vCPU ioctls
KVM_GET_ONE_REG = _ioc(_WRITE, 0xAB, 16)
KVM_SET_ONE_REG = _ioc(_WRITE, 0xAC, 16)
KVM_ARM_VCPU_INIT = _ioc(_WRITE, 0xAE, 32)
KVM_ARM_VCPU_FINALIZE = _ioc(_WRITE, 0xC2, 4)

# struct layouts (little-endian, arm64)
KVM_ONE_REG = "<QQ"  # u64 id; u64 addr
KVM_VCPU_INIT = "<8I"  # u32 target; u32 features[7]
REG_MASK_RANGE = "<QI13I"  # u64 addr; u32 range (0 = feature-ID range); u32 reserved[13]
KVM_ENABLE_CAP_FMT = "<II4Q64x"  # u32 cap; u32 flags; u64 args[4]; u8 pad[64]

# capabilities (KVM_CHECK_EXTENSION / KVM_ENABLE_CAP)
CAP_ONE_REG = 70
CAP_ARM_PSCI_0_2 = 102
CAP_ARM_VM_IPA_SIZE = 165  # largest IPA size a VM may ask for, in bits; 0 = fixed 40 bits
CAP_ARM_PMU_V3 = 126
CAP_ARM_SVE = 170
CAP_ARM_PTRAUTH_ADDRESS = 171
CAP_ARM_PTRAUTH_GENERIC = 172
CAP_ARM_SUPPORTED_REG_MASK_RANGES = 230  # bit 0 = KVM_ARM_GET_REG_WRITABLE_MASKS (Linux 6.7+)
CAP_ARM_WRITABLE_IMP_ID_REGS = 239  # MIDR/REVIDR/AIDR writable if enabled before KVM_CREATE_VCPU (6.15+)

# KVM_ARM_VCPU_INIT feature bits (features[0]): KVM_ARM_VCPU_* in arch/arm64/include/uapi/asm/kvm.h.
# They live here, not in the register table: only the code that issues KVM_ARM_VCPU_INIT needs the
# numbers; the table (table/data/vcpu-features.toml) keeps what the engine needs, each feature's name
# and the ID-register fields KVM hides without it. tests/lab/test_kvm_abi.py checks the names agree.
VCPU_PSCI_0_2 = 2  # KVM_ARM_VCPU_PSCI_0_2
VCPU_PMU_V3 = 3  # KVM_ARM_VCPU_PMU_V3
VCPU_SVE = 4  # KVM_ARM_VCPU_SVE
VCPU_PTRAUTH_ADDRESS = 5  # KVM_ARM_VCPU_PTRAUTH_ADDRESS
VCPU_PTRAUTH_GENERIC = 6  # KVM_ARM_VCPU_PTRAUTH_GENERIC
FINALIZE_SVE = 4  # KVM_ARM_VCPU_FINALIZE argument: KVM_ARM_VCPU_SVE

# HostSnapshot vcpu_features names -> (feature bit, capability that allows it), in canonical order
VCPU_FEATURES: dict[str, tuple[int, int]] = {
    "psci-0.2": (VCPU_PSCI_0_2, CAP_ARM_PSCI_0_2),
    "pmu-v3": (VCPU_PMU_V3, CAP_ARM_PMU_V3),
    "sve": (VCPU_SVE, CAP_ARM_SVE),
    "ptrauth-address": (VCPU_PTRAUTH_ADDRESS, CAP_ARM_PTRAUTH_ADDRESS),
    "ptrauth-generic": (VCPU_PTRAUTH_GENERIC, CAP_ARM_PTRAUTH_GENERIC),
}

# ONE_REG ids of system registers (include/uapi/linux/kvm.h, arch/arm64/include/uapi/asm/kvm.h)
KVM_REG_ARM64 = 0x6000000000000000  # KVM_REG_ARM64
KVM_REG_SIZE_U64 = 0x0030000000000000  # KVM_REG_SIZE_U64
KVM_REG_ARM64_SYSREG = 0x0013 << 16  # KVM_REG_ARM64_SYSREG (coprocessor field, bits 27:16)
SYSREG_ID_BASE = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG  # 0x6030000000130000
KVM_REG_ARCH_MASK = 0xFF00000000000000  # KVM_REG_ARCH_MASK
KVM_REG_ARM_COPROC_MASK = 0x000000000FFF0000  # KVM_REG_ARM_COPROC_MASK
KVM_REG_SIZE_MASK = 0x00F0000000000000  # KVM_REG_SIZE_MASK
# KVM_REG_ARM64_SVE_VLS: KVM_REG_ARM64 | KVM_REG_ARM64_SVE (0x15 << 16) | KVM_REG_SIZE_U512 | 0xffff,
# a 512-bit bitmap whose bit (vq - 1) says vector length vq * 128 bits is available
SVE_VLS_ID = KVM_REG_ARM64 | 0x0060000000000000 | 0x15 << 16 | 0xFFFF
SVE_VLS_WORDS = 8  # KVM_ARM64_SVE_VLS_WORDS
PMCR_EL0 = (3, 3, 9, 12, 0)  # its N field, bits 15:11, counts the PMU event counters

# Writable-masks array (arch/arm64/include/uapi/asm/kvm.h)
FEATURE_ID_RANGE = 0  # KVM_ARM_FEATURE_ID_RANGE
WRITABLE_MASKS_COUNT = 3 * 8 * 8  # KVM_ARM_FEATURE_ID_RANGE_SIZE: u64 entries


def sysreg_id(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """ONE_REG id of a system register (ARM64_SYS_REG(): the KVM_REG_ARM64_SYSREG_*_SHIFT fields)."""
    return SYSREG_ID_BASE | op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2


def sysreg_encoding(reg_id: int) -> tuple[int, int, int, int, int] | None:
    """(op0, op1, CRn, CRm, op2) of a 64-bit system-register ONE_REG id, None for any other id."""
    if reg_id & (KVM_REG_ARCH_MASK | KVM_REG_SIZE_MASK | KVM_REG_ARM_COPROC_MASK) != SYSREG_ID_BASE:
        return None
    return (reg_id >> 14 & 3, reg_id >> 11 & 7, reg_id >> 7 & 15, reg_id >> 3 & 15, reg_id & 7)


def mask_index(op0: int, op1: int, crn: int, crm: int, op2: int) -> int | None:
    """Index in the KVM_ARM_GET_REG_WRITABLE_MASKS array, None outside the feature-ID range.

    The range (sys_regs.c is_feature_id_reg()) is op0=3, op1 in {0,1,3}, CRn=0, CRm 0..7. The
    index is the uapi macro KVM_ARM_FEATURE_ID_RANGE_IDX(): op1 & 3 with 3 counted as 2, then
    (CRm & 7) and op2. The macro ignores op0, CRn and CRm's top bit, so it aliases encodings
    outside the range onto entries of registers inside it (CRm 8 onto CRm 0): the range check
    comes first.
    """
    if op0 != 3 or crn != 0 or crm > 7 or op1 not in (0, 1, 3):
        return None
    o1 = op1 & 3
    o1 -= o1 == 3
    return o1 << 6 | (crm & 7) << 3 | op2
