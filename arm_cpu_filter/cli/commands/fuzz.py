"""``fuzz [--target NAME ...] [--cases N] [--seed S] [--format text|json]``: feed generated input
(real seeds mutated structurally and at byte level, and free-form text; drawn by hypothesis)
into every input surface's real entry point and count, per target, the cases that worked, were
refused with the documented error (by class) or hit a bug: any other exception, a case slower
than ``--case-seconds``, or memory growth.  Exit status 0 without bugs, 1 with bugs (the first
reproducer of each is shown; the same ``--seed`` and ``--cases`` replay the run).
Needs hypothesis: ``pip install 'arm-cpu-filter[fuzz]'``."""

from __future__ import annotations

import argparse
import sys

from arm_cpu_filter.cli import EXIT_NOT_USABLE, EXIT_OK, add_format
from arm_cpu_filter.cli.output import emit_json
from arm_cpu_filter.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuzz", help="fuzz every input surface (snapshots, models, specs, XML...)", description=__doc__)
    p.add_argument("--target", action="extend", nargs="+", metavar="NAME",
                   help="targets to fuzz (default: all; an unknown name is an error that lists them)")
    p.add_argument("--cases", type=int, default=100_000, help="cases per target (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default: %(default)s)")
    p.add_argument("--case-seconds", type=float, default=2.0,
                   help="a case using more CPU seconds than this is a bug (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_format(p)
    p.set_defaults(func=run)


def _progress(report) -> None:  # noqa: ANN001 - runner.Report
    print(f"fuzz {report.target}: {report.cases} cases, {report.bug_count} bugs, "
          f"{report.cases_per_second:.0f} cases/s", file=sys.stderr, flush=True)


def _text(report) -> str:  # noqa: ANN001 - runner.Report
    if report.skipped:
        return f"{report.target}: skipped ({report.skipped})\n"
    refused = ", ".join(f"{k} {v}" for k, v in report.refused.most_common()) or "-"
    lines = [f"{report.target}: {report.cases} cases: {report.ok} ok, {sum(report.refused.values())} refused "
             f"({refused}), {report.bug_count} bugs; {report.seconds:.1f} s ({report.cpu_seconds:.1f} s CPU), "
             f"{report.cases_per_second:.0f} cases/s, "
             f"slowest case {report.slowest_case_seconds * 1e3:.0f} ms CPU, peak RSS {report.peak_rss_mib:.0f} MiB "
             f"(+{report.rss_growth_mib:.0f} MiB over the run)"]
    for bug in report.first_bugs:
        lines.append(f"  BUG x{report.bugs[bug.signature]} {bug.kind} at {bug.where}: {bug.error}")
        lines.append(f"    first reproducer (case {bug.case}): {bug.input}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import time

    # the harness stays out of the product and out of every other command's start-up
    from arm_cpu_filter.testing.fuzz import TARGETS, load_target
    from arm_cpu_filter.testing.fuzz.runner import Limits, run_target

    if args.cases < 1:
        raise InputError(f"--cases {args.cases}: expected at least 1")
    limits = Limits(case_seconds=args.case_seconds, hard_seconds=max(20.0, 10 * args.case_seconds))
    progress = None if args.quiet else _progress
    start = time.perf_counter()
    names = list(dict.fromkeys(args.target or TARGETS))
    for name in names:
        load_target(name)  # an unknown name fails before any target runs
    reports = []
    for name in names:
        report = run_target(name, args.cases, args.seed, limits, progress)
        reports.append(report)
        if args.format == "text":
            print(_text(report), end="", flush=True)
    total = time.perf_counter() - start
    bugs = sum(r.bug_count for r in reports)
    if args.format == "json":
        emit_json({"seed": args.seed, "cases_per_target": args.cases, "seconds": round(total, 1), "bugs": bugs,
                   "targets": [r.to_dict() for r in reports]})
    else:
        cases = sum(r.cases for r in reports)
        print(f"total: {cases} cases over {sum(1 for r in reports if not r.skipped)} targets, {bugs} bugs, "
              f"{total:.1f} s (seed {args.seed})")
    return EXIT_NOT_USABLE if bugs else EXIT_OK
