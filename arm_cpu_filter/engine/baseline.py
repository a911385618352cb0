"""``baseline(hosts)``: the richest CPU definition every given host accepts.

Fields are independent under KVM's rule, so the baseline is computed field by field over
the distinct snapshots (a fleet has few): a field every host lets the VM lower takes the
policy's meet (LOWER: minimum, HIGHER: maximum, HIGHER_OR_ZERO: maximum unless some host
offers 0, EXACT: the common value or the kernel's safe value); a field some host cannot
change must be the same on all of those hosts and acceptable to the others.  When no
AArch32 is left (EL0 and EL1 AArch64-only), the AArch32 ID registers are left out: the
guest does not use them and KVM exposes them differently on AArch64-only hosts.

The result depends on the set of hosts, never on their order: the distinct snapshots are
sorted by host name, and every choice between values is made by value.  Implementation IDs
that differ (only writable on kernels with ``writable_impl_id_regs``): MIDR_EL1 and AIDR_EL1 take
the most common value (ties: the smallest); REVIDR_EL1 says which errata its revision has fixed,
so it is the AND over the hosts when they share one MIDR (the guest may skip only the workarounds
every host can skip) and 0 when the MIDRs differ (a REVIDR bit means nothing for another MIDR).
A differing CLIDR_EL1 is KVM's own ``reset_clidr()`` for the baseline's CTR_EL0 (``kvm_clidr``).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from arm_cpu_filter.engine.check import check, check_register, field_accepts
from arm_cpu_filter.engine.hostview import CLIDR, GENERIC, IMPL_ID, HostView, host_view
from arm_cpu_filter.engine.setters import refusal
from arm_cpu_filter.errors import InputError
from arm_cpu_filter.properties import properties
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.table import EXACT, HIGHER, HIGHER_OR_ZERO, LOWER, Field, load_table


@dataclass
class BaselineResult:
    definition: CpuDefinition | None
    #: why no definition exists: (register, field or None, hosts and their values)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    #: per host name: properties the baseline lowers, "prop: host value -> baseline value"
    gives_up: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "possible": self.definition is not None,
            "definition": self.definition.to_dict() if self.definition else None,
            "conflicts": self.conflicts,
            "gives_up": self.gives_up,
            "warnings": self.warnings,
        }


def kvm_clidr(ctr: int, tag_cache: bool = False) -> int:
    """The CLIDR_EL1 KVM gives a fresh vCPU whose VM has CTR_EL0 ``ctr`` (``reset_clidr()`` in
    ``arch/arm64/kvm/sys_regs.c``): with IDC, no LoUU/LoUIS and one unified level as LoC (L2
    when an L1 I-cache is needed, i.e. without DIC); without IDC, an L1 data cache that is
    LoUU, LoUIS and LoC; an L1 I-cache unless DIC; a tag cache at LoC for an MTE VM.  It is
    what a VM on a host with the baseline's CTR_EL0 sees, and every host accepts it: if the
    baseline keeps IDC every host has IDC (any CLIDR passes), else it does not imply IDC."""
    table = load_table()
    field_of = table.register("CLIDR_EL1").field
    idc, dic = (table.field(f"CTR_EL0.{n}").extract(ctr) for n in ("IDC", "DIC"))
    inst, data, unified = 1, 2, 4  # CLIDR_EL1.Ctype<n> encodings
    if idc:
        loc = 1 if dic else 2
        clidr = field_of(f"Ctype{loc}").insert(0, unified)
    else:
        loc = 1
        clidr = field_of("Ctype1").insert(0, data)
        clidr = field_of("LoUU").insert(clidr, 1)
        clidr = field_of("LoUIS").insert(clidr, 1)
    if not dic:
        clidr |= inst  # Ctype1: I-cache, or separate I and D (3) on top of a data cache
    clidr = field_of("LoC").insert(clidr, loc)
    if tag_cache:
        clidr |= 2 << (field_of("Ttypen").shift + 2 * (loc - 1))
    return clidr


def _meet(f: Field, limits: list[int]) -> int:
    ords = [f.ordinal(v) for v in limits]
    if f.policy == LOWER:
        return limits[ords.index(min(ords))]
    if f.policy == HIGHER:
        return limits[ords.index(max(ords))]
    if f.policy == HIGHER_OR_ZERO:
        return 0 if 0 in limits else max(limits)
    if f.policy == EXACT:
        return limits[0] if len(set(limits)) == 1 else (f.safe or 0)
    raise AssertionError(f.policy)


def field_value(f: Field, views: list[HostView], names: list[str], reg: str) -> tuple[int | None, dict[str, int]]:
    """The baseline value of one field, or None with the hosts' values when impossible."""
    values = [f.extract(v.registers[reg].limit) for v in views]
    limits = dict(zip(names, values))
    fixed = {x for v, x in zip(views, values) if f not in v.registers[reg].checked}
    if len(fixed) > 1:
        return None, limits
    if fixed:
        value = fixed.pop()
    else:
        value = _meet(f, values)
    for v in views:
        rv = v.registers[reg]
        if f in rv.checked and not field_accepts(f, value, f.extract(rv.limit)):
            return None, limits
        if f in rv.checked and refusal(f, value, v.snapshot):
            return None, limits
    return value, limits


