"""``complete(spec, hosts)``: the overrides that make a named model usable on every host of a pool.

One host is a pool of one, so ``check``'s fix and ``pool-model``'s site model are this one
computation.  Two kinds of override, tried in this order per blocker:

- *lowered*: a writable field takes the highest value at or below the model's that every host
  accepts; a gated field KVM does not let userspace write, or a vCPU feature some host lacks,
  turns its composite off; AArch32 ID registers of a host without AArch32 EL0, or an exception
  level above the host's AArch64-only, become ``aarch32=off``;
- *completed*: a field some host does not let userspace write (BRPs, CWG/ERG, ASIDBITS, an
  implementation ID register...) takes the pool's value -- the value of the hosts that fix it,
  which the other hosts must accept (``baseline``'s field rule).  Generic models leave such
  implementation-defined values open; a completion fixes them in the guest ABI.

Each candidate set is verified by realizing and checking.  The answer is then pruned until no
override can be dropped: a full fix stays usable without any of them; a partial fix (some
blocker cannot be lifted) gets more blockers without any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from arm_cpu_filter.engine.baseline import BaselineResult, account_gives_up, field_value, pool_of
from arm_cpu_filter.engine.check import Blocker, CheckResult, accepts, check, supported_raws
from arm_cpu_filter.engine.fix import nearest_accepted
from arm_cpu_filter.engine.hostview import AARCH32_RAZ, CLIDR, GENERIC, IMPL_ID, HostView, host_view
from arm_cpu_filter.engine.supported import cap_fits
from arm_cpu_filter.errors import ArmCpuFilterError, InputError
from arm_cpu_filter.models.realization import composite_masks, parse_spec, realize_model
from arm_cpu_filter.models.registry import capped_composites, composite_spec
from arm_cpu_filter.properties import IDENT, Property, properties, raw_name
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.table import Field, load_table

_ROUNDS = 4


class FixedSpec:
    """The fixed CPU of a fix: the caller's ``given`` overrides of ``model`` plus the fix's
    ``changes`` (the subclass holds the three; ``complete`` and ``fix_model`` share this)."""

    model: str
    given: Mapping[str, str]
    changes: Mapping[str, str]

    @property
    def overrides(self) -> dict[str, str]:
        """Every override of the fixed CPU: the given ones (replaced values in place), then the new."""
        return {**self.given, **self.changes}

    @property
    def spec(self) -> str:
        """``MODEL,PROP=VAL,...`` of the fixed CPU (each property once, so ``realize`` takes it)."""
        return ",".join([self.model, *(f"{k}={v}" for k, v in self.overrides.items())])


@dataclass(frozen=True)
class Completion(FixedSpec):
    """``complete``'s answer for a model over the pool ``hosts``.

    ``blocked`` (host -> blockers) is empty iff the fixed CPU is usable on every host; otherwise
    it is what still blocks after every override that helped.  ``conflicts`` name the fields no
    value of which every host accepts, with each host's value.
    """

    model: str
    given: Mapping[str, str]
    hosts: tuple[str, ...]
    #: writable fields lowered and composites turned off, in the order found
    lowered: Mapping[str, str]
    #: implementation-defined values fixed to the pool's (fields some host does not let us write)
    completed: Mapping[str, str]
    blocked: Mapping[str, tuple[Blocker, ...]] = field(default_factory=dict)
    conflicts: tuple[dict[str, Any], ...] = ()

    @property
    def usable(self) -> bool:
        return not any(self.blocked.values())

    @property
    def changes(self) -> dict[str, str]:
        """The fix alone: properties it adds or whose given value it replaces."""
        return {**self.lowered, **self.completed}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "hosts": list(self.hosts),
            "usable": self.usable,
            "lowered": dict(self.lowered),
            "completed": dict(self.completed),
            "spec": self.spec,
            "remaining": {h: [b.to_dict() for b in bs] for h, bs in self.blocked.items() if bs},
            "conflicts": list(self.conflicts),
        }


@dataclass
class _Round:
    """One round's new candidates."""

    lowered: dict[str, str] = field(default_factory=dict)
    completed: dict[str, str] = field(default_factory=dict)
    conflicts: dict[tuple[str, str | None], dict[str, Any]] = field(default_factory=dict)


