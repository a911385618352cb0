"""``compare A B``: identical / superset / subset / incompatible (s390x semantics), with the
properties responsible.  A and B are definition or snapshot files, MODEL[,PROP=VAL...] or the
name of a bundled sample host."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table
from arm_cpu_filter.errors import UnknownNameError

if TYPE_CHECKING:
    from arm_cpu_filter.snapshot import CpuDefinition


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare two CPU definitions", description=__doc__)
    p.add_argument("a")
    p.add_argument("b")
    add_format(p)
    p.set_defaults(func=run)


def _load(spec: str) -> CpuDefinition:
    """A file, ``MODEL[,PROP=VAL...]`` (errors in the overrides are reported as such) or a sample host."""
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import definition_arg, snapshot_arg
    from arm_cpu_filter.models import catalog, parse_spec
    from arm_cpu_filter.samples import sample_names

    if os.path.exists(spec):
        return definition_arg(path=spec)
    if parse_spec(spec)[0] in catalog():
        return definition_arg(spec)
    if spec in sample_names():
        return snapshot_arg(spec).as_definition()
    raise UnknownNameError(f"{spec!r} is not a file, a CPU model (see 'arm-cpu-filter models') "
                           f"or a sample host ({', '.join(sample_names())})")


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
