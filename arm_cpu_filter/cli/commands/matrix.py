"""``matrix [--host SNAPSHOT...] [--cpu MODEL[,PROP=VAL...]...]``: decode the hosts, check every CPU
definition (each named model, each ``--cpu`` spec -- shown as ``cpu#N`` -- and each host's own CPU
as a host-passthrough definition) against every host, and print the usable/blocked matrix.  Without ``--host`` it uses
the bundled sample fleet.  The OWN CORE column counts, per named CPU, the hosts of its own core
(same MIDR implementer and part number) it is usable on: the catalog's diagonal."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matrix", help="check every CPU definition against every host", description=__doc__)
    p.add_argument("--host", action="append", metavar="SNAPSHOT", help="host snapshot (repeatable)")
    p.add_argument("--cpu", action="append", default=[], metavar="MODEL[,PROP=VAL...]",
                   help="also check this model with overrides (repeatable), e.g. armv8.2-a-v1,aarch32=off")
    p.add_argument("--no-models", action="store_true", help="only host-passthrough definitions (and --cpu)")
    add_format(p)
    p.set_defaults(func=run)


def _definitions(hosts, with_models: bool, specs: list[str]):
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.models import catalog, realize

    defs = [(name, realize(name)) for name in (list(catalog()) if with_models else [])]
    defs += [(f"cpu#{i}", realize(spec)) for i, spec in enumerate(specs, 1)]
    defs += [(f"passthrough:{h.host}", h.as_definition()) for h in hosts]
    return defs


def _core(registers: Mapping[str, int]) -> tuple[int, int] | None:
    """(MIDR implementer, part number), or None for a CPU that names no core (generic models)."""
    from arm_cpu_filter.table import load_table

    midr = registers.get("MIDR_EL1", 0)
    fields = load_table().register("MIDR_EL1")
    core = (fields.field("Implementer").extract(midr), fields.field("PartNum").extract(midr))
    return core if core[0] else None


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.engine import check

    if args.host:
        hosts = [snapshot_arg(h) for h in args.host]
    else:
        from arm_cpu_filter.samples import sample_hosts

        hosts = list(sample_hosts().values())
    defs = _definitions(hosts, not args.no_models, args.cpu)
    results = {name: {h.host: check(d, h) for h in hosts} for name, d in defs}
    if args.format == "json":  # --cpu rows under their spec
        labels = {f"cpu#{i}": spec for i, spec in enumerate(args.cpu, 1)}
        emit_json({labels.get(name, name): {host: r.to_dict() for host, r in row.items()} for name, row in results.items()})
        return 0
    print("hosts:")
    for h in hosts:
        regs = h.registers
        midr = regs.get("MIDR_EL1", 0)
        print(f"  {h.host:<16} kernel {h.kernel:<10} MIDR 0x{midr:08x}  {len(regs)} registers, "
              f"{'no writable masks' if h.writable_masks is None else 'writable masks'}, "
              f"vCPU features: {','.join(sorted(h.vcpu_features)) or '-'}")
    for i, spec in enumerate(args.cpu, 1):
        print(f"cpu#{i}: {spec}")
    print()
    host_cores = {h.host: _core(h.registers) for h in hosts}
    rows, usable, own, own_usable = [], 0, 0, 0
    for name, d in defs:
        row = results[name]
        cells = ["yes" if row[h.host].usable else f"no({len(row[h.host].blockers)})" for h in hosts]
        usable += sum(r.usable for r in row.values())
        core = _core(d.registers)
        mine = [h for h, c in host_cores.items() if core is not None and c == core]
        fit = sum(row[h].usable for h in mine)
        if mine and not name.startswith("passthrough:"):
            own, own_usable = own + 1, own_usable + bool(fit)
        rows.append([name, f"{fit}/{len(mine)}" if mine else "-", *cells])
    print(table(rows, ["CPU \\ HOST", "OWN CORE", *[h.host for h in hosts]]), end="")
    diagonal = f"; {own_usable} of {own} named CPUs usable on a host of their own core" if own else ""
    print(f"\n{usable} of {len(defs) * len(hosts)} CPU/host pairs usable{diagonal}.")
    print("no(N): N blockers; `arm-cpu-filter check DEFINITION --host HOST` lists them and the fix.")
    return 0
