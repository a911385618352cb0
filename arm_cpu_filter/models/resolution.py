"""``resolve(name)``: every property of a realized model, with the model in the chain that set
it (or ``default`` for the table's not-implemented value, ``kvm`` for values KVM derives)."""

from __future__ import annotations

from arm_cpu_filter.models.realization import base, composite_values, realize_model
from arm_cpu_filter.models.registry import chain, composite_spec
from arm_cpu_filter.properties import RAW, properties


def resolve(name: str) -> list[dict[str, str]]:
    """Rows ``{property, value, set_by, source}`` for model ``name``, composites first."""
    definition = realize_model(name)
    models = {m.name: m for m in chain(name)}
    b = base(name)
    rows = []
    values = composite_values(definition.registers, definition.vcpu_features)
    for comp in composite_spec()[1]:
        value, by = b.composites.get(comp, (None, None))
        rows.append({"property": comp, "value": values[comp], "set_by": by or "default",
                     "source": models[by].source_text(comp) if by else "on iff the model has the fields"})
    for prop in properties():
        if prop.kind == RAW or any(f.register not in definition.registers for f in prop.fields):
            continue
        by, via = None, None
        for f in prop.fields:
            if f.qualname in b.setters:
                by, via = b.setters[f.qualname]
        if by is None and all(f.register == "CLIDR_EL1" for f in prop.fields):
            by, source = "kvm", "derived from CTR_EL0 as KVM fabricates CLIDR_EL1"
        elif by is None:
            source = "table default (not implemented)"
        else:
            source = models[by].source_text(via)
        rows.append({"property": prop.name, "value": prop.read(definition.registers),
                     "set_by": by or "default", "source": source})
    return rows
