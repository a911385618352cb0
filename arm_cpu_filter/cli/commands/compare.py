"""``compare A B``: identical / superset / subset / incompatible (s390x semantics), with the
properties responsible.  A and B are definition or snapshot files, or MODEL[,PROP=VAL...]."""

from __future__ import annotations

import argparse
import os

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare two CPU definitions", description=__doc__)
    p.add_argument("a")
    p.add_argument("b")
    add_format(p)
    p.set_defaults(func=run)


def _load(spec: str):
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import definition_arg

    if os.path.exists(spec):
        return definition_arg(path=spec)
    try:
        return definition_arg(spec)
    except Exception:
        from arm_cpu_filter.cli.loaders import snapshot_arg

        return snapshot_arg(spec).as_definition()


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.engine import compare

    result = compare(_load(args.a), _load(args.b))
    if args.format == "json":
        emit_json(result.to_dict())
    else:
        print(f"{args.a} is {result.result}" + ("" if result.result in ("identical", "incompatible") else f" of {args.b}"))
        if result.differences:
            print(table([[k, a, b, r] for k, (a, b, r) in sorted(result.differences.items())],
                        ["PROPERTY", "A", "B", "A vs B"]), end="")
    return 0
