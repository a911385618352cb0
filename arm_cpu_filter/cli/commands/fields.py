"""``fields [REG]``: the ID-register table."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table

if TYPE_CHECKING:
    from arm_cpu_filter.properties import Property


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fields", help="list ID registers and their fields", description=__doc__)
    p.add_argument("register", nargs="?", help="only this register (e.g. ID_AA64ISAR0_EL1)")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.properties import properties
    from arm_cpu_filter.table import load_table

    t, props = load_table(), properties()
    regs = [t.register(args.register)] if args.register else list(t.registers)
    rows = []
    for reg in regs:
        for f in reg.fields:
            prop = props.by_field.get(f.qualname)
            rows.append(
                {
                    "register": reg.name,
                    "encoding": "S{}_{}_C{}_C{}_{}".format(*reg.encoding),
                    "field": f.name,
                    "shift": f.shift,
                    "width": f.width,
                    "signed": f.signed,
                    "policy": f.policy,
                    "safe": f.safe,
                    "default": f.default,
                    "property": prop.name if prop else None,
                    "values": {str(k): v for k, v in f.values.items()},
                }
            )
            rows[-1]["shown"] = {str(k): _shown(prop, k, v) for k, v in f.values.items()}
    if args.format == "json":
        emit_json([{k: v for k, v in r.items() if k != "shown"} for r in rows])
    else:
        print(
            table(
                [
                    [r["register"], r["field"], f"{r['shift'] + r['width'] - 1}:{r['shift']}",
                     "s" if r["signed"] else "", r["policy"] or "-", r["property"] or "-",
                     ",".join(f"{k}={v}" for k, v in r["shown"].items())]
                    for r in rows
                ],
                ["REGISTER", "FIELD", "BITS", "SGN", "KVM-POLICY", "PROPERTY", "VALUES"],
            ),
            end="",
        )
    return 0


def _shown(prop: Property | None, raw: int, name: str) -> str:
    """A value's name as the text table shows it: the table's own (``IMP``, ``FP16``), which the
    property accepts too, except a size the table names by a bare number ('8' for raw 0), which
    would read as the raw number 8: that one in the property's spelling ('8bit')."""
    if prop is not None and len(prop.fields) == 1 and name.isdigit() and name != str(raw):
        return prop.format((raw,))
    return name