@dataclass
class Pool:
    """The distinct snapshots of a pool, their views for the common vCPU features, and who is who."""

    hosts: list[HostSnapshot]
    snaps: list[HostSnapshot]
    members: list[list[str]]  # per distinct snapshot: the host names sharing it, sorted
    features: frozenset[str]
    views: list[HostView]

    @property
    def names(self) -> list[str]:  # not view.snapshot.host: views are shared by equal contents
        return [m[0] for m in self.members]


def pool_of(hosts: list[HostSnapshot]) -> Pool:
    """Group identical snapshots: first by shared register maps (a content-addressed store hands
    out one body per fingerprint), then by content; then sort the groups by their first host name
    (a fingerprint costs more than the rest of a small pool's baseline), so nothing downstream sees
    the order the hosts were given in."""
    by_body: dict[int, int] = {}
    by_content: dict[tuple, int] = {}
    snaps: list[HostSnapshot] = []
    members: list[list[str]] = []
    for h in hosts:
        i = by_body.get(id(h.registers))
        if i is None:
            i = by_content.get(h.content_key)
            if i is None:
                i = by_content[h.content_key] = len(snaps)
                snaps.append(h)
                members.append([])
            by_body[id(h.registers)] = i
        members[i].append(h.host)
    members = [sorted(m) for m in members]
    firsts = [m[0] for m in members]
    tied = len(set(firsts)) < len(firsts)  # one name for two contents: let the fingerprint decide
    order = sorted(range(len(snaps)), key=lambda i: (firsts[i], snaps[i].fingerprint if tied else ""))
    snaps, members = [snaps[i] for i in order], [members[i] for i in order]
    features = frozenset.intersection(*(s.vcpu_features for s in snaps))
    return Pool(hosts, snaps, members, features, [host_view(s, features) for s in snaps])


def _encoding_order(name: str) -> tuple[int, ...]:
    reg = load_table().get(name)
    return reg.encoding if reg else (9, 9, 9, 9, 9)


def _most_common(values: list[int]) -> int:
    """The most frequent value; ties go to the smallest (never to the first host given)."""
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))


def _impl_id(name: str, limits: list[int], pool: Pool, result: BaselineResult) -> int:
    """A differing implementation ID register on hosts that can all set it (see the module doc)."""
    if name != "REVIDR_EL1":
        return _most_common(limits)
    midrs = {v.registers["MIDR_EL1"].limit for v in pool.views if "MIDR_EL1" in v.registers}
    revidr = ~0
    for limit in limits:
        revidr &= limit
    if len(midrs) == 1 or not any(limits):
        return revidr
    result.warnings.append("REVIDR_EL1: the hosts' MIDR_EL1 values differ, so no erratum fix is claimed (0)")
    return 0


