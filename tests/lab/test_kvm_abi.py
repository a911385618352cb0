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
from arm_cpu_filter.table import load_table


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


def test_register_ids_and_mask_indexes_agree_with_the_table() -> None:
    assert ioctls.sysreg_id(3, 0, 0, 0, 0) == 0x603000000013C000  # MIDR_EL1
    assert ioctls.sysreg_id(3, 3, 0, 0, 1) == 0x603000000013D801  # CTR_EL0
    for reg in load_table().registers:
        assert ioctls.sysreg_id(*reg.encoding) == reg.kvm_id, reg.name
        assert ioctls.mask_index(*reg.encoding) == reg.mask_index, reg.name
    assert ioctls.mask_index(3, 1, 0, 0, 1) == 65  # CLIDR_EL1
    assert ioctls.mask_index(3, 3, 0, 0, 1) == 129  # CTR_EL0
    assert "MPIDR_EL1" not in {r.name for r in table_registers()}


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
