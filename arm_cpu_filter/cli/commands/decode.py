"""``decode REG=0x... | SNAPSHOT``: every field's value with its name."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table
from arm_cpu_filter.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="decode register values field by field", description=__doc__)
    p.add_argument("items", nargs="+", metavar="REG=0xVALUE|SNAPSHOT", help="register assignments or snapshot files")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.properties import properties
    from arm_cpu_filter.snapshot import canonical_register_name, parse_u64
    from arm_cpu_filter.table import load_table

    regs: dict[str, int] = {}
    for item in args.items:
        if "=" in item:
            name, _, value = item.partition("=")
            regs[canonical_register_name(name.strip(), item)] = parse_u64(value.strip(), item)
        else:
            regs.update(snapshot_arg(item).registers)
    t, props = load_table(), properties()
    out = []
    for name, value in regs.items():
        reg = t.get(name)
        if reg is None:
            raise InputError(f"{name}: not an ID register this table knows")
        for f in reg.fields:
            raw = f.extract(value)
            prop = props.by_field.get(f.qualname)
            shown = prop.format((raw,)) if prop and len(prop.fields) == 1 else str(raw)
            out.append({"register": name, "field": f.name, "raw": raw, "name": f.value_name(raw),
                        "property": prop.name if prop else None, "value": shown})
    if args.format == "json":
        emit_json(out)
    else:
        print(table([[o["register"], o["field"], o["raw"], o["name"] or "", o["property"] or "-", o["value"]]
                     for o in out], ["REGISTER", "FIELD", "RAW", "NAME", "PROPERTY", "VALUE"]), end="")
    return 0
