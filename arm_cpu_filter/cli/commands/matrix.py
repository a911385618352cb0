"""``matrix [--host SNAPSHOT...]``: decode the hosts, check every CPU definition (each named
model, and each host's own CPU as a host-passthrough definition) against every host, and
print the usable/blocked matrix.  Without ``--host`` it uses the bundled sample fleet."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matrix", help="check every CPU definition against every host", description=__doc__)
    p.add_argument("--host", action="append", metavar="SNAPSHOT", help="host snapshot (repeatable)")
    p.add_argument("--no-models", action="store_true", help="only host-passthrough definitions")
    add_format(p)
    p.set_defaults(func=run)


def _definitions(hosts, with_models: bool):
    defs = []
    if with_models:
        try:
            # loaded on use: building the parser imports every command module, so start-up stays small
            from arm_cpu_filter.models import catalog, realize
        except ImportError:
            catalog = None
        if catalog is not None:
            defs += [(name, realize(name)) for name in catalog()]
    defs += [(f"passthrough:{h.host}", h.as_definition()) for h in hosts]
    return defs


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.engine import check

    if args.host:
        hosts = [snapshot_arg(h) for h in args.host]
    else:
        from arm_cpu_filter.samples import sample_hosts

        hosts = list(sample_hosts().values())
    defs = _definitions(hosts, not args.no_models)
    results = {name: {h.host: check(d, h) for h in hosts} for name, d in defs}
    if args.format == "json":
        emit_json({name: {host: r.to_dict() for host, r in row.items()} for name, row in results.items()})
        return 0
    print("hosts:")
    for h in hosts:
        regs = h.registers
        midr = regs.get("MIDR_EL1", 0)
        print(f"  {h.host:<16} kernel {h.kernel:<10} MIDR 0x{midr:08x}  {len(regs)} registers, "
              f"{'no writable masks' if h.writable_masks is None else 'writable masks'}, "
              f"vCPU features: {','.join(sorted(h.vcpu_features)) or '-'}")
    print()
    rows = []
    for name, row in results.items():
        cells = []
        for h in hosts:
            r = row[h.host]
            cells.append("yes" if r.usable else f"no({len(r.blockers)})")
        rows.append([name, *cells])
    print(table(rows, ["CPU \\ HOST", *[h.host for h in hosts]]), end="")
    print("\nno(N): N blockers; `arm-cpu-filter check DEFINITION --host HOST` lists them and the fix.")
    return 0
