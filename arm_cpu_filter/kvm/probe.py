"""Ask KVM itself whether a CPU definition is realizable: the ground truth the engine must match.

A FRESH VM per definition (ID registers are VM-wide and stick once written), a vCPU with the
definition's features, every register written with KVM_SET_ONE_REG in a fixed order
(`registers.write_order`), then every register read back: KVM accepts and silently drops a few
writes, so "realizable" needs both a 0 return code and an identical read-back.
"""

from __future__ import annotations

import errno
import os
import time

from . import device as dev
from . import ioctls as k
from .errors import KvmError
from .registers import table_registers, write_order


def probe_definition(
    registers: dict[str, int],
    *,
    features: list[str],
    enable_impl_id_regs: bool = False,
    device: str = "/dev/kvm",
) -> dict:
    """Write `registers` onto a fresh vCPU; per register {"rc", "readback"}, plus the verdict.

    Returns {"registers": {name: {"rc": 0 | "EINVAL"..., "readback": "0x..." | None}},
    "vcpu_init": 0 | errno name, "accepted", "realizable", "ms"}. A vCPU that KVM refuses to
    create with `features` (vcpu_init != 0) makes the definition unrealizable.
    """
    dev.check_platform()
    ids = {r.name: r.kvm_id for r in table_registers()}
    unknown = sorted(set(registers) - set(ids))
    if unknown:
        raise KvmError(f"cannot probe register(s) unknown to the table: {', '.join(unknown)}")
    caps = [k.CAP_ARM_WRITABLE_IMP_ID_REGS] if enable_impl_id_regs else []
    kvm = dev.open_kvm(device)
    start = time.monotonic()
    try:
        try:
            vm = dev.ScratchVcpu(kvm, features, caps)
        except OSError as e:
            return _verdict({}, registers, dev.errno_name(e.errno or 0), start)
        with vm:
            result = _write_and_read(vm.vcpu, registers, ids)
    finally:
        os.close(kvm)
    return _verdict(result, registers, 0, start)


def _write_and_read(vcpu: int, registers: dict[str, int], ids: dict[str, int]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in write_order(list(registers)):
        try:
            dev.set_reg(vcpu, ids[name], registers[name])
            out[name] = {"rc": 0}
        except OSError as e:
            out[name] = {"rc": dev.errno_name(e.errno or 0)}
    for name, entry in out.items():
        try:
            entry["readback"] = f"0x{dev.get_reg(vcpu, ids[name]):016x}"
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            entry["readback"] = None
    return out


def _verdict(result: dict[str, dict], registers: dict[str, int], init_rc: int | str, start: float) -> dict:
    accepted = init_rc == 0 and all(r["rc"] == 0 for r in result.values())
    same = all(result[n]["readback"] == f"0x{v:016x}" for n, v in registers.items()) if result else False
    return {
        "registers": result,
        "vcpu_init": init_rc,
        "accepted": accepted,
        "realizable": accepted and same,
        "ms": round((time.monotonic() - start) * 1000, 2),
    }
