"""``fix_model(spec, host)``: the smallest ``MODEL,PROP=VAL,...`` that is usable on a host.

Works at the model's level, so the answer uses the names people write in a flavor: a blocked
gated field KVM does not let userspace write (pointer auth, PFR0.SVE) or a vCPU feature the host lacks turns its composite off;
AArch32 ID registers of a host without AArch32 EL0 become ``feat_EL0=aarch64`` (the model then
carries no AArch32 registers); any other blocked field takes the highest value the host
accepts, under its property name.  Each candidate is verified by realizing and checking; the
set is then pruned to a minimal one.

This module uses the engine (layer 4) lazily: a model-level convenience over ``check``.
"""

from __future__ import annotations

from arm_cpu_filter.engine.check import check, supported_raws
from arm_cpu_filter.engine.hostview import AARCH32_RAZ, host_view
from arm_cpu_filter.models.realization import composite_masks, parse_spec, realize_model
from arm_cpu_filter.models.registry import composite_spec
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


def _candidates(definition: CpuDefinition, host: HostSnapshot) -> dict[str, str] | None:
    """Overrides that lift the current blockers (None: some blocker cannot be lifted)."""

    props = properties()
    view = host_view(host, definition.vcpu_features)
    out: dict[str, str] = {}
    for b in check(definition, host).blockers:
        if b.property == "vcpu_features":
            comp = _composite_of("", None, b.field)
            if comp is None:
                return None
            out[comp] = "off"
            continue
        rv = view.registers.get(b.register)
        if rv is None or b.field is None or rv.register is None:
            return None
        if rv.kind == AARCH32_RAZ:
            out["feat_EL0"] = "aarch64"
            continue
        f = rv.register.field(b.field)
        comp = _composite_of(b.register, b.field)
        if comp is not None and f not in rv.checked:
            out[comp] = "off"  # a gated field KVM does not let userspace change
            continue
        if f not in rv.checked:
            return None  # not writable on this host (or an implementation ID): no override helps
        choices = supported_raws(f, rv, view)
        want = f.ordinal(f.extract(definition.registers[b.register]))
        below = [c for c in choices if f.ordinal(c) <= want]
        value = below[-1] if below else choices[0]
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


def fix_model(spec: str, host: HostSnapshot) -> str | None:
    """``spec`` plus the fewest overrides that make it usable on ``host``; ``spec`` itself if it
    already is; None if no override set through writable fields and composites exists."""

    name, given = parse_spec(spec)
    extra: dict[str, str] = {}
    for _ in range(_ROUNDS):
        definition = realize_model(name, {**given, **extra})
        if check(definition, host).usable:
            break
        more = _candidates(definition, host)
        if not more or all(extra.get(k) == v for k, v in more.items()):
            return None
        extra.update(more)
    else:
        return None
    for key in list(extra):  # prune: drop every override the verdict does not need
        trial = {k: v for k, v in extra.items() if k != key}
        try:
            if check(realize_model(name, {**given, **trial}), host).usable:
                extra = trial
        except ValueError:
            continue
    return ",".join([spec.strip()] + [f"{k}={v}" for k, v in extra.items()])
