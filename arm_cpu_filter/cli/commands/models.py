"""``models [--format text|json]``: the named CPU model catalog as a tree (parents, versions)."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the named CPU models", description=__doc__)
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # loaded on use: building the parser imports every command module, so start-up stays small
    from arm_cpu_filter.models import catalog

    models = catalog()
    if args.format == "json":
        emit_json([{"name": m.name, "parent": m.parent, "family": m.family, "version": m.version,
                    "vendor": m.vendor, "description": m.description, "inferred": list(m.inferred)}
                   for m in models.values()])
        return 0
    children: dict[str | None, list[str]] = {}
    for m in models.values():
        children.setdefault(m.parent, []).append(m.name)

    def walk(name: str, depth: int) -> None:
        m = models[name]
        print(f"{'  ' * depth}{m.name}  [{m.vendor}] {m.description}")
        for child in sorted(children.get(name, [])):
            walk(child, depth + 1)

    for root in sorted(children.get(None, [])):
        walk(root, 0)
    return 0
