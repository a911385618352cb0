"""``supported --host SNAPSHOT``: per property, the values this host's KVM accepts."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("supported", help="values each property may take on a host", description=__doc__)
    p.add_argument("--host", required=True, metavar="SNAPSHOT")
    p.add_argument("--all", action="store_true", help="also list properties fixed to the host value")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.engine import supported

    result = supported(snapshot_arg(args.host))
    if args.format == "json":
        emit_json(result)
        return 0
    rows = [[name, s["type"], s["value"], ",".join(s["supported"])]
            for name, s in result.items() if args.all or s["writable"]]
    print(table(rows, ["PROPERTY", "TYPE", "HOST", "SUPPORTED"]), end="")
    return 0
