"""``pool-baseline HOST... --store-url URL [--output FILE]``: the richest CPU definition every
given host of the store accepts -- the CPU a migration pool of these hosts can share.
Exit status 1 when none exists."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format, add_store_url, store_url
from arm_cpu_filter.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pool-baseline", help="common CPU definition of hosts in a HostStore", description=__doc__)
    p.add_argument("hosts", nargs="+", metavar="HOST")
    add_store_url(p)
    p.add_argument("--output", "-o", metavar="FILE", help="write the definition JSON here")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.commands.baseline import emit
    from arm_cpu_filter.engine import baseline
    from arm_cpu_filter.store import open_store

    store = open_store(store_url(args))
    snapshots = []
    for name in args.hosts:
        snap = store.host_snapshot(name)
        if snap is None:
            raise InputError(f"host {name}: no snapshot in {store.url}")
        snapshots.append(dataclasses.replace(snap, host=name))
    return emit(baseline(snapshots), args)
