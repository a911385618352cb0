"""``pool-model NAME --from MODEL[,PROP=VAL...] HOST... [--models-dir DIR]``: write a site model
``DIR/NAME-vN.toml`` that every HOST can run: MODEL with its writable fields lowered to what every
host accepts and its implementation-defined values completed with the pool's.  The next free
version is written; an existing one never changes.  Exit status 1 (nothing written) when no such
model exists, naming the conflicting fields and hosts."""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING

from arm_cpu_filter.cli import EXIT_NOT_USABLE, EXIT_OK, add_format

if TYPE_CHECKING:
    from arm_cpu_filter.engine.completion import Completion


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pool-model", help="write a site model every given host can run", description=__doc__)
    p.add_argument("name", metavar="NAME", help="site model name, without version (NAME-v1, NAME-v2... are written)")
    p.add_argument("--from", dest="model", required=True, metavar="MODEL", help="MODEL[,PROP=VAL...] to start from")
    p.add_argument("hosts", nargs="+", metavar="HOST", help="host snapshot files or sample names")
    add_format(p)
    p.set_defaults(func=run)


def _refusal(found: Completion, fmt: str) -> None:
    from arm_cpu_filter.cli.output import emit_json

    if fmt == "json":
        emit_json({"written": None, **found.to_dict()})
        return
    print(f"no model from {found.model} is usable on every host:")
    for c in found.conflicts:
        where = f"{c['register']}.{c['field']}" if c["field"] else c["register"]
        values = ", ".join(f"{h}={v}" for h, v in c["hosts"].items())
        print(f"  conflict: {c['property'] or '-'} ({where}): {values} ({c['reason']})")
    seen = {(c["register"], c["field"]) for c in found.conflicts}
    for host, blockers in found.blocked.items():
        for b in blockers:
            if (b.register, b.field) not in seen:
                print(f"  blocked on {host}: {b.property or '-'} ({b.register}.{b.field or '*'}): {b.reason}")


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.cli.loaders import snapshot_arg
    from arm_cpu_filter.cli.output import emit_json
    from arm_cpu_filter.cli.site_models import write_next_version
    from arm_cpu_filter.engine import check
    from arm_cpu_filter.engine.completion import complete, gives_up
    from arm_cpu_filter.errors import InputError
    from arm_cpu_filter.models import catalog, models_dir, realize, realize_model
    from arm_cpu_filter.models.sitefile import SiteModel, check_family

    family = check_family(args.name)
    hosts = [snapshot_arg(h) for h in args.hosts]
    names = [h.host for h in hosts]
    if len(set(names)) != len(names):
        raise InputError(f"hosts given twice or with the same name: {', '.join(names)}")
    catalog()  # the site models directory must load before anything is added to it
    found = complete(args.model, hosts)
    if not found.usable:
        _refusal(found, args.format)
        return EXIT_NOT_USABLE
    definition = realize_model(found.model, found.overrides)
    command = shlex.join(["arm-cpu-filter", "pool-model", family, "--from", args.model, *args.hosts])
    site = {"parent": found.model, "command": command, "hosts": {h.host: h.fingerprint for h in hosts},
            "given": dict(found.given), "lowered": dict(found.lowered), "completed": dict(found.completed),
            "gives_up": gives_up(definition, hosts)}
    directory = models_dir()
    path = write_next_version(directory, family, lambda name: SiteModel(name, **site).text())
    written = realize(path.stem)
    refused = [h.host for h in hosts if not check(written, h).usable]
    if refused:  # completion verified the same overrides: this is a bug, never leave the file
        path.unlink()
        raise AssertionError(f"{path.stem} as written is not usable on {', '.join(refused)}")
    if args.format == "json":
        emit_json({"written": str(path), **found.to_dict()})
    else:
        print(f"wrote {path} ({path.stem}: {found.model} + {len(found.changes)} overrides, usable on "
              f"{', '.join(names)})")
        for label, group in (("lowered", found.lowered), ("completed", found.completed)):
            if group:
                print(f"  {label}: " + ",".join(f"{k}={v}" for k, v in group.items()))
    return EXIT_OK
