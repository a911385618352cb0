"""``migrate-targets (INSTANCE --store-url URL | --definition FILE|MODEL) [--hosts HOST...]``:
where can this VM go?  INSTANCE is a Nova instance uuid whose CPU the agent recorded; a
definition is a file or a ``MODEL[,PROP=VAL...]``.  Candidates are the store's hosts (or just
``--hosts``); without ``--store-url``, ``--hosts`` are snapshot files or sample names.
Exit status 0 when some host accepts the VM, 1 when none does."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import EXIT_NOT_USABLE, EXIT_OK, add_format, add_store_url, store_url
from arm_cpu_filter.cli.output import emit_json, table
from arm_cpu_filter.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate-targets", help="hosts that can take a VM (live migration targets)",
                       description=__doc__)
    p.add_argument("instance", nargs="?", metavar="INSTANCE")
    p.add_argument("--definition", metavar="FILE|MODEL", help="CPU definition file or MODEL[,PROP=VAL...]")
    add_store_url(p)
    p.add_argument("--hosts", nargs="+", metavar="HOST")
    p.add_argument("--max-age", type=float, default=0, metavar="S",
                   help="treat host data older than S seconds as stale (default 0: no limit)")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import definition_arg, snapshot_arg
    from arm_cpu_filter.engine import check
    from arm_cpu_filter.engine.migrate import recorded_vm
    from arm_cpu_filter.scheduler.fleet import Fleet, explain, hosts_accepting, hosts_accepting_move
    from arm_cpu_filter.store import open_store

    if bool(args.instance) == bool(args.definition):
        raise InputError("give an INSTANCE (with --store-url) or --definition FILE|MODEL")
    url = store_url(args, required=False)
    store = open_store(url) if url else None
    if args.instance:
        if store is None:
            raise InputError("INSTANCE needs --store-url")
        record = store.instance(args.instance)
        if record is None:
            raise InputError(f"instance {args.instance}: no CPU recorded in {store.url}")
        definition, source = store.definition(record.fingerprint), record.host
    else:
        definition = definition_arg(args.definition)  # a file path or MODEL[,PROP=VAL...]
        source = None
    if store is not None:
        fleet = Fleet(store, max_age=args.max_age)
        if source:  # a running instance: a live migration, decided as QEMU + KVM would (engine.migrate)
            data = fleet.host(source)
            if data.snapshot is None:
                raise InputError(f"instance {args.instance} runs on {source}, whose CPU data is unusable: {data.problem}")
            verdicts = hosts_accepting_move(fleet, recorded_vm(definition, data.snapshot), True, args.hosts)
            verdicts.pop(source, None)
        else:
            verdicts = hosts_accepting(fleet, definition, args.hosts)
    elif args.hosts:
        snaps = [snapshot_arg(h) for h in args.hosts]
        verdicts = {s.host: None if check(definition, s).usable else explain(definition, s) for s in snaps}
    else:
        raise InputError("--definition needs --store-url or --hosts")
    targets = sorted(h for h, why in verdicts.items() if why is None)
    if args.format == "json":
        emit_json({"definition": definition.name, "source": source, "targets": targets,
                   "refused": {h: why for h, why in verdicts.items() if why is not None}})
    else:
        print(table([[h, "yes" if why is None else "no", why or ""] for h, why in verdicts.items()],
                    ["HOST", "TARGET", "WHY NOT"]), end="")
    return EXIT_OK if targets else EXIT_NOT_USABLE
