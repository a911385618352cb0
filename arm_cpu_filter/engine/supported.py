"""``supported(host)``: for every property, the values this host's KVM accepts."""

from __future__ import annotations

from itertools import product
from typing import Any

from arm_cpu_filter.engine.check import supported_raws
from arm_cpu_filter.engine.hostview import GENERIC, IMPL_ID, host_view
from arm_cpu_filter.properties import IDENT, properties
from arm_cpu_filter.snapshot import HostSnapshot


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
            "writable": any(rv.kind == GENERIC and f in rv.checked for f, rv in zip(prop.fields, rvs)),  # type: ignore[union-attr]
            "supported": [prop.format(c) for c in combos],
        }
    return out
