"""``migrate(vm, destination)``: will this running VM's live migration to that host succeed?

The rule, as QEMU + KVM apply it on the destination (``target/arm/machine.c`` ``cpu_post_load``,
``target/arm/kvm.c`` ``write_list_to_kvmstate``, KVM's ``set_sve_vls`` / ``set_pmcr``):

1. The destination VMM creates the vCPU with *its* features: for a host-passthrough VM (libvirt
   and Nova start ``-cpu host`` on the destination too) every feature the destination offers by
   default; for a VM given a CPU definition, the definition's; or what ``DestinationVmm`` says.
   A VM feature the destination lacks is fatal; a destination feature the VM lacks is fatal for
   SVE and PtrAuth (KVM does not let their ID fields be lowered) -- a VMM setting (``sve=off``...)
   would lift it.  QEMU (10.0, 11.1) never enables ``KVM_CAP_ARM_WRITABLE_IMP_ID_REGS``, so for a
   ``-cpu host`` VM MIDR/REVIDR/AIDR must equal the destination's (lab: cortex-a76 -> neoverse-n1
   on 7.3 fails although that kernel could take the values).
2. Every register of the VM's saved state (the source's ``KVM_GET_REG_LIST`` for the VM's
   features) must exist on the destination's vCPU; registers only the destination has keep their
   reset values.  The list changes between kernel versions.
3. The ID-register values the guest sees must pass ``check`` on the destination's vCPU.
4. SVE vector lengths: KVM can only cap the host's set at a maximum (``set_sve_vls``), so the VM's
   set must equal the destination's lengths up to the VM's maximum; ``-cpu host`` asks for all.
5. The VM's IPA size must fit the destination's ``KVM_CAP_ARM_VM_IPA_SIZE``, and its PMU counters
   (``PMCR_EL0.N``) the destination's.

Facts a format-1 snapshot lacks are unknown, and an unknown fact blocks the move (fail closed).

A cold move (resize, evacuation, unshelve) starts a new QEMU from nothing: no saved state travels,
so only rule 3 applies, with the VM's own features (its CPU must stay what the guest was given).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from arm_cpu_filter.engine.cache import BoundedCache
from arm_cpu_filter.engine.check import check
from arm_cpu_filter.engine.hostview import hidden_mask
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.snapshot.vcpu_facts import IPA_DEFAULT, sysreg_encoding
from arm_cpu_filter.table import load_table

#: QEMU's ``-cpu`` property of each vCPU feature (target/arm/cpu64.c, target/arm/kvm.c); PSCI has
#: none (always on).
QEMU_PROPERTY = {"sve": "sve", "ptrauth-address": "pauth", "ptrauth-generic": "pauth", "pmu-v3": "pmu"}
#: The setting that turns each feature off on a destination.
VMM_SETTING = {f: f"{prop}=off" for f, prop in QEMU_PROPERTY.items()}


def matching_settings(started: frozenset[str], wanted: frozenset[str]) -> str | None:
    """The destination ``-cpu`` settings that give its vCPU the VM's features ``wanted`` instead of
    ``started``: ``sve=off`` for one it would add, ``pmu=on`` for one it would leave out."""
    settings = {f"{QEMU_PROPERTY[f]}={'off' if f in started else 'on'}"
                for f in started ^ wanted if f in QEMU_PROPERTY}
    return ",".join(sorted(settings)) or None

FEATURES, REGISTER_LIST, ID_REGISTERS, VECTOR_LENGTHS, IPA, PMU, UNKNOWN = (
    "vcpu-features", "register-list", "id-registers", "sve-vector-lengths", "ipa-size", "pmu-counters", "unknown",
)


@dataclass(frozen=True)
class RunningVm:
    """What a running guest holds, which its destination must take as it is."""

    definition: CpuDefinition
    source: str
    source_kernel: str | None
    #: True: started with ``-cpu host`` (the destination starts ``-cpu host`` again).
    passthrough: bool
    register_list: frozenset[str] | None  # None: unknown
    vector_lengths: frozenset[int] | None  # bits; empty: no SVE; None: unknown
    ipa_bits: int | None
    pmu_counters: int | None  # None: no PMU, or unknown when pmu-v3 is among the features


@dataclass(frozen=True)
class DestinationVmm:
    """How the destination's VMM starts the vCPU, when it is not the default (``-cpu host`` for a
    host-passthrough VM, the definition's features otherwise): e.g. ``-cpu host,sve=off``."""

    features: frozenset[str] | None = None
    #: SVE vector lengths in bits (QEMU ``sve<N>=on``); None: every length the host offers
    vector_lengths: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class MigrationBlocker:
    kind: str
    subject: str
    reason: str
    #: The destination VMM setting that would lift this blocker, None when none would.
    lifted_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "reason": self.reason, "lifted_by": self.lifted_by}


