"""``fix(definition, host)``: the smallest set of property overrides that makes a blocked
definition usable on ``host`` -- or None when a blocker cannot be lifted by writable fields
(a non-writable field, an implementation ID register, a missing vCPU feature...)."""

from __future__ import annotations

from arm_cpu_filter.engine.check import CheckResult, accepts, check, supported_raws
from arm_cpu_filter.engine.hostview import host_view
from arm_cpu_filter.properties import properties, raw_name
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.table import Field, load_table


def nearest_accepted(f: Field, accepted: list[int], wanted: int) -> int:
    """The highest of ``accepted`` (raw values, lowest first) not above ``wanted`` in KVM's order,
    else the lowest: a fix keeps as much of what the definition asked for as the host takes."""
    below = [c for c in accepted if f.ordinal(c) <= f.ordinal(wanted)]
    return below[-1] if below else accepted[0]


def fix(definition: CpuDefinition, host: HostSnapshot, verdict: CheckResult | None = None) -> dict[str, str] | None:
    """Overrides (property -> value) to apply, {} when already usable, None when impossible.
    ``verdict``: ``check(definition, host)`` when the caller already has it (saves a check)."""
    verdict = verdict or check(definition, host)
    if verdict.usable:
        return {}
    table, props = load_table(), properties()
    view = host_view(host, definition.vcpu_features)
    regs = dict(definition.registers)
    touched: set[str] = set()
    for b in verdict.blockers:
        if not b.register or not b.field:
            return None
        f = table.register(b.register).field(b.field)
        rv = view.registers[b.register]
        choices = supported_raws(f, rv, view)
        if len(choices) <= 1 and choices[:1] != [f.extract(rv.limit)]:
            return None
        value = nearest_accepted(f, choices, f.extract(regs[b.register]))
        regs[b.register] = f.insert(regs[b.register], value)
        prop = props.by_field.get(f.qualname)
        touched.add(prop.name if prop else raw_name(b.register, f.name))
    fixed = CpuDefinition(regs, definition.vcpu_features)
    if not accepts(fixed, host):
        return None
    return {name: props.get(name).read(regs) for name in touched}
