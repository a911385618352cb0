"""KVM's acceptance rule as stated: the readable reference (the spec the compiled core in
``compiled.py`` is tested against) and the source of every blocker.

For each register the definition sets, KVM (``arm64_check_features()`` and the custom
setters in ``arch/arm64/kvm/sys_regs.c``) accepts value V against its limit L with
writable mask W iff every field with a kernel policy that lies wholly inside W satisfies
``V.f == L.f or safe(V.f, L.f) == V.f`` (signed fields compare as signed) and every other
bit equals L.  On top of that come the setters' own rules and the writes KVM accepts but
drops (the guest would not see the value, so the definition is not realizable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from arm_cpu_filter.engine.hostview import (
    AARCH32_RAZ,
    CLIDR,
    GENERIC,
    IMPL_ID,
    NO_MASKS,
    NOT_SETTABLE,
    HostView,
    RegisterView,
    host_view,
)
from arm_cpu_filter.engine.setters import refusal
from arm_cpu_filter.properties import FRACTION, properties, raw_name
from arm_cpu_filter.snapshot import PER_VCPU_REGISTERS, CpuDefinition, HostSnapshot
from arm_cpu_filter.table import EXACT, HIGHER, HIGHER_OR_ZERO, LOWER, Field, load_table


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why one register (field) of a definition is not realizable on a host."""

    register: str
    field: str | None
    property: str | None
    requested: str
    host: str
    supported: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "register": self.register,
            "field": self.field,
            "property": self.property,
            "requested": self.requested,
            "host": self.host,
            "supported": list(self.supported),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class CheckResult:
    usable: bool
    blockers: tuple[Blocker, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"usable": self.usable, "blockers": [b.to_dict() for b in self.blockers]}


def field_accepts(f: Field, v: int, lim: int) -> bool:
    """``arm64_ftr_safe_value(v, lim) == v`` (raw field values)."""
    if v == lim:
        return True
    policy = f.policy
    a, b = f.ordinal(v), f.ordinal(lim)
    if policy == LOWER:
        return a <= b
    if policy == HIGHER:
        return a >= b
    if policy == HIGHER_OR_ZERO:
        return a == 0 or (b != 0 and a >= b)
    if policy == EXACT:
        return v == f.safe
    return False


def supported_raws(f: Field, rv: RegisterView, view: HostView) -> list[int]:
    """Raw values of field ``f`` this host accepts, lowest first (wide fields: host value only).

    Values the table names no meaning for in an enumerated field (reserved encodings) are left
    out even where KVM would take them: no real CPU shows them.  The host's own value stays."""
    lim = f.extract(rv.limit)
    if rv.kind == GENERIC and f in rv.checked and f.width <= 8:
        values = [
            v for v in range(f.max + 1) if field_accepts(f, v, lim) and refusal(f, v, view.snapshot) is None
        ]
    elif rv.kind == CLIDR and view.snapshot.writable_masks is not None and f.width <= 8:
        ctr = view.snapshot.registers.get("CTR_EL0", 0)
        values = [v for v in range(f.max + 1) if not (f.insert(rv.limit, v) & ~rv.writable)
                  and not _clidr_implies_missing_idc(f.insert(rv.limit, v), rv, ctr)]
    elif rv.kind == IMPL_ID and view.writable_impl_id_regs and f.width <= 8:
        values = list(range(f.max + 1))
    else:
        return [lim]
    return sorted((v for v in values if v == lim or not _reserved(f, v)), key=f.ordinal)


def _reserved(f: Field, raw: int) -> bool:
    """An encoding an enumerated field gives no meaning (the table lists every defined one)."""
    return f.type.endswith("Enum") and raw not in f.values


@lru_cache(maxsize=4096)
def _supported_text(f: Field, register: str, view: HostView) -> tuple[str, ...]:
    """The formatted values of ``f`` the host accepts (a blocked catalog asks for the same few
    fields again and again; bounded, keyed by the view's identity)."""
    raws = supported_raws(f, view.registers[register], view)
    prop = properties().for_field(f) if f.qualname in properties().by_field else None
    if prop is None or len(prop.fields) > 1:
        return tuple(str(r) for r in raws)
    return tuple(prop.format((r,)) for r in raws)


def _blocker(f: Field, v: int, rv: RegisterView, view: HostView, reason: str) -> Blocker:
    props = properties()
    prop = props.by_field.get(f.qualname)
    lim = f.extract(rv.limit)
    if prop is not None and len(prop.fields) == 1:
        requested, host = prop.format((f.extract(v),)), prop.format((lim,))
    else:
        requested, host = str(f.extract(v)), str(lim)
    return Blocker(
        rv.name,
        f.name,
        prop.name if prop else raw_name(rv.name, f.name),
        requested,
        host,
        _supported_text(f, rv.name, view),
        reason,
    )


def _whole(name: str, v: int, host: int | None, reason: str) -> Blocker:
    return Blocker(name, None, None, f"0x{v:016x}", "-" if host is None else f"0x{host:016x}", (), reason)


def _bits_outside(v: int, rv: RegisterView, view: HostView, reason: str) -> list[Blocker]:
    """Blockers for differing bits that KVM requires equal to the host's (per field)."""
    diff = (v ^ rv.limit) & ~rv.checked_mask
    out = []
    if rv.register is not None:
        for f in rv.register.fields:
            if diff & f.mask:
                out.append(_blocker(f, v, rv, view, reason))
                diff &= ~f.mask
    if diff:
        out.append(_whole(rv.name, v, rv.limit, f"{reason} (bits 0x{diff:016x})"))
    return out


