"""QEMU ``-cpu host,...`` strings as the migration engine sees them (one place for the mapping).

The lab's VMs and destinations are started with ``-cpu host`` plus QEMU 10.0's vCPU properties
(``target/arm``): ``sve=on|off`` and ``sve<N>=on|off`` (``cpu64.c``, ``arm_cpu_sve_finalize``),
``pauth=on|off`` (``cpu64.c``, ``arm_cpu_pauth_finalize``: the PtrAuth address+generic pair),
``pmu=on|off`` (``cpu.c``, the ``pmu`` property). Under KVM, ``-cpu host`` turns on every vCPU
feature the host's KVM offers and every SVE vector length it offers; giving ``sve<N>=on`` caps
the lengths at the largest N asked for and, under KVM, keeps every smaller length the host has
unless it is turned off (``vq_map |= vq_supported & ~vq_init``).
"""

from __future__ import annotations

import re
from dataclasses import replace

from arm_cpu_filter.engine.hostview import hidden_mask
from arm_cpu_filter.engine.migrate import DestinationVmm, RunningVm, running_vm
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot

#: QEMU property -> the vCPU features (HostSnapshot names) it switches
PROPERTY_FEATURES = {
    "sve": frozenset({"sve"}),
    "pauth": frozenset({"ptrauth-address", "ptrauth-generic"}),
    "pmu": frozenset({"pmu-v3"}),
}
_VECTOR_LENGTH = re.compile(r"^sve(\d+)$")


class CpuStringRefused(ValueError):
    """QEMU would not start a VM with this ``-cpu`` string on this host."""


def vcpu_of(cpu: str, host: HostSnapshot) -> tuple[frozenset[str], frozenset[int] | None]:
    """The vCPU features and SVE vector lengths (None: every length the host offers) that
    ``-cpu <cpu>`` gives a VM on ``host`` (a format-2 snapshot)."""
    model, *props = cpu.split(",")
    facts = host.vcpu_facts
    if model != "host" or facts is None:
        raise ValueError(f"{cpu!r} on {host.host}: only -cpu host[,...] on a format-2 snapshot is modelled")
    features = set(facts.default_features)
    asked: dict[int, bool] = {}
    for prop in props:
        name, _, value = prop.partition("=")
        if value not in ("on", "off"):
            raise ValueError(f"{cpu!r}: {prop!r} is not name=on|off")
        m = _VECTOR_LENGTH.match(name)
        if m:
            asked[int(m.group(1))] = value == "on"
        elif name not in PROPERTY_FEATURES:
            raise ValueError(f"{cpu!r}: QEMU property {name!r} is not modelled")
        elif value == "off":
            features -= PROPERTY_FEATURES[name]
        elif not PROPERTY_FEATURES[name] <= facts.default_features:
            raise CpuStringRefused(f"{name}=on: {host.host}'s KVM does not offer it")
    if not asked:
        return frozenset(features), None
    if "sve" not in features:
        raise CpuStringRefused(f"cannot enable sve{max(asked)}: SVE not supported by KVM on {host.host}")
    top = max((v for v, on in asked.items() if on), default=max(facts.sve_vector_lengths))
    if top not in facts.sve_vector_lengths:
        raise CpuStringRefused(f"cannot enable sve{top}: {host.host}'s KVM does not offer that length")
    return frozenset(features), frozenset(v for v in facts.sve_vector_lengths if v <= top and asked.get(v, True))


def vm_of(cpu: str, source: HostSnapshot) -> RunningVm:
    """The running VM that ``-cpu <cpu>`` started on ``source``: the host's ID values with what its
    missing features hide, its features, its vector lengths, the source's register list."""
    features, lengths = vcpu_of(cpu, source)
    regs = {n: v & ~hidden_mask(n, features) for n, v in source.registers.items()}
    definition = CpuDefinition(regs, features, f"{source.host} -cpu {cpu}", {"host-passthrough": source.host})
    vm = running_vm(definition, source, passthrough=True)
    return vm if lengths is None else replace(vm, vector_lengths=lengths)


def destination_vmm_of(cpu: str, destination: HostSnapshot) -> DestinationVmm:
    """How ``-cpu <cpu>`` starts the destination's vCPU (raises CpuStringRefused when QEMU would not)."""
    features, lengths = vcpu_of(cpu, destination)
    return DestinationVmm(features=features, vector_lengths=lengths)
