"""What one host's KVM will accept, compiled once per (snapshot, vCPU feature set).

The view holds, per register, KVM's limit L (the snapshot's value with the fields hidden
for vCPU features the VM does not use), the writable mask W and the fields KVM checks by
policy (those with a kernel ftr entry lying wholly inside W) -- everything the acceptance
rule in ``check`` needs, so a check is a few integer operations per differing register.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from arm_cpu_filter.engine.cache import SnapshotCache
from arm_cpu_filter.engine.setters import kernel_series, writable_without_masks
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.table import U64, Field, Register, load_table, vcpu_features

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


class RegisterView(NamedTuple):
    """One register of a host view (a named tuple: a host never seen builds one per register)."""

    name: str
    register: Register | None  # None: not in the table (compared exactly)
    kind: str
    limit: int
    writable: int
    checked: tuple[Field, ...]  # fields compared by policy
    checked_mask: int


@dataclass(frozen=True, eq=False)
class HostView:
    #: the snapshot the view was built from; views are shared by snapshots of equal content, so
    #: read only content from it (kernel, masks, capabilities), never its host name
    snapshot: HostSnapshot
    features: frozenset[str]
    registers: dict[str, RegisterView]
    aarch32_el0: bool

    @property
    def writable_impl_id_regs(self) -> bool:
        return self.snapshot.writable_impl_id_regs


def hidden_mask(register: str, features: frozenset[str]) -> int:
    """Bits KVM reads as zero for a vCPU created with only ``features``."""
    return hidden_masks(features).get(register, 0)


@lru_cache(maxsize=256)
def hidden_masks(features: frozenset[str]) -> dict[str, int]:
    """Register -> hidden bits for one feature set: table data only, so computed once per feature
    set and process (a host's first check then costs a dict lookup per register)."""
    catalog = vcpu_features()
    groups_present = {f.group for n, f in catalog.items() if n in features and f.group}
    masks: dict[str, int] = {}
    for name, feature in catalog.items():
        missing = name not in features
        if feature.group:  # a group counts only when all its members are present
            members = [n for n, f in catalog.items() if f.group == feature.group]
            missing = not (feature.group in groups_present and all(m in features for m in members))
        if missing:
            for register, bits in feature.hides.items():
                masks[register] = masks.get(register, 0) | bits
    return masks


@lru_cache(maxsize=4096)
def _checked(register: str, writable: int) -> tuple[tuple[Field, ...], int]:
    """The fields KVM compares by policy under writable mask ``writable`` (those with a policy
    lying wholly inside it) and their bits.  Writable masks are KVM's per-kernel constants, so
    they take few values across hosts: computed once per (register, mask) and process."""
    reg = load_table().get(register)
    checked = tuple(f for f in reg.fields if f.policy and f.mask & writable == f.mask) if reg is not None else ()
    mask = 0
    for f in checked:
        mask |= f.mask
    return checked, mask


def _kind(reg: Register | None, snap: HostSnapshot, writable: int) -> str:
    if reg is None:
        return UNKNOWN
    if reg.implementation_id:
        return IMPL_ID
    if reg.kvm == "absent":
        return NOT_SETTABLE
    if reg.kvm == "clidr":
        return CLIDR
    if reg.aarch32 and not snap.aarch32_el0:
        return AARCH32_RAZ
    if snap.writable_masks is None and not writable:
        return NO_MASKS
    return GENERIC


def _writable(snap: HostSnapshot, name: str) -> int:
    """KVM's writable mask of register ``name``: the snapshot's, or on a kernel without masks the
    fields its setters take anyway (``setters.writable_without_masks``; 0 on an unmeasured one)."""
    if snap.writable_masks is not None:
        return snap.writable_masks.get(name, 0)
    return writable_without_masks(kernel_series(snap)).get(name, 0)


_NOTHING_CHECKED: tuple[tuple[Field, ...], int] = ((), 0)


def host_view(snap: HostSnapshot, features: frozenset[str]) -> HostView:
    """The compiled view of ``snap`` for a VM using ``features`` (from the engine's cache)."""
    return _views(snap, features)


def reads_as_zero(name: str, features: frozenset[str]) -> bool:
    """Does a vCPU with only ``features`` read every bit of register ``name`` as zero (ZFR0
    without SVE)?  Then the host's value does not matter, and a snapshot without it will do."""
    return hidden_masks(features).get(name, 0) == U64


def build_view(snap: HostSnapshot, features: frozenset[str]) -> HostView:
    views = {name: register_view(snap, features, name) for name in snap.registers}
    for name, hidden in hidden_masks(features).items():
        if hidden == U64 and name not in views:  # reads_as_zero: the snapshot need not have it
            views[name] = register_view(snap, features, name)
    return HostView(snap, features, views, snap.aarch32_el0)


def register_view(snap: HostSnapshot, features: frozenset[str], name: str) -> RegisterView:
    """One register of the view of ``snap`` for ``features`` (``name`` must be in the snapshot,
    or read as zero for ``features``): a host's first check builds only the registers a
    definition changes."""
    reg = load_table().get(name)
    writable = _writable(snap, name)
    kind = _kind(reg, snap, writable)
    hidden = hidden_masks(features).get(name, 0)
    value = snap.registers[name] if name in snap.registers or hidden != U64 else 0
    limit = value & ~hidden
    checked, mask = _checked(name, writable) if kind == GENERIC else _NOTHING_CHECKED
    return RegisterView(name, reg, kind, limit, writable, checked, mask)


#: bounded: 4096 snapshot objects and 4096 distinct snapshot contents (see ``SnapshotCache``)
_views: SnapshotCache[HostView] = SnapshotCache(lambda snap, features: build_view(snap, features & snap.vcpu_features))


def clear_views() -> None:
    """Forget every host view (``check.clear_caches``)."""
    _views.clear()