def _composite_of(register: str, field_name: str | None, feature: str | None = None) -> str | None:
    spec = composite_spec()[1]
    if feature is not None:
        return next((c for c, feats in spec.items() if feature in feats), None)
    if field_name is None:
        return None
    mask = load_table().register(register).field(field_name).mask
    return next((c for c, regs in composite_masks().items() if regs.get(register, 0) & mask), None)


def _capped_of(qualname: str) -> str | None:
    """The capped composite (``aarch32``) that switches field ``qualname``, if any."""
    return next((c for c, capped in capped_composites().items() if qualname in capped.fields), None)


def _sets_aarch32_register(key: str) -> bool:
    """Whether override ``key`` (a property) sets a field of an AArch32 ID register."""
    try:
        prop = properties().get(key)
    except ArmCpuFilterError:  # a composite, not a property
        return False
    return any(load_table().register(f.register).aarch32 for f in prop.fields)


def _named(f: Field, value: int, definition: CpuDefinition) -> tuple[str, str]:
    """(property, value text) that sets field ``f`` to ``value``; a fractional property keeps
    its other half as the definition has it."""
    prop = properties().by_field.get(f.qualname)
    if prop is not None and len(prop.fields) == 1:
        return prop.name, prop.format((value,))
    if prop is not None:
        regs = dict(definition.registers)
        regs[f.register] = f.insert(regs[f.register], value)
        return prop.name, prop.read(regs)
    return raw_name(f.register, f.name), str(value)


def _whole_register_props(register: str) -> list[Property]:
    return [p for p in properties() if p.kind == IDENT and all(f.register == register for f in p.fields)]


class _Pool:
    """The distinct snapshots of the hosts (``baseline``'s grouping) and their views for the VM."""

    def __init__(self, hosts: list[HostSnapshot]) -> None:
        grouped = pool_of(hosts)
        self.snaps = grouped.snaps
        self.members = grouped.members
        self.names = [h.host for h in hosts]

    def views(self, features: frozenset[str]) -> list[HostView]:
        return [host_view(s, features) for s in self.snaps]

    def hosts_of(self, per_snapshot: Mapping[str, Any]) -> dict[str, Any]:
        """Per representative host name -> per member host name."""
        return {m: v for s, members in zip(self.snaps, self.members) for m in members
                for h, v in per_snapshot.items() if h == s.host}


def _conflict(out: _Round, pool: _Pool, f_reg: str, f_name: str | None, prop: str | None,
              values: Mapping[str, str], reason: str) -> None:
    out.conflicts[(f_reg, f_name)] = {"register": f_reg, "field": f_name, "property": prop,
                                      "hosts": pool.hosts_of(values), "reason": reason}


def _lower(f: Field, reg: str, views: list[HostView], wanted: int) -> int | None:
    """The highest value at or below ``wanted`` every host accepts (None: no common value)."""
    common: set[int] | None = None
    for v in views:
        raws = set(supported_raws(f, v.registers[reg], v))
        common = raws if common is None else common & raws
    if not common:
        return None
    return nearest_accepted(f, sorted(common, key=f.ordinal), wanted)


def _impl_id_value(f: Field, reg: str, views: list[HostView], names: list[str]) -> tuple[int | None, dict[str, int]]:
    """An implementation ID field: the value of the hosts that cannot set it, if they agree
    (a host with writable implementation IDs takes any)."""
    limits = {n: f.extract(v.registers[reg].limit) for n, v in zip(names, views)}
    fixed = {f.extract(v.registers[reg].limit) for v in views if not v.writable_impl_id_regs}
    return (fixed.pop() if len(fixed) == 1 else None), limits


