"""The KVM adapter's ABI numbers and its refusal off ARM64 (no /dev/kvm needed).

Numbers are checked against the values in include/uapi/linux/kvm.h; the lab (test_lab.py)
proves them on real kernels.
"""

from __future__ import annotations

import os

import pytest

from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.kvm import KvmError, device, ioctls, probe_definition, read_snapshot
from arm_cpu_filter.kvm.registers import table_registers, write_order
from arm_cpu_filter.table import vcpu_features


def test_ioctl_numbers() -> None:
    assert ioctls.KVM_GET_API_VERSION == 0xAE00
    assert ioctls.KVM_CREATE_VM == 0xAE01
    assert ioctls.KVM_CHECK_EXTENSION == 0xAE03
    assert ioctls.KVM_CREATE_VCPU == 0xAE41
    assert ioctls.KVM_ENABLE_CAP == 0x4068AEA3
    assert ioctls.KVM_GET_ONE_REG == 0x4010AEAB
    assert ioctls.KVM_SET_ONE_REG == 0x4010AEAC
    assert ioctls.KVM_ARM_VCPU_INIT == 0x4020AEAE
    assert ioctls.KVM_ARM_PREFERRED_TARGET == 0x8020AEAF
    assert ioctls.KVM_ARM_GET_REG_WRITABLE_MASKS == 0x8040AEB6
    assert ioctls.KVM_ARM_VCPU_FINALIZE == 0x4004AEC2


def test_register_ids_and_mask_indexes() -> None:
    assert ioctls.SYSREG_ID_BASE == 0x6030000000130000
    assert ioctls.sysreg_id(3, 0, 0, 0, 0) == 0x603000000013C000  # MIDR_EL1
    assert ioctls.sysreg_id(3, 3, 0, 0, 1) == 0x603000000013D801  # CTR_EL0
    assert ioctls.sysreg_id(3, 0, 0, 6, 0) == 0x603000000013C030  # ID_AA64ISAR0_EL1
    assert ioctls.mask_index(3, 0, 0, 0, 0) == 0  # MIDR_EL1
    assert ioctls.mask_index(3, 0, 0, 6, 0) == 48  # ID_AA64ISAR0_EL1
    assert ioctls.mask_index(3, 1, 0, 0, 1) == 65  # CLIDR_EL1
    assert ioctls.mask_index(3, 1, 0, 0, 7) == 71  # AIDR_EL1
    assert ioctls.mask_index(3, 3, 0, 0, 1) == 129  # CTR_EL0
    assert ioctls.mask_index(3, 3, 0, 0, 7) == 135  # DCZID_EL0
    assert ioctls.mask_index(3, 3, 0, 7, 7) == ioctls.WRITABLE_MASKS_COUNT - 1 == 191


def test_mask_index_is_none_outside_the_feature_id_range() -> None:
    # KVM_ARM_FEATURE_ID_RANGE_IDX() alone would map CRm 8..15 onto CRm 0..7 (CRm & 7)
    assert ioctls.mask_index(3, 0, 0, 8, 0) is None  # would alias MIDR_EL1's entry 0
    assert ioctls.mask_index(3, 3, 0, 15, 7) is None  # would alias entry 191
    assert ioctls.mask_index(3, 2, 0, 0, 0) is None  # CSSELR_EL1: op1 2 is outside
    assert ioctls.mask_index(3, 0, 1, 0, 0) is None  # SCTLR_EL1: CRn 1
    assert ioctls.mask_index(2, 0, 0, 0, 0) is None  # op0 2: debug registers


def test_adapter_registers_carry_the_ids_and_indexes() -> None:
    regs = {r.name: r for r in table_registers()}
    assert regs["ID_AA64ISAR0_EL1"].kvm_id == 0x603000000013C030
    assert regs["ID_AA64ISAR0_EL1"].mask_index == 48
    assert regs["CTR_EL0"].kvm_id == 0x603000000013D801
    assert regs["CTR_EL0"].mask_index == 129
    assert "MPIDR_EL1" not in regs
    indexes = [r.mask_index for r in regs.values() if r.mask_index is not None]
    assert len(indexes) == len(set(indexes))  # no two registers share an entry


def test_vcpu_feature_bits_name_the_tables_features() -> None:
    assert list(ioctls.VCPU_FEATURES) == list(vcpu_features())
    assert {n: bit for n, (bit, _) in ioctls.VCPU_FEATURES.items()} == {
        "psci-0.2": 2, "pmu-v3": 3, "sve": 4, "ptrauth-address": 5, "ptrauth-generic": 6,
    }


def test_ctr_is_written_before_clidr() -> None:
    order = write_order([r.name for r in table_registers()])
    assert order.index("CTR_EL0") == order.index("CLIDR_EL1") - 1
    assert len(order) == len(table_registers())


@pytest.mark.skipif(os.uname().machine in ("aarch64", "arm64"), reason="only meaningful off ARM64")
def test_refuses_clearly_off_arm64() -> None:
    with pytest.raises(KvmError, match="--from-file") as err:
        read_snapshot()
    assert isinstance(err.value, ArmCpuFilterError)
    with pytest.raises(KvmError, match="not aarch64"):
        probe_definition({}, features=[])


def test_missing_device_is_explained() -> None:
    with pytest.raises(KvmError, match="not an ARM64 KVM host"):
        device.open_kvm("/nonexistent/kvm")