def _fixed_register(name: str, pool: Pool, pending: list[str], result: BaselineResult) -> int | None:
    """A register not compared field by field: equal everywhere, or a writable implementation ID
    (``_impl_id``); None when it waits in ``pending`` (AArch32, CLIDR) or conflicts."""
    reg = load_table().get(name)
    views = pool.views
    limits = [v.registers[name].limit for v in views]
    kinds = {v.registers[name].kind for v in views}
    settable_id = reg is not None and kinds == {IMPL_ID} and all(v.writable_impl_id_regs for v in views)
    if settable_id and name == "REVIDR_EL1":  # even one shared value claims nothing across MIDRs
        return _impl_id(name, limits, pool, result)
    if len(set(limits)) == 1:
        return limits[0]
    if settable_id:
        return _impl_id(name, limits, pool, result)
    if reg is not None and (reg.aarch32 or kinds == {CLIDR}):
        pending.append(name)
    else:
        reason = "differs and cannot be changed on every host"
        if kinds == {IMPL_ID}:
            reason += " (implementation ID registers are writable only with writable_impl_id_regs)"
        result.conflicts.append(
            {"register": name, "field": None,
             "hosts": {h: f"0x{lim:016x}" for h, lim in zip(pool.names, limits)},
             "reason": reason}
        )
    return None


def _met_register(name: str, pool: Pool, result: BaselineResult) -> int:
    """A register every host checks by policy: each field's meet (conflicts recorded)."""
    reg = load_table().register(name)
    value = 0
    for f in reg.fields:
        fv, per_host = field_value(f, pool.views, pool.names, name)
        if fv is None:
            result.conflicts.append(
                {"register": name, "field": f.name, "hosts": per_host, "reason": "no value every host accepts"}
            )
            continue
        value = f.insert(value, fv)
    # bits outside fields must be equal everywhere (they are: RES0/RES1 from the host table;
    # should they differ, the smallest keeps the choice order-free and _verify reports it)
    return value | min(v.registers[name].limit for v in pool.views) & ~sum(f.mask for f in reg.fields)


def _registers(pool: Pool, result: BaselineResult) -> tuple[dict[str, int], list[str]]:
    """Per register common to all hosts, its baseline value; and the registers left pending
    (AArch32 ID registers and CLIDR_EL1 that differ: decided once EL0/EL1 and CTR_EL0 are)."""
    names = set.intersection(*(set(s.registers) for s in pool.snaps))
    for missing in sorted(set.union(*(set(s.registers) for s in pool.snaps)) - names):
        result.warnings.append(f"{missing}: not known on every host; left out of the baseline")
    regs: dict[str, int] = {}
    pending: list[str] = []
    for name in sorted(names, key=_encoding_order):
        reg = load_table().get(name)
        if reg is not None and all(v.registers[name].kind == GENERIC for v in pool.views):
            regs[name] = _met_register(name, pool, result)
            continue
        value = _fixed_register(name, pool, pending, result)
        if value is not None:
            regs[name] = value
    return regs, pending


def _decide_aarch32(regs: dict[str, int], pending: list[str], pool: Pool, result: BaselineResult) -> None:
    """Without AArch32 at EL0 and EL1 the AArch32 ID registers are left out; with it, differing
    ones are a conflict."""
    table = load_table()
    pfr0 = regs.get("ID_AA64PFR0_EL1", 0)
    no_aarch32 = all(table.field(f"ID_AA64PFR0_EL1.{el}").extract(pfr0) < 2 for el in ("EL0", "EL1"))
    for name in [n for n in regs if (r := table.get(n)) is not None and r.aarch32] if no_aarch32 else []:
        del regs[name]
    for name in pending:
        if table.register(name).aarch32 and not no_aarch32:
            result.conflicts.append(
                {"register": name, "field": None, "reason": "AArch32 ID registers differ while AArch32 stays enabled",
                 "hosts": {h: f"0x{v.registers[name].limit:016x}" for h, v in zip(pool.names, pool.views)}}
            )


