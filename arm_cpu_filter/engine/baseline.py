"""``baseline(hosts)``: the richest CPU definition every given host accepts.

Fields are independent under KVM's rule, so the baseline is computed field by field over
the distinct snapshots (a fleet has few): a field every host lets the VM lower takes the
policy's meet (LOWER: minimum, HIGHER: maximum, HIGHER_OR_ZERO: maximum unless some host
offers 0, EXACT: the common value or the kernel's safe value); a field some host cannot
change must be the same on all of those hosts and acceptable to the others.  When no
AArch32 is left (EL0 and EL1 AArch64-only), the AArch32 ID registers are left out: the
guest does not use them and KVM exposes them differently on AArch64-only hosts.
"""

from __future__ import annotations

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


def _field_value(f: Field, views: list[HostView], names: list[str], reg: str) -> tuple[int | None, dict[str, int]]:
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


def baseline(hosts: Iterable[HostSnapshot]) -> BaselineResult:
    hosts = list(hosts)
    if not hosts:
        raise InputError("baseline: no hosts given")
    # group identical snapshots: first by shared register maps (a content-addressed store hands
    # out one body per fingerprint), then by content
    by_body: dict[int, tuple] = {}
    distinct: dict[tuple, HostSnapshot] = {}
    members: dict[tuple, list[str]] = {}
    for h in hosts:
        key = by_body.get(id(h.registers))
        if key is None:
            key = by_body[id(h.registers)] = h.content_key
        if key not in distinct:
            distinct[key] = h
            members[key] = []
        members[key].append(h.host)
    snaps = list(distinct.values())
    features = frozenset.intersection(*(s.vcpu_features for s in snaps))
    views = [host_view(s, features) for s in snaps]
    host_names = [s.host for s in snaps]  # not view.snapshot.host: views are shared by equal contents
    table = load_table()
    result = BaselineResult(None)
    names = set.intersection(*(set(s.registers) for s in snaps))
    for missing in sorted(set.union(*(set(s.registers) for s in snaps)) - names):
        result.warnings.append(f"{missing}: not known on every host; left out of the baseline")
    regs: dict[str, int] = {}
    for name in sorted(names, key=lambda n: table.get(n).encoding if table.get(n) else (9, 9, 9, 9, 9)):
        reg = table.get(name)
        kinds = {v.registers[name].kind for v in views}
        limits = [v.registers[name].limit for v in views]
        if reg is None or not kinds <= {GENERIC} - {CLIDR}:
            if len(set(limits)) == 1:
                regs[name] = limits[0]
            elif reg is not None and kinds == {IMPL_ID} and all(v.writable_impl_id_regs for v in views):
                regs[name] = Counter(limits).most_common(1)[0][0]
            elif reg is not None and reg.aarch32:
                regs[name] = -1  # decided below, with EL0/EL1
            elif reg is not None and kinds == {CLIDR}:
                regs[name] = -2  # decided below, with CTR_EL0
            else:
                result.conflicts.append(
                    {"register": name, "field": None,
                     "hosts": {h: f"0x{lim:016x}" for h, lim in zip(host_names, limits)},
                     "reason": "differs and cannot be changed on every host"}
                )
            continue
        value = 0
        for f in reg.fields:
            fv, per_host = _field_value(f, views, host_names, name)
            if fv is None:
                result.conflicts.append(
                    {"register": name, "field": f.name, "hosts": per_host,
                     "reason": "no value every host accepts"}
                )
                continue
            value = f.insert(value, fv)
        # bits outside fields must be equal everywhere (they are: RES0/RES1 from the host table)
        value |= limits[0] & ~sum(f.mask for f in reg.fields)
        regs[name] = value
    pfr0 = regs.get("ID_AA64PFR0_EL1", 0)
    no_aarch32 = all(table.field(f"ID_AA64PFR0_EL1.{el}").extract(pfr0) < 2 for el in ("EL0", "EL1"))
    for name, value in list(regs.items()):
        reg = table.get(name)
        if reg is not None and reg.aarch32 and no_aarch32:
            del regs[name]
        elif value == -1:
            del regs[name]
            result.conflicts.append(
                {"register": name, "field": None, "reason": "AArch32 ID registers differ while AArch32 stays enabled",
                 "hosts": {h: f"0x{v.registers[name].limit:016x}" for h, v in zip(host_names, views)}}
            )
    if regs.get("CLIDR_EL1") == -2:
        ctr = regs.get("CTR_EL0", 0)
        for v in views:
            candidate = v.registers["CLIDR_EL1"].limit
            if all(not check_register("CLIDR_EL1", candidate, w, ctr) for w in views):
                regs["CLIDR_EL1"] = candidate
                break
        else:
            del regs["CLIDR_EL1"]
            result.conflicts.append({"register": "CLIDR_EL1", "field": None, "hosts": {},
                                     "reason": "no host's CLIDR_EL1 is valid on every host"})
    if result.conflicts:
        return result
    names_list = sorted(h.host for h in hosts)
    definition = CpuDefinition(
        regs, features, name="baseline", provenance={"baseline_of": names_list[:50], "hosts": len(hosts)}
    )
    for snap in snaps:
        verdict = check(definition, snap)
        if not verdict.usable:  # a rule the field-wise meet missed: report, never hand it out
            for b in verdict.blockers:
                result.conflicts.append({"register": b.register, "field": b.field, "hosts": {snap.host: b.host},
                                         "reason": b.reason})
    if result.conflicts:
        return result
    result.definition = definition
    props = properties()
    for snap, view in zip(snaps, views):
        lost = []
        for prop in props:
            if not all(f.register in regs and f.register in view.registers for f in prop.fields):
                continue
            mine = prop.extract({r: view.registers[r].limit for r in {f.register for f in prop.fields}})
            ours = prop.extract(regs)
            if mine != ours:
                lost.append(f"{prop.name}: {prop.format(mine)} -> {prop.format(ours)}")
        for member in members[snap.content_key]:
            result.gives_up[member] = lost
    return result
