"""``baseline SNAPSHOT... [--output FILE]``: the richest CPU definition every host accepts
(the same whatever order the hosts are given in).  Stdout is JSON only: the definition (text
format) or the whole result (``--format json``); what each host gives up goes to stderr.  Exit
status 1 when no such definition exists (the conflicting fields and hosts are listed on stderr)."""

from __future__ import annotations

import argparse
from typing import Any

from arm_cpu_filter.cli import EXIT_NOT_USABLE, EXIT_OK, add_format
from arm_cpu_filter.cli.output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baseline", help="common CPU definition of a pool of hosts", description=__doc__)
    p.add_argument("hosts", nargs="+", metavar="SNAPSHOT")
    p.add_argument("--output", "-o", metavar="FILE", help="write the definition JSON here")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.engine import baseline

    return emit(baseline([snapshot_arg(h) for h in args.hosts]), args)


def emit(result: Any, args: argparse.Namespace) -> int:
    """Print a BaselineResult (also used by ``pool-baseline``); needs ``args.output``/``format``.
    Stdout carries only JSON (the result object, or in text mode the definition itself), so it
    can be redirected or piped; the commentary (what each host gives up, warnings, conflicts)
    goes to stderr."""
    import sys

    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.snapshot import dumps
    from arm_cpu_filter.snapshot.files import save

    if result.definition is not None and args.output:
        save(result.definition, args.output)
    if args.format == "json":
        emit_json(result.to_dict())
    elif result.definition is None:
        print("no CPU definition is accepted by every host:", file=sys.stderr)
        for c in result.conflicts:
            where = c["register"] + (f".{c['field']}" if c.get("field") else "")
            hosts = ", ".join(f"{h}={v}" for h, v in c.get("hosts", {}).items())
            print(f"  {where}: {c['reason']}" + (f" ({hosts})" if hosts else ""), file=sys.stderr)
    else:
        if not args.output:
            sys.stdout.write(dumps(result.definition))
        for host, lost in result.gives_up.items():
            print(f"{host} gives up: {', '.join(lost) if lost else 'nothing'}", file=sys.stderr)
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return EXIT_OK if result.definition is not None else EXIT_NOT_USABLE
