"""``fix_model(spec, host)``: the overrides a ``MODEL[,PROP=VAL...]`` needs to be usable on a host.

Works at the model's level, so the answer uses the names people write in a flavor: a blocked
gated field KVM does not let userspace write (pointer auth, PFR0.SVE) or a vCPU feature the host
lacks turns its composite off; AArch32 ID registers of a host without AArch32 EL0, or an
exception level above the host's AArch64-only, become ``aarch32=off`` (the model then carries
no AArch32 registers); any other blocked field
takes the highest value the host accepts below the model's, under its property name.  Each
candidate set is verified by realizing and checking; a usable set is then pruned until no
override can be dropped (minimal, not necessarily the fewest possible).

It lives in the engine, not in ``models``, because it needs ``check`` (layer 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from arm_cpu_filter.engine.check import Blocker, CheckResult, accepts, check, supported_raws
from arm_cpu_filter.engine.fix import nearest_accepted
from arm_cpu_filter.engine.hostview import AARCH32_RAZ, host_view
from arm_cpu_filter.errors import InputError
from arm_cpu_filter.models.realization import composite_masks, parse_spec, realize_model
from arm_cpu_filter.models.registry import capped_composites, composite_spec
from arm_cpu_filter.properties import properties, raw_name
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.table import load_table

_ROUNDS = 4


def _composite_of(register: str, field: str | None, feature: str | None = None) -> str | None:
    spec = composite_spec()[1]
    if feature is not None:
        return next((c for c, feats in spec.items() if feature in feats), None)
    if field is None:
        return None
    mask = load_table().register(register).field(field).mask
    return next((c for c, regs in composite_masks().items() if regs.get(register, 0) & mask), None)


def _capped_of(qualname: str) -> str | None:
    """The capped composite (``aarch32``) that switches field ``qualname``, if any."""
    return next((c for c, capped in capped_composites().items() if qualname in capped.fields), None)


def _candidates(definition: CpuDefinition, host: HostSnapshot, verdict: CheckResult) -> dict[str, str] | None:
    """Overrides that lift ``verdict``'s blockers (None: some blocker cannot be lifted)."""

    props = properties()
    view = host_view(host, definition.vcpu_features)
    out: dict[str, str] = {}
    for b in verdict.blockers:
        if b.property == "vcpu_features":
            comp = _composite_of("", None, b.field)
            if comp is None:
                return None
            out[comp] = "off"
            continue
        rv = view.registers.get(b.register)
        if rv is None or b.field is None or rv.register is None:
            return None
        f = rv.register.field(b.field)
        capped = _capped_of(f.qualname)
        if capped is not None and capped_composites()[capped].cap not in supported_raws(f, rv, view):
            capped = None  # the cap does not fit either: the generic way below
        if rv.kind == AARCH32_RAZ or capped is not None:
            out[capped or "aarch32"] = "off"  # the host has no AArch32 (a level above AArch64-only)
            continue
        comp = _composite_of(b.register, b.field)
        if comp is not None and f not in rv.checked:
            out[comp] = "off"  # a gated field KVM does not let userspace change
            continue
        if f not in rv.checked:
            return None  # not writable on this host (or an implementation ID): no override helps
        value = nearest_accepted(f, supported_raws(f, rv, view), f.extract(definition.registers[b.register]))
        prop = props.by_field.get(f.qualname)
        if prop is not None and len(prop.fields) == 1:
            out[prop.name] = prop.format((value,))
        elif prop is not None:  # fractional: keep the other half as the model has it
            regs = dict(definition.registers)
            regs[b.register] = f.insert(regs[b.register], value)
            out[prop.name] = prop.read(regs)
        else:
            out[raw_name(b.register, f.name)] = str(value)
    return out


@dataclass(frozen=True)
class ModelFix:
    """``fix_model``'s answer: the model, the caller's overrides and what the fix adds.

    ``blocked`` is empty iff ``spec`` is usable on the host; otherwise no override set was
    found, and ``blocked`` lists what still blocks after every override that helped
    (``changes``), so ``check(realize(spec), host).blockers == blocked`` either way.
    """

    model: str
    given: Mapping[str, str]
    #: The fix alone: properties it adds or whose given value it replaces, in the order found.
    changes: Mapping[str, str]
    blocked: tuple[Blocker, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.blocked

    @property
    def overrides(self) -> dict[str, str]:
        """Every override of the fixed CPU: the given ones (replaced values in place), then the new."""
        return {**self.given, **self.changes}

    @property
    def spec(self) -> str:
        """``MODEL,PROP=VAL,...`` of the fixed CPU (each property once, so ``realize`` takes it)."""
        return ",".join([self.model, *(f"{k}={v}" for k, v in self.overrides.items())])


def fix_model(spec: str, host: HostSnapshot) -> ModelFix:
    """The overrides that make ``spec`` usable on ``host`` (``changes`` empty when it already
    is), or, when no set through writable fields and composites exists, what stays blocked."""

    name, given = parse_spec(spec)
    extra: dict[str, str] = {}
    for round_ in range(_ROUNDS):
        definition = realize_model(name, {**given, **extra})
        verdict = check(definition, host)
        if verdict.usable:
            return ModelFix(name, given, _pruned(name, given, extra, host))
        more = _candidates(definition, host, verdict) if round_ < _ROUNDS - 1 else None
        if not more or all(extra.get(k) == v for k, v in more.items()):
            return ModelFix(name, given, _changes(given, extra), verdict.blockers)
        extra.update(more)
    raise AssertionError("unreachable: the last round returns")


def _pruned(name: str, given: dict[str, str], extra: dict[str, str], host: HostSnapshot) -> dict[str, str]:
    """``extra`` minus every override the verdict does not need."""
    for key in list(extra):
        trial = {k: v for k, v in extra.items() if k != key}
        try:
            if accepts(realize_model(name, {**given, **trial}), host):
                extra = trial
        except InputError:  # e.g. a gated field override without its composite: keep the key
            continue
    return _changes(given, extra)


def _changes(given: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in extra.items() if given.get(k) != v}