@dataclass(frozen=True)
class MigrationResult:
    ok: bool
    blockers: tuple[MigrationBlocker, ...] = field(default=())

    @property
    def settings(self) -> tuple[str, ...]:
        """VMM settings on the destination that would lift every liftable blocker."""
        return tuple(sorted({b.lifted_by for b in self.blockers if b.lifted_by}))

    @property
    def ok_with_settings(self) -> bool:
        """The move would succeed if the destination's VMM applied ``settings``."""
        return all(b.lifted_by for b in self.blockers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "ok_with_settings": self.ok_with_settings,
            "settings": list(self.settings),
            "blockers": [b.to_dict() for b in self.blockers],
        }


def passthrough_vm(source: HostSnapshot, name: str | None = None) -> RunningVm:
    """A VM started with ``-cpu host`` on ``source``: the source's default features and limits."""
    facts = source.vcpu_facts
    features = facts.default_features if facts else source.vcpu_features
    regs = {n: v & ~hidden_mask(n, features) for n, v in source.registers.items()}
    definition = CpuDefinition(regs, features, name or source.host, {"host-passthrough": source.host})
    return running_vm(definition, source, passthrough=True)


def defined_vm(definition: CpuDefinition, source: HostSnapshot) -> RunningVm:
    """A VM started on ``source`` with ``definition`` (a named model, a pool baseline...)."""
    return running_vm(definition, source, passthrough=False)


def recorded_vm(definition: CpuDefinition, source: HostSnapshot) -> RunningVm:
    """A VM whose CPU the agent recorded, running now on ``source``: host-passthrough when the
    record says so (the CPU of the host it first booted on), else started with that definition."""
    return running_vm(definition, source, passthrough=bool(definition.provenance.get("host-passthrough")))


def running_vm(definition: CpuDefinition, source: HostSnapshot, passthrough: bool) -> RunningVm:
    """A VM whose guest sees ``definition``, running now on ``source`` (its saved state holds the
    source's register list); ``passthrough``: started with ``-cpu host`` (e.g. a recorded
    host-passthrough instance whose CPU came from the host it first booted on)."""
    facts, features = source.vcpu_facts, definition.vcpu_features
    if facts is None:
        return RunningVm(definition, source.host, source.kernel, passthrough, None, None, None, None)
    return RunningVm(
        definition,
        source.host,
        source.kernel,
        passthrough,
        facts.register_list(features),
        facts.sve_vector_lengths if "sve" in features else frozenset(),
        min(facts.ipa_limit, IPA_DEFAULT),
        facts.pmu_counters if "pmu-v3" in features else None,
    )


def stopped_vm(definition: CpuDefinition, passthrough: bool, source: str = "") -> RunningVm:
    """A VM known only by its CPU (shelved, or its source's facts are gone): no saved state to
    compare, so a live move fails closed and a cold move needs ``definition`` realizable."""
    return RunningVm(definition, source, None, passthrough, None, None, None, None)


def moved(vm: RunningVm, destination: HostSnapshot) -> RunningVm:
    """``vm`` after a successful move onto ``destination``: the guest sees the same CPU, but its
    saved state now holds the destination's register list (QEMU keeps the destination's own list)."""
    facts = destination.vcpu_facts
    features = vm.definition.vcpu_features
    return replace(vm, source=destination.host, source_kernel=destination.kernel,
                   register_list=facts.register_list(features) if facts else None)


