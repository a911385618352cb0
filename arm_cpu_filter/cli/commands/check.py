"""``check (--definition FILE | MODEL[,PROP=VAL...] | FILE) --host SNAPSHOT``: would this host's
KVM realize the CPU?  A positional FILE (a path or ``*.json``) is read as a definition; a MODEL and
``--definition`` together are an error.  Exit status 0 usable, 1 not usable, 2 error."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import EXIT_NOT_USABLE, EXIT_OK, add_format
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check a CPU definition or model against a host", description=__doc__)
    p.add_argument("model", nargs="?", metavar="MODEL|FILE", help="MODEL[,PROP=VAL...] or a definition file")
    p.add_argument("--definition", metavar="FILE", help="CPU definition (or snapshot) JSON file")
    p.add_argument("--host", required=True, metavar="SNAPSHOT", help="host snapshot file or sample name")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import definition_arg, names_a_file, snapshot_arg
    from arm_cpu_filter.engine import check

    definition = definition_arg(args.model, args.definition)
    model = None if args.model is None or names_a_file(args.model) else args.model
    host = snapshot_arg(args.host)
    result = check(definition, host)
    out = result.to_dict()
    fix = None
    if not result.usable:
        from arm_cpu_filter.engine import fix as find_fix
        from arm_cpu_filter.engine import fix_model

        if model:  # model specs get model-level names (composites, properties)
            model_fix = fix_model(model, host)
            fix = dict(model_fix.changes) if model_fix.usable else None
        else:
            fix = find_fix(definition, host)
        out["fix"] = fix
    if args.format == "json":
        emit_json(out)
    else:
        label = definition.name or args.definition or args.model
        print(f"{label} on {host.host}: {'usable' if result.usable else 'NOT usable'}")
        if result.blockers:
            print(table([[b.register, b.field or "-", b.property or "-", b.requested, b.host,
                          ",".join(b.supported) or "-", b.reason] for b in result.blockers],
                        ["REGISTER", "FIELD", "PROPERTY", "REQUESTED", "HOST", "SUPPORTED", "WHY"]), end="")
        if fix:
            print("fix: " + ",".join(f"{k}={v}" for k, v in fix.items()))
        elif not result.usable:
            print("fix: none (a blocker cannot be lifted through writable fields)")
    return EXIT_OK if result.usable else EXIT_NOT_USABLE
