"""``expand MODEL[,PROP=VAL...] [--format json|qemu|libvirt]``: the realized CPU definition
(JSON, usable as ``check --definition``), a QEMU ``-cpu host,SYSREG_...`` string, or a libvirt
guest ``<cpu mode='custom'>`` element."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("expand", help="realize a named CPU model (+ overrides)", description=__doc__)
    p.add_argument("model", help="MODEL[,PROP=VAL...]")
    add_format(p, ("json", "qemu", "libvirt"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.models import parse_spec, realize

    definition = realize(args.model)
    if args.format == "json":
        emit_json(definition.to_dict())
    elif args.format == "qemu":
        from arm_cpu_filter.qemu import cpu_option

        print(cpu_option(definition))
    else:
        from arm_cpu_filter.libvirt.guest import guest_cpu_xml

        print(guest_cpu_xml(parse_spec(args.model)[0], definition), end="")
    return 0