def migrate(vm: RunningVm, destination: HostSnapshot, live: bool = True,
            vmm: DestinationVmm | None = None) -> MigrationResult:
    """Blockers of every kind for moving ``vm`` onto ``destination`` (none: the move succeeds);
    ``live=False``: a cold move, where only the CPU the guest sees must be realizable."""
    if not live:
        blockers = tuple(_id_register_blockers(vm, destination, vm.definition.vcpu_features))
        return MigrationResult(not blockers, blockers)
    facts = destination.vcpu_facts
    wanted = vm.definition.vcpu_features
    if vmm is not None and vmm.features is not None:
        started = vmm.features
    elif vm.passthrough:
        started = facts.default_features if facts else destination.vcpu_features
    else:
        started = wanted
    if vm.passthrough and destination.writable_impl_id_regs:
        destination = _without_impl_id_cap(destination)
    blockers = [*_feature_blockers(wanted, started, destination)]
    if any(b.lifted_by is None for b in blockers):
        return MigrationResult(False, tuple(blockers))
    blockers += _id_register_blockers(vm, destination, started)
    blockers += _register_list_blockers(vm, destination, started)
    blockers += _limit_blockers(vm, destination, started, vmm)
    return MigrationResult(not blockers, tuple(blockers))


#: destination snapshot -> the same without KVM_CAP_ARM_WRITABLE_IMP_ID_REGS (what QEMU's VMs get)
_no_cap: BoundedCache[HostSnapshot] = BoundedCache(1024)


def _without_impl_id_cap(dest: HostSnapshot) -> HostSnapshot:
    return _no_cap.get_or_make(
        (dest,), lambda: replace(dest, capabilities={**dest.capabilities, "writable_impl_id_regs": False}))


def _feature_blockers(wanted: frozenset[str], started: frozenset[str], dest: HostSnapshot) -> list[MigrationBlocker]:
    out = [
        MigrationBlocker(FEATURES, f, f"the VM uses the vCPU feature {f}, which {dest.host}'s KVM does not offer")
        for f in sorted(wanted - dest.vcpu_features)
    ]
    for f in sorted(started - wanted):
        if f in VMM_SETTING and f != "pmu-v3":  # a PMU can be hidden by lowering PMUVer: check decides
            out.append(MigrationBlocker(
                FEATURES, f, f"{dest.host} starts {f} on by default; the VM has none: start the destination "
                f"with {VMM_SETTING[f]}, or pick another host", VMM_SETTING[f]))
    return out


#: (definition, vCPU features) -> the definition on a vCPU with those features: one object per pair,
#: so the engine's per-definition caches (packed registers) serve every destination
_on_features: BoundedCache[CpuDefinition] = BoundedCache(4096)


def _with_features(definition: CpuDefinition, features: frozenset[str]) -> CpuDefinition:
    if features == definition.vcpu_features:
        return definition
    return _on_features.get_or_make((definition, features), lambda: replace(definition, vcpu_features=features))


def _id_register_blockers(vm: RunningVm, dest: HostSnapshot, started: frozenset[str]) -> list[MigrationBlocker]:
    result = check(_with_features(vm.definition, started), dest)
    lifted = None
    if not result.usable and started != vm.definition.vcpu_features:
        if check(vm.definition, dest).usable:
            lifted = matching_settings(started, vm.definition.vcpu_features)
    return [
        MigrationBlocker(ID_REGISTERS, f"{b.register}.{b.field}" if b.field else b.register or b.property or "",
                         f"{b.reason} (the VM sees {b.requested}, {dest.host} offers {b.host})", lifted or None)
        for b in result.blockers
    ]


