"""``check (--definition FILE | MODEL[,PROP=VAL...] | FILE) --host SNAPSHOT``: would this host's
KVM realize the CPU?  A positional FILE (a path or ``*.json``) is read as a definition; a MODEL and
``--definition`` together are an error.  When not usable, the fix: for a model, writable fields
lowered first, then the implementation-defined values the model leaves open completed with the
host's (a partial fix, with what remains, when no full one exists); for a definition file,
writable fields only.  Exit status 0 usable, 1 not usable, 2 error."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from arm_cpu_filter.cli import EXIT_NOT_USABLE, EXIT_OK, add_format
from arm_cpu_filter.cli.output import emit_json, table

if TYPE_CHECKING:
    from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot


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
    groups = None
    if not result.usable:
        groups = _fix_groups(model, definition, host)
        out["fix"] = dict(groups["lowered"]) | dict(groups["completed"]) if groups["usable"] else None
        out["fix_groups"] = groups
    if args.format == "json":
        emit_json(out)
    else:
        label = definition.name or args.definition or args.model
        print(f"{label} on {host.host}: {'usable' if result.usable else 'NOT usable'}")
        if result.blockers:
            print(table([[b.register, b.field or "-", b.property or "-", b.requested, b.host,
                          ",".join(b.supported) or "-", b.reason] for b in result.blockers],
                        ["REGISTER", "FIELD", "PROPERTY", "REQUESTED", "HOST", "SUPPORTED", "WHY"]), end="")
        if groups is not None:
            _print_fix(groups)
    return EXIT_OK if result.usable else EXIT_NOT_USABLE


def _fix_groups(model: str | None, definition: CpuDefinition, host: HostSnapshot) -> dict:
    """The fix as two labelled groups (``lowered``, ``completed``), whether it is complete, the
    fixed spec and what remains (per host, as blockers)."""
    from arm_cpu_filter.engine import check
    from arm_cpu_filter.engine import fix as find_fix
    from arm_cpu_filter.engine.completion import complete

    if model:  # model specs get model-level names (composites, properties) and completion
        found = complete(model, [host]).to_dict()
        return {k: found[k] for k in ("usable", "lowered", "completed", "spec", "remaining")}
    lowered = find_fix(definition, host)
    return {"usable": lowered is not None, "lowered": lowered or {}, "completed": {}, "spec": None,
            "remaining": {} if lowered is not None else {host.host: [b.to_dict() for b in check(definition, host).blockers]}}


def _print_fix(groups: dict) -> None:
    lowered, completed = groups["lowered"], groups["completed"]
    joined = ",".join(f"{k}={v}" for k, v in {**lowered, **completed}.items())
    if groups["usable"]:
        print(f"fix: {joined}")
    elif joined:
        print(f"partial fix: {joined}")
    else:
        print("fix: none (no override lifts any blocker)")
    if lowered:
        print("  lowered (writable fields): " + ",".join(f"{k}={v}" for k, v in lowered.items()))
    if completed:
        print("  completed (implementation-defined values of the guest ABI, set to the host's): "
              + ",".join(f"{k}={v}" for k, v in completed.items()))
    if groups["usable"] and groups["spec"]:
        print(f"  fixed CPU: {groups['spec']}")
    for blockers in groups["remaining"].values():
        for b in blockers:
            where = f"{b['register']}.{b['field']}" if b["field"] else b["register"] or "vCPU features"
            print(f"  still blocked: {b['property'] or '-'} ({where}): {b['reason']}")
