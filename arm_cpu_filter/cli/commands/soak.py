"""``soak``: a long run of the Nova plugin through Nova's real scheduler handlers (HostManager,
HostState, RequestSpec; a throwaway SQLite Nova) over a fleet whose host data changes during
the run (kernel upgrades, lowered fields, stale and vanished hosts), with every admission
checked against the engine run independently.  Prints requests served, wrong admissions,
memory (flat or not) and latency percentiles; exit status 1 on any wrong admission, a store
read the plugin missed, or memory that is not flat."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from arm_cpu_filter.cli import EXIT_NOT_USABLE, EXIT_OK, add_format
from arm_cpu_filter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("soak", help="long scheduling run through Nova's handlers, checked against the engine",
                       description=__doc__)
    p.add_argument("--hosts", type=int, default=10000, help="compute hosts (default: %(default)s)")
    p.add_argument("--requests", type=int, default=100000, help="scheduling requests (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the request mix and changes (default: %(default)s)")
    p.add_argument("--candidates", type=int, default=0, metavar="N",
                   help="hosts per request, a random sample as placement would return (default: every host)")
    p.add_argument("--pipeline", choices=("ours", "full"), default="ours",
                   help="ours: only ArmCpuModelFilter and ArmCpuWeigher enabled; full: also Nova's default "
                   "filters and every Nova weigher (default: %(default)s)")
    p.add_argument("--progress", action="store_true", help="a progress line on stderr every 5 %% of the requests")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # the harness stays out of the product and out of every other command's start-up; without
    # Nova, main() names the extra to install
    from arm_cpu_filter.testing.nova import soak

    def progress(done: int, seconds: float) -> None:
        print(f"soak: {done}/{args.requests} requests, {seconds:.0f} s", file=sys.stderr, flush=True)

    config = soak.SoakConfig(hosts=args.hosts, requests=args.requests, seed=args.seed, candidates=args.candidates,
                             pipeline=args.pipeline)
    result = soak.run(config, progress if args.progress else None)
    if args.format == "json":
        emit_json(result)
    else:
        print(render(result), end="")
    return EXIT_OK if result["ok"] else EXIT_NOT_USABLE


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def render(r: dict[str, Any]) -> str:
    """The figures as text (the JSON has them all)."""
    m = r["memory"]
    lines = [
        f"soak: {r['hosts']} hosts, {r['requests']} requests (seed {r['seed']}), {r['candidates_per_request']} "
        f"candidates per request; Nova filters {', '.join(r['nova_filters'])}; {len(r['nova_weighers'])} weigher(s)",
        f"requests: {_counts(r['requests_by_kind'])}",
        f"host changes: {_counts(r['host_changes_by_kind'])}; {r['distinct_snapshots_at_end']} distinct snapshots "
        f"at the end",
        f"plugin store reads: {r['plugin_store_reads']} ({r['extra_store_reads']} extra, {r['late_store_reads']} late) "
        f"over {r['simulated_minutes']} simulated minutes; hosts found stale at reads: {r['hosts_found_stale_at_reads']}",
        f"host decisions: {_counts(r['host_decisions'])}",
        f"requests admitted on some hosts and refused by the engine on others: "
        f"{r['requests_admitted_and_refused_by_engine']}; NoValidHost: {r['requests_no_valid_host']}",
        f"wrong admissions: {r['wrong_admissions']} (admitted although the engine or the data refuses: "
        f"{r['wrongly_admitted']}; refused although fresh and accepted: {r['wrongly_refused']})",
    ]
    lines += [f"  wrong: {e}" for e in r["wrong_examples"]]
    rows = []
    ranks = ("p50", "p90", "p99", "max")
    for kind, lat in r["latency_ms"].items():
        if lat["whole"]:
            rows.append([kind] + [lat["whole"][p] for p in ranks] + [lat["ours"][p] for p in ranks])
    lines.append("latency (ms): whole = Nova's get_filtered_hosts + get_weighed_hosts; ours = our filter and weigher in it")
    lines.append(table(rows, ["KIND", "WHOLE p50", "p90", "p99", "max", "OURS p50", "p90", "p99", "max"]).rstrip("\n"))
    if "rss_mb" in m:
        rss = m["rss_mb"]
        lines.append(f"memory: RSS {rss['first_quarter_max']} -> {rss['last_quarter_max']} MiB (largest sample, first vs "
                     f"last quarter after warm-up; growth {rss['growth']}, allowed {rss['allowance']}; peak "
                     f"{m['rss_mb_peak']}); allocated blocks {m['allocated_blocks']['growth_pct']:+} %: "
                     f"{'flat' if m['flat'] else 'NOT FLAT'}")
    lines.append(f"time (s): {_counts(r['seconds'])}")
    lines.append("verdict: " + ("OK" if r["ok"] else "FAILED: " + "; ".join(r["failures"])))
    return "\n".join(lines) + "\n"
