"""``demo``: the scheduling scenario on the bundled sample fleet, through Nova's real scheduler
(HostManager, HostState, RequestSpec, filter and weight handlers; a throwaway SQLite Nova
database; placement stand-in: every compute is a candidate).  Per request: the hosts admitted
with their weights, and why the others were refused."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import EXIT_OK, add_format
from arm_cpu_filter.cli.output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="schedule VMs on the sample fleet through Nova's real scheduler",
                       description=__doc__)
    p.add_argument("--scenario", metavar="FILE", help="scenario TOML (default: the bundled one)")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import shutil
    import tempfile
    from pathlib import Path

    # the harness stays out of the product and out of every other command's start-up
    from arm_cpu_filter.testing.nova import sandbox, scenario

    # the refusals are printed below; the filter's warnings would repeat them on stderr (for the
    # demo only: the level is put back, as main() may run in a longer-lived process)
    scheduler_log = logging.getLogger("arm_cpu_filter.scheduler")
    level = scheduler_log.level
    scheduler_log.setLevel(logging.ERROR)
    workdir = tempfile.mkdtemp(prefix="arm-cpu-filter-demo-")
    try:
        sb = sandbox.get(workdir)  # without Nova, main() names the extra to install
        plan = scenario.load(Path(args.scenario)) if args.scenario else scenario.load()
        results = scenario.run(plan, sb)
    finally:
        scheduler_log.setLevel(level)
        shutil.rmtree(workdir, ignore_errors=True)
    if args.format == "json":
        emit_json({"hosts": plan.hosts, "requests": results})
        return EXIT_OK
    print("fleet: " + ", ".join(f"{h} ({s})" for h, s in plan.hosts.items()))
    for i, r in enumerate(results, 1):
        print(f"\n[{i}] {r['title']}\n    CPU: {r['cpu']}")
        if r["admitted"]:
            for a in r["admitted"]:
                print(f"    + {a['host']:<10} weight {a['weight']:>7.3f}  (ArmCpuWeigher {a['arm_cpu_weight']:.3f})")
        else:
            print("    no host admitted (Nova: NoValidHost)")
        for host, why in r["refused"].items():
            print(f"    - {host:<10} {why}")
    return EXIT_OK