def _complete_whole(b: Blocker, definition: CpuDefinition, pool: _Pool, views: list[HostView], out: _Round) -> bool:
    """A register blocked as a whole (REVIDR_EL1, AIDR_EL1): its identification properties take
    the value of the hosts that cannot set it."""
    props = _whole_register_props(b.register)
    rvs = [v.registers.get(b.register) for v in views]
    if not props or any(rv is None or rv.kind != IMPL_ID for rv in rvs):
        return False
    names = [s.host for s in pool.snaps]
    for prop in props:
        f = prop.field
        value, limits = _impl_id_value(f, b.register, views, names)
        if value is None:
            _conflict(out, pool, b.register, None, prop.name, {n: f"0x{x:x}" for n, x in limits.items()},
                      "implementation ID differs between hosts that cannot set it")
            return False
        if value != f.extract(definition.registers.get(b.register, 0)):
            out.completed[prop.name] = prop.format((value,))
    return True


def _candidate(b: Blocker, definition: CpuDefinition, pool: _Pool, views: list[HostView], view: HostView,
               complete_ids: bool, out: _Round) -> bool:
    """Record the override that lifts blocker ``b`` (seen on ``view``); False when none can."""
    if b.property == "vcpu_features":
        comp = _composite_of("", None, b.field)
        if comp is not None:
            out.lowered[comp] = "off"
        return comp is not None
    rv = view.registers.get(b.register)
    if rv is None or rv.register is None:
        return False
    if rv.kind == AARCH32_RAZ:
        out.lowered["aarch32"] = "off"  # the host has no AArch32: the model carries no AArch32 registers
        return True
    if b.field is None:
        return complete_ids and _complete_whole(b, definition, pool, views, out)
    f = rv.register.field(b.field)
    capped = _capped_of(f.qualname)
    if capped is not None and all(cap_fits(capped, definition.registers, v) for v in views):
        out.lowered[capped] = "off"  # e.g. an exception level above the host's AArch64-only
        return True
    comp = _composite_of(b.register, b.field)
    if comp is not None and f not in rv.checked:
        out.lowered[comp] = "off"  # a gated field KVM does not let userspace change
        return True
    wanted = f.extract(definition.registers[b.register])
    rvs = [v.registers.get(b.register) for v in views]
    if any(r is None or r.kind == CLIDR for r in rvs):
        return False
    names = [s.host for s in pool.snaps]
    prop_name = _named(f, wanted, definition)[0]
    if all(r.kind == GENERIC and f in r.checked for r in rvs):
        value = _lower(f, b.register, views, wanted)
        if value is None:
            _conflict(out, pool, b.register, f.name, prop_name,
                      {n: str(f.extract(r.limit)) for n, r in zip(names, rvs)}, "no value every host accepts")
            return False
        key, text = _named(f, value, definition)
        out.lowered[key] = text
        return True
    if not complete_ids:
        return False
    if all(r.kind == IMPL_ID for r in rvs):
        value, limits = _impl_id_value(f, b.register, views, names)
    else:
        value, limits = field_value(f, views, names, b.register)
    if value is None:
        _conflict(out, pool, b.register, f.name, prop_name, {n: str(x) for n, x in limits.items()},
                  "not writable on every host, and no value every host accepts")
        return False
    key, text = _named(f, value, definition)
    out.completed[key] = text
    return True


def _candidates(definition: CpuDefinition, pool: _Pool, verdicts: list[CheckResult], complete_ids: bool) -> _Round:
    out = _Round()
    views = pool.views(definition.vcpu_features)
    seen: set[tuple[str, str | None]] = set()
    for view, verdict in zip(views, verdicts):
        for b in verdict.blockers:
            if (b.register, b.field) not in seen:
                seen.add((b.register, b.field))
                _candidate(b, definition, pool, views, view, complete_ids, out)
    return out


