"""``expand MODEL[,PROP=VAL...] [--format json|qemu|libvirt]``: the realized CPU definition
(JSON, usable as ``check --definition``), a QEMU ``-cpu host,SYSREG_...`` string, or a libvirt
guest ``<cpu mode='custom'>`` element."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json

#: What ``expand --help`` says after the options: who can consume the qemu and libvirt forms.
NOT_YET = """\
No released QEMU or libvirt takes these yet.  QEMU (through 11.1) runs an aarch64 KVM guest
only with -cpu host or max and has no SYSREG_ properties (they come from the RFC series for a
customizable aarch64 KVM host model, not merged); libvirt 11.3 refuses
<model>graviton2-v1</model> on aarch64 ("CPU model graviton2-v1 is not supported by
hypervisor").  The qemu and libvirt forms are in the RFC's syntax, for planning (what a VM
on the model would see; check it against hosts with 'check' and 'matrix') and for the stack as
proposed upstream.  On today's stack use host-passthrough with this project's placement and
migration checks."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("expand", help="realize a named CPU model (+ overrides)", description=__doc__,
                       epilog=NOT_YET, formatter_class=argparse.RawDescriptionHelpFormatter)
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
