"""``compare(a, b)``: how two CPUs relate, with s390x semantics.

``identical``: same guest-visible values; ``superset``: ``a`` offers everything ``b`` does and
more (a VM with ``b``'s CPU could run where ``a``'s runs); ``subset``: the reverse;
``incompatible``: each has something the other lacks, or a field that cannot be ordered
differs.  Fields are ordered by the policy KVM applies (LOWER: more is larger, HIGHER: less
is larger); fields without an order (EXACT, no kernel entry, identification, unknown
registers) are incompatible whenever they differ.  ``compare(a, b)`` is ``superset`` iff
``compare(b, a)`` is ``subset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arm_cpu_filter.properties import properties, raw_name
from arm_cpu_filter.snapshot import CpuDefinition
from arm_cpu_filter.table import HIGHER, HIGHER_OR_ZERO, LOWER, Field, load_table

IDENTICAL, SUPERSET, SUBSET, INCOMPATIBLE = "identical", "superset", "subset", "incompatible"


@dataclass(frozen=True)
class CompareResult:
    result: str
    #: property -> (value in a, value in b, relation of a to b: "greater" | "less" | "differs")
    differences: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    @property
    def responsible(self) -> list[str]:
        return sorted(self.differences)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "responsible_properties": self.responsible,
            "differences": {k: {"a": a, "b": b, "relation": r} for k, (a, b, r) in sorted(self.differences.items())},
        }


def _order(f: Field, va: int, vb: int) -> str:
    a, b = f.ordinal(va), f.ordinal(vb)
    if f.policy == LOWER or f.policy == HIGHER_OR_ZERO and a and b:
        return "greater" if a > b else "less"
    if f.policy == HIGHER:
        return "greater" if a < b else "less"
    return "differs"


def compare(a: CpuDefinition, b: CpuDefinition) -> CompareResult:
    table, props = load_table(), properties()
    diffs: dict[str, tuple[str, str, str]] = {}
    for name in sorted(set(a.registers) | set(b.registers)):
        ra, rb = a.registers.get(name), b.registers.get(name)
        if ra == rb:
            continue
        reg = table.get(name)
        if ra is None or rb is None or reg is None or reg.implementation_id:
            sa = "-" if ra is None else f"0x{ra:016x}"
            sb = "-" if rb is None else f"0x{rb:016x}"
            diffs[name] = (sa, sb, "differs")
            continue
        for f in reg.fields:
            va, vb = f.extract(ra), f.extract(rb)
            if va == vb:
                continue
            prop = props.by_field.get(f.qualname)
            key = prop.name if prop and len(prop.fields) == 1 else raw_name(name, f.name)
            fa = prop.format((va,)) if prop and len(prop.fields) == 1 else str(va)
            fb = prop.format((vb,)) if prop and len(prop.fields) == 1 else str(vb)
            diffs[key] = (fa, fb, _order(f, va, vb))
    for feat in sorted(a.vcpu_features ^ b.vcpu_features):
        in_a = feat in a.vcpu_features
        diffs[f"vcpu_feature:{feat}"] = ("on" if in_a else "off", "off" if in_a else "on", "greater" if in_a else "less")
    relations = {r for _, _, r in diffs.values()}
    if not diffs:
        result = IDENTICAL
    elif relations == {"greater"}:
        result = SUPERSET
    elif relations == {"less"}:
        result = SUBSET
    else:
        result = INCOMPATIBLE
    return CompareResult(result, diffs)