def _blockers(name: str, overrides: Mapping[str, str], pool: _Pool) -> dict[str, tuple[Blocker, ...]] | None:
    """Per representative host, the blockers of the model with ``overrides`` (None: it does not realize)."""
    try:
        definition = realize_model(name, overrides)
    except InputError:
        return None
    return {s.host: check(definition, s).blockers for s in pool.snaps}


def _pruned(name: str, given: dict[str, str], extra: dict[str, str], pool: _Pool) -> dict[str, str]:
    """``extra`` minus every override that lifts no blocker: for a full fix, every one whose
    removal keeps the model usable; for a partial one, every one whose removal adds no blocker."""
    def count(overrides: dict[str, str]) -> int | None:
        found = _blockers(name, {**given, **overrides}, pool)
        return None if found is None else sum(len(bs) for bs in found.values())

    current = count(extra)
    for key in list(extra):
        trial = {k: v for k, v in extra.items() if k != key}
        fewer = count(trial)
        if fewer is not None and current is not None and fewer <= current:
            extra, current = trial, fewer
    return extra


def _answer(name: str, given: dict[str, str], pool: _Pool, lowered: dict[str, str], completed: dict[str, str],
            conflicts: dict[tuple[str, str | None], dict[str, Any]]) -> Completion:
    extra = _pruned(name, given, {**lowered, **completed}, pool)
    lowered = {k: v for k, v in extra.items() if k in lowered and given.get(k) != v}
    completed = {k: v for k, v in extra.items() if k in completed and given.get(k) != v}
    found = _blockers(name, {**given, **lowered, **completed}, pool) or {}
    blocked = pool.hosts_of(found)
    if not any(blocked.values()):
        conflicts = {}
    return Completion(name, given, tuple(pool.names), lowered, completed, blocked, tuple(conflicts.values()))


def complete(spec: str, hosts: list[HostSnapshot], *, complete_ids: bool = True) -> Completion:
    """The overrides that make ``spec`` usable on every host of ``hosts``: writable fields
    lowered, then (``complete_ids``) implementation-defined values completed with the pool's;
    a partial answer, with what still blocks, when some blocker cannot be lifted."""
    if not hosts:
        raise InputError("completion: no hosts given")
    name, given = parse_spec(spec)
    pool = _Pool(hosts)
    lowered: dict[str, str] = {}
    completed: dict[str, str] = {}
    conflicts: dict[tuple[str, str | None], dict[str, Any]] = {}
    for _ in range(_ROUNDS):
        definition = realize_model(name, {**given, **lowered, **completed})
        if all(accepts(definition, s) for s in pool.snaps):
            break
        found = _candidates(definition, pool, [check(definition, s) for s in pool.snaps], complete_ids)
        conflicts.update(found.conflicts)
        new = {**found.lowered, **found.completed}
        if not new or all({**lowered, **completed}.get(k) == v for k, v in new.items()):
            break
        for key, value in found.lowered.items():
            completed.pop(key, None)
            lowered[key] = value
        for key, value in found.completed.items():
            lowered.pop(key, None)
            completed[key] = value
        if lowered.get("aarch32") == "off":  # the model then has no AArch32 registers to set
            for overrides in (lowered, completed):
                for key in [k for k in overrides if _sets_aarch32_register(k)]:
                    del overrides[key]
    return _answer(name, given, pool, lowered, completed, conflicts)


def gives_up(definition: CpuDefinition, hosts: list[HostSnapshot]) -> dict[str, list[str]]:
    """Per host: the properties ``definition`` shows lower (or otherwise) than the host offers,
    as ``"prop: host value -> definition value"`` (``baseline``'s account, for a site model)."""
    result = BaselineResult(None)
    account_gives_up(dict(definition.registers), pool_of(hosts), result)
    return result.gives_up
