"""What one host's KVM will accept, compiled once per (snapshot, vCPU feature set).

The view holds, per register, KVM's limit L (the snapshot's value with the fields hidden
for vCPU features the VM does not use), the writable mask W and the fields KVM checks by
policy (those with a kernel ftr entry lying wholly inside W) -- everything the acceptance
rule in ``check`` needs, so a check is a few integer operations per differing register.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.table import Field, Register, load_table, vcpu_features

_ATTR = "_arm_cpu_filter_views"

#: Register "kinds" the acceptance rule treats specially.
GENERIC, IMPL_ID, CLIDR, AARCH32_RAZ, NOT_SETTABLE, NO_MASKS, UNKNOWN = (
    "generic",
    "impl-id",
    "clidr",
    "aarch32-raz",
    "not-settable",
    "no-masks",
    "unknown",
)


@dataclass(frozen=True, slots=True)
class RegisterView:
    name: str
    register: Register | None  # None: not in the table (compared exactly)
    kind: str
    limit: int
    writable: int
    checked: tuple[Field, ...]  # fields compared by policy
    checked_mask: int


@dataclass(frozen=True)
class HostView:
    snapshot: HostSnapshot
    features: frozenset[str]
    registers: dict[str, RegisterView]
    aarch32_el0: bool
    el0_el1_zero_ok: bool
    #: (register, field) -> the formatted values the host accepts, filled by ``check`` on demand
    #: (a blocked catalog asks for the same few fields again and again)
    supported: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def writable_impl_id_regs(self) -> bool:
        return self.snapshot.writable_impl_id_regs


@cache
def _kernel_rules() -> dict:
    return tomllib.loads((Path(__file__).with_name("data") / "kernel-rules.toml").read_text())


def hidden_mask(register: str, features: frozenset[str]) -> int:
    """Bits KVM reads as zero for a vCPU created with only ``features``."""
    mask = 0
    groups_present = {f.group for n, f in vcpu_features().items() if n in features and f.group}
    for name, feature in vcpu_features().items():
        missing = name not in features
        if feature.group:  # a group counts only when all its members are present
            members = [n for n, f in vcpu_features().items() if f.group == feature.group]
            missing = not (feature.group in groups_present and all(m in features for m in members))
        if missing:
            mask |= feature.hides.get(register, 0)
    return mask


def _kind(reg: Register | None, snap: HostSnapshot, aarch32_el0: bool) -> str:
    if reg is None:
        return UNKNOWN
    if reg.implementation_id:
        return IMPL_ID
    if reg.kvm == "absent":
        return NOT_SETTABLE
    if reg.kvm == "clidr":
        return CLIDR
    if reg.aarch32 and not aarch32_el0:
        return AARCH32_RAZ
    if snap.writable_masks is None:
        return NO_MASKS
    return GENERIC


def host_view(snap: HostSnapshot, features: frozenset[str]) -> HostView:
    """The compiled view of ``snap`` for a VM using ``features`` (cached on the snapshot)."""
    cache_ = snap.__dict__.setdefault(_ATTR, {})
    view = cache_.get(features)
    if view is None:
        view = cache_[features] = _build(snap, features & snap.vcpu_features)
    return view


def _build(snap: HostSnapshot, features: frozenset[str]) -> HostView:
    table = load_table()
    pfr0 = snap.registers.get("ID_AA64PFR0_EL1", 0)
    el0 = table.field("ID_AA64PFR0_EL1.EL0").extract(pfr0)
    aarch32_el0 = el0 >= 2
    major, minor, _ = snap.kernel_version
    lenient = f"{major}.{minor}" in _kernel_rules()["el0_el1_zero_accepted"]["series"]
    views: dict[str, RegisterView] = {}
    for name, value in snap.registers.items():
        reg = table.get(name)
        kind = _kind(reg, snap, aarch32_el0)
        limit = value & ~hidden_mask(name, features)
        writable = (snap.writable_masks or {}).get(name, 0)
        checked: tuple[Field, ...] = ()
        if kind == GENERIC and reg is not None:
            checked = tuple(f for f in reg.fields if f.policy and f.mask & writable == f.mask)
        mask = 0
        for f in checked:
            mask |= f.mask
        views[name] = RegisterView(name, reg, kind, limit, writable, checked, mask)
    return HostView(snap, features, views, aarch32_el0, lenient)
