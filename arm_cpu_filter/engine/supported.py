"""``supported(host)``: for every property, the values this host's KVM accepts: every field
``check`` takes a value for (CLIDR_EL1's included) and the composites (``sve``, ``pauth``,
``pmu``: on only where the host's KVM offers the vCPU features they switch)."""

from __future__ import annotations

from itertools import product
from typing import Any

from arm_cpu_filter.engine.check import supported_raws
from arm_cpu_filter.engine.hostview import CLIDR, GENERIC, IMPL_ID, RegisterView, host_view
from arm_cpu_filter.models import composite_spec
from arm_cpu_filter.properties import IDENT, properties
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.table import Field

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
    offered = host.vcpu_features if features is None else features & host.vcpu_features
    for name, needs in composite_spec()[1].items():
        on = set(needs) <= offered
        out[name] = {"type": COMPOSITE, "value": "on" if on else "off", "writable": on,
                     "supported": ["off", "on"] if on else ["off"]}
    return out


def _writable(f: Field, rv: RegisterView) -> bool:
    """Whether a VM may see field ``f`` differ from the host (KVM checks it by policy, or lets the
    VMM write CLIDR_EL1 there)."""
    if rv.kind == CLIDR:
        return f.mask & rv.writable == f.mask
    return rv.kind == GENERIC and f in rv.checked