def _decide_clidr(regs: dict[str, int], pending: list[str], pool: Pool, result: BaselineResult) -> None:
    """A differing CLIDR_EL1: KVM's own value for the baseline's CTR_EL0 (``kvm_clidr``, with a tag
    cache when every host's has one), or the one value a kernel without writable ID registers
    fixes; a conflict when a host refuses it (KVM checks it against the host's CTR_EL0)."""
    if "CLIDR_EL1" not in pending:
        return
    limits = {name: v.registers["CLIDR_EL1"].limit for name, v in zip(pool.names, pool.views)}
    fixed = {v.registers["CLIDR_EL1"].limit for v in pool.views if v.snapshot.writable_masks is None}
    tag_cache = all(load_table().field("CLIDR_EL1.Ttypen").extract(lim) for lim in limits.values())
    candidate = min(fixed) if fixed else kvm_clidr(regs.get("CTR_EL0", 0), tag_cache)
    refused = [v for v in pool.views
               if check_register("CLIDR_EL1", candidate, v, v.snapshot.registers.get("CTR_EL0", 0))]
    if refused:
        result.conflicts.append({"register": "CLIDR_EL1", "field": None,
                                 "hosts": {h: f"0x{lim:016x}" for h, lim in limits.items()},
                                 "reason": f"no CLIDR_EL1 every host accepts (tried 0x{candidate:016x})"})
        return
    regs["CLIDR_EL1"] = candidate


def _verify(definition: CpuDefinition, pool: Pool, result: BaselineResult) -> None:
    """A rule the field-wise meet missed: report, never hand the definition out."""
    for snap in pool.snaps:
        verdict = check(definition, snap)
        for b in verdict.blockers:
            result.conflicts.append({"register": b.register, "field": b.field, "hosts": {snap.host: b.host},
                                     "reason": b.reason})


def account_gives_up(regs: dict[str, int], pool: Pool, result: BaselineResult) -> None:
    """Per host: the properties the baseline lowers (only registers that differ are looked at)."""
    props = properties()
    for view, members in zip(pool.views, pool.members):
        limits = {name: rv.limit for name, rv in view.registers.items()}
        differ = {name for name, value in regs.items() if limits.get(name) != value}
        lost = []
        for prop in props:
            regs_of = {f.register for f in prop.fields}
            if not regs_of & differ or not all(r in regs and r in limits for r in regs_of):
                continue
            mine, ours = prop.extract(limits), prop.extract(regs)
            if mine != ours:
                lost.append(f"{prop.name}: {prop.format(mine)} -> {prop.format(ours)}")
        for member in members:
            result.gives_up[member] = lost
    result.gives_up = dict(sorted(result.gives_up.items()))


def baseline(hosts: Iterable[HostSnapshot]) -> BaselineResult:
    hosts = list(hosts)
    if not hosts:
        raise InputError("baseline: no hosts given")
    pool = pool_of(hosts)
    result = BaselineResult(None)
    regs, pending = _registers(pool, result)
    _decide_aarch32(regs, pending, pool, result)
    _decide_clidr(regs, pending, pool, result)
    if result.conflicts:
        return result
    first_names = heapq.nsmallest(50, (h.host for h in hosts))
    definition = CpuDefinition(
        regs, pool.features, name="baseline", provenance={"baseline_of": first_names, "hosts": len(hosts)}
    )
    _verify(definition, pool, result)
    if result.conflicts:
        return result
    result.definition = definition
    account_gives_up(regs, pool, result)
    return result