def _register_list_blockers(vm: RunningVm, dest: HostSnapshot, started: frozenset[str]) -> list[MigrationBlocker]:
    facts = dest.vcpu_facts
    theirs = facts.register_list(started) if facts else None
    if vm.register_list is None or theirs is None:
        side = vm.source if vm.register_list is None else dest.host
        return [MigrationBlocker(UNKNOWN, "register-list", f"the register list of {side} is unknown "
                                 "(a format-1 snapshot): republish it with a current agent")]
    missing = sorted(vm.register_list - theirs)
    if not missing:
        return []
    matched = facts.register_list(vm.definition.vcpu_features) if facts else None
    lifted = None
    if matched is not None and started != vm.definition.vcpu_features and vm.register_list <= matched:
        lifted = matching_settings(started, vm.definition.vcpu_features)
    upgrade = " (a kernel change breaks this VM's migration)" if _series(vm.source_kernel) != _series(dest.kernel) else ""
    names = ", ".join(register_label(r) for r in missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    return [MigrationBlocker(
        REGISTER_LIST, ",".join(missing),
        f"destination kernel {dest.kernel} has no {names}, which this VM's state holds{upgrade}", lifted or None)]


def _limit_blockers(vm: RunningVm, dest: HostSnapshot, started: frozenset[str],
                    vmm: DestinationVmm | None) -> list[MigrationBlocker]:
    facts = dest.vcpu_facts
    if facts is None or vm.vector_lengths is None:
        side = vm.source if vm.vector_lengths is None else dest.host
        return [MigrationBlocker(UNKNOWN, "limits", f"the vector lengths, IPA and PMU limits of {side} are unknown "
                                 "(a format-1 snapshot): republish it with a current agent")]
    out = []
    if vm.vector_lengths and "sve" in started:
        top = max(vm.vector_lengths)
        reachable = frozenset(v for v in facts.sve_vector_lengths if v <= top)
        given = vmm.vector_lengths if vmm is not None and vmm.vector_lengths is not None else (
            facts.sve_vector_lengths if vm.passthrough else vm.vector_lengths)
        if reachable != vm.vector_lengths:
            out.append(MigrationBlocker(
                VECTOR_LENGTHS, "sve", f"the VM's SVE vector lengths {_lengths(vm.vector_lengths)} cannot be given on "
                f"{dest.host}, which has {_lengths(facts.sve_vector_lengths)} (KVM can only cap the host's set)"))
        elif given != vm.vector_lengths:
            # QEMU does not carry the vector lengths in the stream: the load succeeds and the guest's
            # vector length changes under it (lab: a full-length VM loads onto sve128=on)
            setting = f"sve{top}=on"
            out.append(MigrationBlocker(
                VECTOR_LENGTHS, "sve", f"{dest.host} would start SVE with {_lengths(given)}; the VM has "
                f"{_lengths(vm.vector_lengths)} (QEMU would load it and change the guest's vector length): "
                f"start the destination with {setting}", setting))
    if vm.ipa_bits is not None and vm.ipa_bits > facts.ipa_limit:
        out.append(MigrationBlocker(IPA, "ipa", f"the VM's {vm.ipa_bits}-bit guest physical address space does not fit "
                                    f"{dest.host}'s {facts.ipa_limit}-bit IPA limit"))
    if vm.pmu_counters is not None and (facts.pmu_counters is None or vm.pmu_counters > facts.pmu_counters):
        out.append(MigrationBlocker(PMU, "PMCR_EL0.N", f"the VM counts with {vm.pmu_counters} PMU counters; "
                                    f"{dest.host} has {facts.pmu_counters or 0}"))
    return out


def register_label(entry: str) -> str:
    """``TCR2_EL1`` for a system register the kernel's sysreg file names, else the entry as recorded."""
    table = load_table()
    name = table.system_register_names.get(entry)
    if name is None and (enc := sysreg_encoding(entry)) and enc in table.by_encoding:
        name = table.by_encoding[enc].name  # registers only the policy file describes (MIDR...)
    return name or entry


def _lengths(lengths: frozenset[int]) -> str:
    return "{" + ",".join(str(v) for v in sorted(lengths)) + "}" if lengths else "none"


def _series(kernel: str | None) -> str | None:
    return ".".join(kernel.split(".")[:2]) if kernel else None