_NO_MASKS_REASON = "kernel without writable ID registers (< 6.7)"


def _check_generic(v: int, rv: RegisterView, view: HostView) -> list[Blocker]:
    out = []
    for f in rv.checked:
        fv = f.extract(v)
        if not field_accepts(f, fv, f.extract(rv.limit)):
            out.append(_blocker(f, v, rv, view, f"{f.policy} field: host offers {f.extract(rv.limit)}"))
            continue
        why = refusal(f, fv, view.snapshot)
        if why:
            out.append(_blocker(f, v, rv, view, why))
    if (v ^ rv.limit) & ~rv.checked_mask:
        why = "not writable on this host: must equal the host's value"
        out.extend(_bits_outside(v, rv, view, why if view.snapshot.writable_masks is not None else _NO_MASKS_REASON))
    return out


def _clidr_implies_missing_idc(v: int, rv: RegisterView, ctr: int) -> bool:
    """set_clidr(): cache levels that imply CTR_EL0.IDC are refused on a host without it."""
    reg = rv.register
    assert reg is not None
    loc, louis, louu = (reg.field(n).extract(v) for n in ("LoC", "LoUIS", "LoUU"))
    implies_idc = loc == 0 or (louis == 0 and louu == 0)
    return implies_idc and not load_table().field("CTR_EL0.IDC").extract(ctr)


def _check_clidr(v: int, rv: RegisterView, view: HostView, ctr: int) -> list[Blocker]:
    reg = rv.register
    assert reg is not None
    if view.snapshot.writable_masks is None:
        return [] if v == rv.limit else [_whole(rv.name, v, rv.limit, "kernel without writable ID registers")]
    if v & ~rv.writable:
        return [_whole(rv.name, v, rv.limit, "RES0 bits set")]
    if _clidr_implies_missing_idc(v, rv, ctr):
        return [_blocker(reg.field("LoC"), v, rv, view, "cache levels imply CTR_EL0.IDC, which the host lacks")]
    return []


def check_register(name: str, v: int, view: HostView, ctr: int) -> list[Blocker]:
    """Blockers for writing ``v`` to register ``name`` on the host ``view`` (empty: realizable)."""
    rv = view.registers.get(name)
    if rv is None:
        if name in PER_VCPU_REGISTERS:
            return []
        return [_whole(name, v, None, "the host snapshot has no value for this register")]
    kind = rv.kind
    if kind == CLIDR:
        return _check_clidr(v, rv, view, ctr)
    if v == rv.limit:
        return []
    if kind == IMPL_ID:
        if not view.writable_impl_id_regs:
            return _bits_outside(v, rv, view, "implementation ID registers are not writable on this host")
        if name == "MIDR_EL1" and v >> 32:
            return [_whole(name, v, rv.limit, "MIDR_EL1 bits 63:32 are RES0")]
        return []
    if kind == GENERIC:
        return _check_generic(v, rv, view)
    if kind == AARCH32_RAZ:
        return _bits_outside(v, rv, view, "host has no AArch32 EL0: KVM ignores writes, the guest reads 0")
    if kind == NO_MASKS:
        return _bits_outside(v, rv, view, _NO_MASKS_REASON)
    if kind == NOT_SETTABLE:
        return _bits_outside(v, rv, view, "KVM cannot set this register: the guest reads the hardware value")
    return [_whole(name, v, rv.limit, "register unknown to this table: must equal the host's value")]


def reference_check(definition: CpuDefinition, host: HostSnapshot) -> CheckResult:
    """Is ``definition`` realizable on ``host``? Blockers say exactly where it is not."""
    blockers: list[Blocker] = []
    for feature in sorted(definition.vcpu_features - host.vcpu_features):
        blockers.append(
            Blocker("", feature, "vcpu_features", feature, "absent", tuple(sorted(host.vcpu_features)),
                    f"the VM uses the vCPU feature {feature}, which this host's KVM does not offer")
        )
    view = host_view(host, definition.vcpu_features)
    regs = definition.registers
    # set_clidr() checks CLIDR against the host's sanitised CTR_EL0, not the VM's (lab corpus:
    # an IDC-lowering definition keeps its CLIDR on IDC hosts; CLIDRs implying IDC fail on non-IDC hosts)
    ctr = host.registers.get("CTR_EL0", 0)
    for name, v in regs.items():
        rv = view.registers.get(name)
        if rv is not None and v == rv.limit and rv.kind != CLIDR:
            continue
        blockers.extend(check_register(name, v, view, ctr))
    return CheckResult(not blockers, tuple(_as_fraction(b, regs, view) for b in blockers))


def _as_fraction(b: Blocker, regs: Mapping[str, int], view: HostView) -> Blocker:
    """A blocker on one field of a fractional property (``feat_RAS``: RAS + RAS_frac) says the
    property's values, ``2.1`` rather than ``2``: requested as the VM would see it, the host's, and
    the values accepted for this field with the other one at the host's value."""
    prop = properties().by_name.get(b.property or "")
    if prop is None or prop.kind != FRACTION:
        return b
    limits = {f.register: rv.limit for f in prop.fields if (rv := view.registers.get(f.register)) is not None}
    host = prop.extract(limits)
    requested = prop.extract({**limits, **{r: v for r, v in regs.items() if r in limits}})
    i = next(i for i, f in enumerate(prop.fields) if (f.register, f.name) == (b.register, b.field))
    rv = view.registers[b.register]
    accepted = tuple(prop.format(host[:i] + (raw,) + host[i + 1:]) for raw in supported_raws(prop.fields[i], rv, view))
    return replace(b, requested=prop.format(requested), host=prop.format(host), supported=accepted)
