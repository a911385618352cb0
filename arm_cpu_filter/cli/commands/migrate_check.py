"""``migrate-check (--instance UUID | --from HOST | MODEL|--definition FILE --from HOST) --to HOST``:
would this VM's live migration to HOST succeed, as QEMU + KVM decide it?

``--from HOST`` alone is a host-passthrough VM started there (``-cpu host``, what Nova starts on
aarch64); with a MODEL or ``--definition`` it is a VM started there with that CPU.  ``--instance``
reads the VM the agent recorded, and its current host, from the store.  Hosts are snapshot files or
sample names, or host names in the store with ``--store-url``.  Exit status 0 when the move
succeeds, 1 when it does not (blockers listed, with the destination VMM settings that would lift
them), 2 on an error."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import EXIT_NOT_USABLE, EXIT_OK, add_format, add_store_url, store_url
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate-check", help="would a VM's live migration to a host succeed", description=__doc__)
    p.add_argument("model", nargs="?", metavar="MODEL", help="MODEL[,PROP=VAL...] (needs --from)")
    p.add_argument("--definition", metavar="FILE", help="CPU definition JSON file (needs --from)")
    p.add_argument("--from", dest="source", metavar="HOST", help="the host the VM runs on")
    p.add_argument("--instance", metavar="UUID", help="a Nova instance the agent recorded (needs --store-url)")
    p.add_argument("--to", dest="destination", required=True, metavar="HOST", help="the destination host")
    add_store_url(p)
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arm_cpu_filter.engine.migrate import migrate

    store = _store(args)  # opened once: the VM's record, its host and the destination come from it
    vm = _running_vm(args, store)
    destination = _host(store, args.destination)
    result = migrate(vm, destination)
    if args.format == "json":
        emit_json({"vm": vm.definition.name, "from": vm.source, "to": destination.host, **result.to_dict()})
    else:
        verdict = "succeeds" if result.ok else "FAILS"
        print(f"{vm.definition.name or 'VM'} from {vm.source} to {destination.host}: migration {verdict}")
        if result.blockers:
            print(table([[b.kind, b.subject if len(b.subject) < 40 else b.subject[:37] + "...", b.lifted_by or "-",
                          b.reason] for b in result.blockers], ["KIND", "WHAT", "LIFTED BY", "WHY"]), end="")
            if result.ok_with_settings:
                print("would succeed if the destination VMM applied: " + ",".join(result.settings))
    return EXIT_OK if result.ok else EXIT_NOT_USABLE


def _running_vm(args: argparse.Namespace, store):  # -> RunningVm
    from arm_cpu_filter.cli.loaders import definition_arg
    from arm_cpu_filter.engine.migrate import defined_vm, passthrough_vm, recorded_vm
    from arm_cpu_filter.errors import InputError

    given = [x for x in (args.instance, args.model or args.definition) if x]
    if args.model and args.definition:
        raise InputError("give a MODEL or --definition FILE, not both")
    if len(given) > 1:
        raise InputError("give --instance UUID, or a CPU (MODEL or --definition with --from), not both")
    if args.instance:
        if args.source:
            raise InputError("--instance takes the VM's host from the store: drop --from")
        if store is None:
            raise InputError("--instance needs --store-url (or $ARM_CPU_FILTER_STORE_URL)")
        record = store.instance(args.instance)
        if record is None or record.host is None:
            raise InputError(f"instance {args.instance}: no CPU and host recorded in {store.url}")
        return recorded_vm(store.definition(record.fingerprint), _host(store, record.host))
    if not args.source:
        raise InputError("give --from HOST (the host the VM runs on), or --instance UUID")
    source = _host(store, args.source)
    if not given:
        return passthrough_vm(source)
    return defined_vm(definition_arg(args.model, args.definition), source)


def _store(args: argparse.Namespace):  # -> HostStore | None
    from arm_cpu_filter.store import open_store

    url = store_url(args, required=False)
    return open_store(url) if url else None


def _host(store, name: str):  # -> HostSnapshot (from ``store``, else a file or sample name)
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.errors import InputError

    if store is None:
        return snapshot_arg(name)
    snap = store.host_snapshot(name)
    if snap is None:
        raise InputError(f"host {name!r} has no snapshot in {store.url}")
    return snap
