"""``publish SNAPSHOT... --store-url URL [--host NAME]``: put host snapshots into the HostStore
without KVM (hosts read elsewhere, tests, demos); the agent publishes through the same code.
A SNAPSHOT is a file or a bundled sample name; it is published under its own ``host`` name
unless ``--host`` renames it (one snapshot only)."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import EXIT_OK, add_format, add_store_url, store_url
from arm_cpu_filter.cli.output import emit_json, table
from arm_cpu_filter.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="publish host snapshots to a HostStore", description=__doc__)
    p.add_argument("snapshots", nargs="+", metavar="SNAPSHOT")
    add_store_url(p)
    p.add_argument("--host", metavar="NAME", help="publish under this compute host name (one snapshot)")
    p.add_argument("--taken-at", type=float, metavar="EPOCH",
                   help="when the data was read (seconds since the epoch; default: now)")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.store import open_store

    if args.host and len(args.snapshots) > 1:
        raise InputError("--host renames one snapshot; give one SNAPSHOT")
    snapshots = [snapshot_arg(s) for s in args.snapshots]  # all parse before anything is written
    store = open_store(store_url(args))
    records = [store.publish(s, host=args.host, taken_at=args.taken_at) for s in snapshots]
    if args.format == "json":
        emit_json([r.to_dict() for r in records])
    else:
        print(table([[r.host, r.fingerprint[:16]] for r in records], ["HOST", "SNAPSHOT"]), end="")
    return EXIT_OK
