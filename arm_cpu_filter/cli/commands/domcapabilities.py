"""``domcapabilities --host SNAPSHOT [--connect URI | --merge FILE]``: the host's CPU
capabilities as libvirt domain capabilities XML (like ``virsh domcapabilities``): the four CPU
modes, the closest usable named model as host-model, and every catalog CPU model with its
verdict and blockers, as compact as libvirt's own.  ``--properties`` adds each property's host
value and accepted values, each blocker's register field and each blocked model's fix;
``--abstract`` adds the abstract models (kvm-base, architecture levels), marked.  With
``--connect`` the CPU section is merged into what that live libvirt reports; ``--merge`` does
the same with a saved ``virsh domcapabilities`` document."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json
from arm_cpu_filter.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("domcapabilities", help="domain capabilities XML of a host (virsh-style)",
                       description=__doc__)
    p.add_argument("--host", required=True, metavar="SNAPSHOT", help="host snapshot file or sample name")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--connect", metavar="URI", help="merge into this libvirt's domain capabilities")
    src.add_argument("--merge", metavar="FILE", help="merge into a saved 'virsh domcapabilities' document")
    p.add_argument("--virttype", default="kvm", help="with --connect: virtualization type (default: %(default)s)")
    p.add_argument("--machine", help="with --connect: machine type (default: libvirt's)")
    p.add_argument("--emulator", metavar="PATH", help="with --connect: emulator binary (default: libvirt's)")
    p.add_argument("--no-extensions", action="store_true",
                   help="plain libvirt format: leave out the arm-cpu-filter namespace elements")
    p.add_argument("--properties", action="store_true",
                   help="add per-property detail: host value, model value and accepted values (supports=) of "
                        "every property, each blocker's register field, each blocked model's fix")
    p.add_argument("--abstract", action="store_true",
                   help="also list the abstract models (kvm-base, architecture levels), marked acf:abstract")
    add_format(p, ("xml", "json"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import snapshot_arg

    if args.format == "json" and (args.connect or args.merge):
        raise InputError("--format json describes the CPU section only; use --format xml with --connect/--merge")
    host = snapshot_arg(args.host)
    if args.format == "json":
        from arm_cpu_filter.libvirt.caps import cpu_caps

        emit_json(cpu_caps(host, detail=args.properties, abstract=args.abstract).to_dict())
        return 0
    from arm_cpu_filter.libvirt import domain_capabilities

    theirs, what = None, "libvirt domain capabilities"
    if args.connect:
        from arm_cpu_filter.libvirt.connect import get_domain_capabilities

        theirs = get_domain_capabilities(args.connect, virttype=args.virttype, machine=args.machine,
                                         emulator=args.emulator)
        what = f"domain capabilities from {args.connect}"
    elif args.merge:
        from arm_cpu_filter.snapshot.files import read_text

        theirs, what = read_text(args.merge, "domain capabilities"), f"domain capabilities {args.merge}"
    print(domain_capabilities(host, extensions=not args.no_extensions, libvirt_xml=theirs, what=what,
                              detail=args.properties, abstract=args.abstract), end="")
    return 0
