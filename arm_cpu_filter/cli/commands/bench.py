"""``bench [--format json] [--quick]``: measure the speed targets and print the figures.

A measurement whose optional package is not installed is listed as skipped, with the pip line
that installs it (JSON: ``skipped``); the others still run."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed (check, supported, baseline, start-up, ...)", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer repetitions (CI smoke run)")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # the harness stays out of the product and out of every other command's start-up
    from arm_cpu_filter.testing.bench import TARGETS, run_all

    result = run_all(quick=args.quick)
    if args.format == "json":
        emit_json(result)
        return 0
    rows = []
    for key, value in result.items():
        if key in ("notes", "skipped"):
            continue
        target = TARGETS.get(key)
        ok = "" if target is None else ("ok" if value <= target else "OVER")
        rows.append([key, f"{value:.3f}", "-" if target is None else f"<= {target}", ok])
    print(table(rows, ["FIGURE", "VALUE", "TARGET", ""]), end="")
    for note in result.get("notes", []):
        print(f"note: {note}")
    for skip in result.get("skipped", []):
        print(f"skipped: {skip['reason']}")
    return 0
