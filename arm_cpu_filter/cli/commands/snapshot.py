"""``snapshot [--output FILE] [--features F,...] [--host NAME]``: read this host's KVM through
/dev/kvm into a HostSnapshot (format 1).  On a machine without ARM64 KVM, use
``--from-file`` with a snapshot taken elsewhere (it is validated and re-written)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("snapshot", help="read this host's KVM ID-register state", description=__doc__)
    p.add_argument("--output", "-o", metavar="FILE", help="write here (atomically) instead of stdout")
    p.add_argument("--features", help="comma-separated vCPU features (default: every one the host offers)")
    p.add_argument("--host", help="host name to record (default: this machine's)")
    p.add_argument("--device", default="/dev/kvm", help="KVM device (default: %(default)s)")
    p.add_argument("--no-impl-id-regs", action="store_true",
                   help="describe VMs that do not enable KVM_CAP_ARM_WRITABLE_IMP_ID_REGS")
    p.add_argument("--from-file", metavar="SNAPSHOT", help="validate and re-write a snapshot taken elsewhere")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.snapshot import HostSnapshot, dumps
    from arm_cpu_filter.snapshot.files import load_snapshot, save

    if args.from_file:
        snap = load_snapshot(args.from_file)
    else:
        from arm_cpu_filter.kvm.reader import read_snapshot

        features = [f.strip() for f in args.features.split(",")] if args.features else None
        data = read_snapshot(args.host, features, args.device, False if args.no_impl_id_regs else None)
        snap = HostSnapshot.from_dict(data, "snapshot read from KVM")
    if args.output:
        save(snap, args.output)
    else:
        sys.stdout.write(dumps(snap))
    return 0
