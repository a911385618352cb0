"""``-cpu host,...`` for a CPU definition, in the property spelling of the upstream QEMU
"customizable aarch64 KVM host model" series (``SYSREG_<REG>_<FIELD>=<int>``, plus its
``sve``/``pauth``/``pmu`` on/off switches).

Every field a userspace write can change (a kernel safe policy exists) of every register the
definition carries is listed, so nothing of the host's own values leaks into the guest where
KVM would let it differ.  Not listed: the pointer-authentication fields and PFR0.SVE (the
switches decide them), CLIDR_EL1 (KVM derives it), and MIDR/REVIDR/AIDR -- the series has no
properties for them; a VMM must set them through KVM_CAP_ARM_WRITABLE_IMP_ID_REGS (Linux 6.15+).

No released QEMU takes the ``SYSREG_`` properties (README, "What consumes the outputs today"):
the string is the RFC's syntax, for planning, and carries no option of this project's making.
"""

from __future__ import annotations

from arm_cpu_filter.properties import raw_name
from arm_cpu_filter.snapshot import CpuDefinition
from arm_cpu_filter.table import load_table, vcpu_features

_SWITCHES = (("sve", ("sve",)), ("pauth", ("ptrauth-address", "ptrauth-generic")), ("pmu", ("pmu-v3",)))


def cpu_option(definition: CpuDefinition) -> str:
    """The ``-cpu`` argument (without ``-cpu``) realizing ``definition`` on a KVM host."""
    table = load_table()
    feats = vcpu_features()
    switched: dict[str, int] = {}
    for _, names in _SWITCHES[:2]:
        for n in names:
            for reg, mask in feats[n].hides.items():
                if reg != "ID_AA64ZFR0_EL1":  # ZFR0 is writable: listed like any field
                    switched[reg] = switched.get(reg, 0) | mask
    parts = ["host"]
    for switch, names in _SWITCHES:
        parts.append(f"{switch}={'on' if all(n in definition.vcpu_features for n in names) else 'off'}")
    for name, value in definition.registers.items():
        reg = table.get(name)
        if reg is None or reg.implementation_id or reg.kvm in ("clidr", "absent", "hidden"):
            continue
        for f in reg.fields:
            if f.policy is None or f.mask & switched.get(name, 0):
                continue
            parts.append(f"{raw_name(name, f.name)}={f.extract(value)}")
    return ",".join(parts)
