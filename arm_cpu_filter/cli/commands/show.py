"""``show MODEL [--format text|json]``: every property of a model, with the model in its parent
chain that set it and that value's provenance."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="show a named CPU model's properties and where they come from",
                       description=__doc__)
    p.add_argument("model", help="model name (e.g. grace-v1)")
    p.add_argument("--all", action="store_true", help="also list properties left at the table default")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.models import chain, composite_spec, get_model, resolve

    model = get_model(args.model)
    rows = resolve(model.name)
    if not args.all:
        rows = [r for r in rows if r["set_by"] != "default" or r["property"] in composite_spec()[1]]
    if args.format == "json":
        emit_json({"name": model.name, "parent": model.parent, "vendor": model.vendor,
                   "description": model.description, "chain": [m.name for m in chain(model.name)],
                   "inferred": list(model.inferred), "properties": rows})
        return 0
    print(f"{model.name} ({model.vendor}): {model.description}")
    print("chain: " + " -> ".join(m.name for m in chain(model.name)))
    for note in model.inferred:
        print(f"inferred: {note}")
    print(table([[r["property"], r["value"], r["set_by"]] for r in rows], ["PROPERTY", "VALUE", "SET-BY"]), end="")
    return 0
