"""``upgrade-check SNAPSHOT --store-url URL``: before rolling a kernel out, which recorded instances
could no longer move onto the host already upgraded (SNAPSHOT, read there after the upgrade), and
which could move onto it but never back to where they run now?

A kernel upgrade can drop registers from KVM's list or change what KVM offers, and a VM that
lands on the new kernel carries the new kernel's register list from then on.  Exit status 0 when
every instance can move onto the upgraded host and back, 1 when some cannot, 2 on an error."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import EXIT_NOT_USABLE, EXIT_OK, add_format, add_store_url, store_url
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upgrade-check", help="instances a kernel upgrade would strand", description=__doc__)
    p.add_argument("snapshot", metavar="SNAPSHOT", help="the upgraded host's snapshot (file or sample name)")
    add_store_url(p)
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.engine.migrate import migrate, moved, recorded_vm
    from arm_cpu_filter.store import open_store

    upgraded = snapshot_arg(args.snapshot)
    store = open_store(store_url(args))
    rows: list[dict] = []
    for uuid in store.instance_ids():
        record = store.instance(uuid)
        if record is None or record.host is None or record.host == upgraded.host:
            continue
        source = store.host_snapshot(record.host)
        if source is None:
            rows.append({"instance": uuid, "host": record.host, "onto": None, "back": None,
                         "why": f"host {record.host} has no snapshot in the store"})
            continue
        vm = recorded_vm(store.definition(record.fingerprint), source)
        onto = migrate(vm, upgraded)
        back = migrate(moved(vm, upgraded), source) if onto.ok else None
        failed = onto if not onto.ok else back
        rows.append({"instance": uuid, "host": record.host, "onto": onto.ok, "back": None if back is None else back.ok,
                     "why": "; ".join(b.reason for b in failed.blockers) if failed and not failed.ok else ""})
    stranded = [r for r in rows if not (r["onto"] and r["back"])]
    if args.format == "json":
        emit_json({"upgraded": upgraded.host, "kernel": upgraded.kernel, "instances": rows,
                   "cannot_move_onto": [r["instance"] for r in rows if not r["onto"]],
                   "cannot_move_back": [r["instance"] for r in rows if r["onto"] and not r["back"]]})
    else:
        print(f"{len(rows)} instance(s) checked against {upgraded.host} (kernel {upgraded.kernel}): "
              f"{len(stranded)} would be stranded")
        if rows:
            print(table([[r["instance"], r["host"], _yes(r["onto"]), _yes(r["back"]), r["why"]] for r in rows],
                        ["INSTANCE", "NOW ON", "ONTO", "BACK", "WHY NOT"]), end="")
    return EXIT_NOT_USABLE if stranded else EXIT_OK


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else "yes" if flag else "no"
