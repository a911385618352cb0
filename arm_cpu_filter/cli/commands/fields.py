"""``fields [REG]``: the ID-register table."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table


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
    if args.format == "json":
        emit_json(rows)
    else:
        print(
            table(
                [
                    [r["register"], r["field"], f"{r['shift'] + r['width'] - 1}:{r['shift']}",
                     "s" if r["signed"] else "", r["policy"] or "-", r["property"] or "-",
                     ",".join(f"{k}={v}" for k, v in r["values"].items())]
                    for r in rows
                ],
                ["REGISTER", "FIELD", "BITS", "SGN", "KVM-POLICY", "PROPERTY", "VALUES"],
            ),
            end="",
        )
    return 0
