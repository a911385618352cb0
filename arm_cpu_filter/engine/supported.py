"""``supported(host)``: for every property, the values this host's KVM accepts: every field
``check`` takes a value for (CLIDR_EL1's included), and every composite of the named models
(``sve``, ``pauth``, ``pmu``, ``aarch32``: a flavor sets them like properties)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import product
from typing import Any

from arm_cpu_filter.engine.check import supported_raws
from arm_cpu_filter.engine.hostview import CLIDR, GENERIC, IMPL_ID, HostView, RegisterView, host_view
from arm_cpu_filter.models.realization import composite_values
from arm_cpu_filter.models.registry import capped_composites
from arm_cpu_filter.properties import IDENT, properties
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.table import Field, load_table

#: The type ``supported`` gives a composite (an on/off switch over fields and vCPU features).
COMPOSITE = "composite"


def supported(host: HostSnapshot, features: frozenset[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per property: current host value, type, whether it can differ from the host, and the
    accepted values (lowest first).  ``features``: the VM's vCPU features (default: all)."""
    view = host_view(host, host.vcpu_features if features is None else features)
    out: dict[str, dict[str, Any]] = {}
    for prop in properties():
        rvs = [view.registers.get(f.register) for f in prop.fields]
        if any(rv is None for rv in rvs):
            continue
        current = tuple(f.extract(rv.limit) for f, rv in zip(prop.fields, rvs))  # type: ignore[union-attr]
        if prop.kind == IDENT:
            rv = rvs[0]
            writable = rv.kind == IMPL_ID and view.writable_impl_id_regs  # type: ignore[union-attr]
            out[prop.name] = {
                "type": prop.kind,
                "value": prop.format(current),
                "writable": writable,
                "supported": ["any"] if writable else [prop.format(current)],
            }
            continue
        per_field = [supported_raws(f, rv, view) for f, rv in zip(prop.fields, rvs)]  # type: ignore[arg-type]
        combos = sorted(product(*per_field), key=prop.order_key)
        out[prop.name] = {
            "type": prop.kind,
            "value": prop.format(current),
            "writable": any(_writable(f, rv) for f, rv in zip(prop.fields, rvs)),  # type: ignore[arg-type]
            "supported": [prop.format(c) for c in combos],
        }
    out.update(_composites(view))
    return out


def _composites(view: HostView) -> dict[str, dict[str, Any]]:
    """Each composite as a bool: ``off`` always fits (a vCPU without the feature; a capped
    composite when the host accepts its fields at the cap), ``on`` when the host has it."""
    limits = {name: rv.limit for name, rv in view.registers.items()}
    values = composite_values(limits, view.features)
    out: dict[str, dict[str, Any]] = {}
    for comp, value in values.items():
        off = comp not in capped_composites() or cap_fits(comp, limits, view)
        accepted = (["off"] if off else []) + (["on"] if value == "on" else [])
        out[comp] = {"type": COMPOSITE, "value": value, "writable": len(accepted) > 1, "supported": accepted}
    return out


def cap_fits(composite: str, registers: Mapping[str, int], view: HostView) -> bool:
    """Whether the host of ``view`` accepts capped ``composite`` off for a CPU with ``registers``:
    every field it caps, lowered to the cap where above it, is a value KVM accepts there."""
    capped = capped_composites()[composite]
    for qualname in capped.fields:
        f = load_table().field(qualname)
        rv = view.registers.get(f.register)
        if rv is None or min(f.extract(registers.get(f.register, 0)), capped.cap) not in supported_raws(f, rv, view):
            return False
    return True


def _writable(f: Field, rv: RegisterView) -> bool:
    """Whether a VM may see field ``f`` differ from the host (KVM checks it by policy, or lets the
    VMM write CLIDR_EL1 there)."""
    if rv.kind == CLIDR:
        return f.mask & rv.writable == f.mask
    return rv.kind == GENERIC and f in rv.checked
