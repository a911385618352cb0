"""Guest CPU XML: a named model with overrides as libvirt's ``<cpu mode='custom'>``, and back.

libvirt's ``<feature>`` is on/off, our properties have values, so one override becomes:
``PROP=off`` -> ``<feature policy='disable' name='PROP'/>``; ``PROP=on`` (booleans and the
composites sve/pauth/pmu) -> ``policy='require' name='PROP'``; any other value ->
``policy='require' name='PROP.VALUE'`` (libvirt's feature-name grammar allows '.';
property names never contain one, so the first '.' separates).  ``guest_cpu_spec`` reads
such an element back into ``MODEL,PROP=VAL,...``.
"""

from __future__ import annotations

from lxml import etree

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.libvirt.xmlsafe import parse
from arm_cpu_filter.models import realize
from arm_cpu_filter.models.registry import composite_spec
from arm_cpu_filter.properties import properties, raw_name
from arm_cpu_filter.snapshot import CpuDefinition
from arm_cpu_filter.table import load_table


def _spec(model_name: str, overrides: dict[str, str]) -> str:
    return ",".join([model_name, *(f"{k}={v}" for k, v in overrides.items())])


def overrides_of(model_name: str, definition: CpuDefinition) -> dict[str, str]:
    """The property overrides that turn ``model_name`` into ``definition`` (empty: none).

    Taken from the definition's provenance when it was realized from that model, else computed:
    composites whose vCPU features differ first, then every property whose fields differ."""
    prov = definition.provenance or {}
    if prov.get("model") == model_name and isinstance(prov.get("overrides"), dict):
        overrides = {str(k): str(v) for k, v in prov["overrides"].items()}
        if realize(_spec(model_name, overrides)).fingerprint == definition.fingerprint:
            return overrides
    base = realize(model_name)
    overrides = {}
    for comp, feats in composite_spec()[1].items():
        have, had = set(feats) <= definition.vcpu_features, set(feats) <= base.vcpu_features
        if have != had:
            overrides[comp] = "on" if have else "off"
    if overrides:
        base = realize(_spec(model_name, overrides))
    props = properties()
    for reg in sorted(set(definition.registers) | set(base.registers)):
        diff = definition.registers.get(reg, 0) ^ base.registers.get(reg, 0)
        if not diff:
            continue
        register = load_table().get(reg)
        for f in register.fields if register is not None else ():
            if not f.mask & diff:
                continue
            prop = props.by_field.get(f.qualname)
            name = prop.name if prop is not None else raw_name(reg, f.name)
            overrides.setdefault(name, props.get(name).read(definition.registers))
    spec = _spec(model_name, overrides)
    if realize(spec).fingerprint != definition.fingerprint:
        raise InputError(f"the definition is not model {model_name} with property overrides "
                         f"(closest: {spec}); give the model it was realized from")
    return overrides


def _feature(name: str, value: str) -> tuple[str, str]:
    low = value.lower()
    if low == "off":
        return "disable", name
    if low == "on":
        return "require", name
    return "require", f"{name}.{value}"


def guest_cpu_xml(model_name: str, definition: CpuDefinition) -> str:
    """``<cpu mode='custom' match='exact'>`` for ``model_name`` realized with overrides as
    ``definition`` (valid against libvirt's domain schema)."""
    cpu = etree.Element("cpu", mode="custom", match="exact")
    etree.SubElement(cpu, "model", fallback="forbid").text = model_name
    for name, value in overrides_of(model_name, definition).items():
        policy, feature = _feature(name, value)
        etree.SubElement(cpu, "feature", policy=policy, name=feature)
    etree.indent(cpu, space="  ")
    return etree.tostring(cpu, encoding="unicode") + "\n"


def guest_cpu_spec(xml: str | bytes, what: str = "guest CPU XML") -> str:
    """``MODEL,PROP=VAL,...`` from a ``<cpu mode='custom'>`` element (or a ``<domain>``
    containing one) written by ``guest_cpu_xml``."""
    root = parse(xml, what)
    cpu = root if root.tag == "cpu" else root.find("cpu")
    if cpu is None:
        raise InputError(f"{what}: no <cpu> element")
    if cpu.get("mode", "custom") != "custom":
        raise InputError(f"{what}: CPU mode {cpu.get('mode')!r} has no named model (expected 'custom')")
    model = (cpu.findtext("model") or "").strip()
    if not model:
        raise InputError(f"{what}: <cpu> has no <model>")
    overrides: dict[str, str] = {}
    for feat in cpu.findall("feature"):
        policy, name = feat.get("policy", "require"), feat.get("name") or ""
        prop, dot, value = name.partition(".")
        if policy in ("disable", "forbid"):
            if dot:
                raise InputError(f"{what}: feature {name!r}: a valued feature cannot be disabled")
            overrides[prop] = "off"
        elif policy in ("require", "force"):
            overrides[prop] = value if dot else "on"
        else:
            raise InputError(f"{what}: feature {name!r}: policy {policy!r} has no fixed value")
    return _spec(model, overrides)
