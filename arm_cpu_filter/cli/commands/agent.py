"""``agent [--once | --interval S]``: the compute-host agent.  Each round: withdraw this host's
record if it was published before a reboot (kernel or boot id changed), read this host's
snapshot (KVM; ``--from-file SNAPSHOT`` for a file or sample read elsewhere), publish it,
record the CPU of new host-passthrough Nova instances (libvirt), and write the Nova
provider-config YAML with a CUSTOM_ARM_CPU_MODEL_<NAME> trait per usable model.  Defaults come
from ``[arm_cpu_filter]`` in ``--config-file``; the store is ``--store-url``, else
``[arm_cpu_filter_database] connection``, else ``[arm_cpu_filter] store_url``.  Runs as an
ordinary user in the kvm group (not root): see docs/agent-privileges.rst."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import EXIT_OK, add_format
from arm_cpu_filter.cli.output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agent", help="publish this host's snapshot and instances (run on computes)",
                       description=__doc__)
    when = p.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one round, then exit (prints the round's report)")
    when.add_argument("--interval", type=float, metavar="S", help="seconds between rounds (default: agent_interval)")
    p.add_argument("--config-file", action="append", default=[], metavar="FILE",
                   help="oslo.config file(s) with an [arm_cpu_filter] section")
    p.add_argument("--store-url", metavar="URL")
    p.add_argument("--host", metavar="NAME", help="compute host name (default: [arm_cpu_filter] host or hostname)")
    p.add_argument("--from-file", metavar="SNAPSHOT", help="publish this snapshot file/sample instead of reading KVM")
    p.add_argument("--libvirt-uri", metavar="URI")
    p.add_argument("--no-libvirt", action="store_true", help="do not look at libvirt domains")
    p.add_argument("--provider-config", metavar="FILE")
    p.add_argument("--no-provider-config", action="store_true", help="do not write a provider-config YAML")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import socket

    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter import agent, conf
    from arm_cpu_filter.agent.privileges import check_kvm_access, secret_exposures
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.snapshot import HostSnapshot
    from arm_cpu_filter.store import open_store

    options = conf.load(args.config_file)
    o = options.arm_cpu_filter
    if args.config_file and args.models_dir is None:  # a service's config: its site models, as the scheduler's
        from arm_cpu_filter.models import set_models_dir

        set_models_dir(o.models_dir)
    host = args.host or o.host or socket.gethostname()
    url, database_options = conf.store_settings(options)
    store = open_store(args.store_url) if args.store_url else open_store(url, database_options)
    uri = None if args.no_libvirt else (args.libvirt_uri or o.libvirt_uri)
    provider = None if args.no_provider_config else (args.provider_config or o.provider_config_file or None)
    exposures = secret_exposures(args.config_file, bool(args.store_url)) if getattr(store, "has_password", False) else []

    def read() -> HostSnapshot:
        if args.from_file:
            return snapshot_arg(args.from_file)
        check_kvm_access()  # a missing permission is one clear line, not an ioctl error
        # loaded on use: building the parser imports every command module, so start-up stays small
        from arm_cpu_filter.kvm.reader import read_snapshot

        return HostSnapshot.from_dict(read_snapshot(host=host), "KVM snapshot")

    if args.once:
        report = agent.run_round(store, read, host, uri, provider)
        report.notes.extend(f"warning: {w}" for w in exposures)
        if args.format == "json":
            emit_json(report.to_dict())
        else:
            print(f"published {report.host} ({report.fingerprint[:16]}) to {store.url}")
            print(f"recorded {len(report.recorded)} new instance(s): {', '.join(report.recorded) or '-'}")
            if report.known:
                print(f"already known: {', '.join(report.known)}")
            for name, why in report.skipped.items():
                print(f"skipped domain {name}: {why}")
            print(f"usable models: {', '.join(report.models) or 'none'}")
            if report.provider_config:
                print(f"provider config: {report.provider_config}")
            for note in report.notes:
                print(f"note: {note}")
        return EXIT_OK
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for warning in exposures:
        agent.LOG.warning("%s", warning)
    agent.run(store, read, host, args.interval or o.agent_interval, uri, provider)
    return EXIT_OK
