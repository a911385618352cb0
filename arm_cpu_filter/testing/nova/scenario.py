"""The scheduling scenario (``data/scenario.toml``) run through Nova's real handlers:
per request, the hosts admitted with their weights and why the others were refused.  The hosts
publish the samples as format 2 with the synthetic ``kvm`` facts of
:func:`arm_cpu_filter.testing.vmfacts.with_kernel_facts` (moves need them)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arm_cpu_filter.errors import InputError

SCENARIO = Path(__file__).with_name("data") / "scenario.toml"


@dataclass
class Request:
    title: str
    extra_specs: dict[str, str] = field(default_factory=dict)
    instance: str | None = None
    started_on: str | None = None
    #: a resize of the instance (a cold move) instead of a live migration
    resize: bool = False


@dataclass
class Scenario:
    hosts: dict[str, str]  # compute host -> sample name
    requests: list[Request]


def load(path: Path = SCENARIO) -> Scenario:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"scenario {path}: {exc}") from None
    hosts = {str(k): str(v) for k, v in data.get("hosts", {}).items()}
    requests = []
    for i, r in enumerate(data.get("requests", [])):
        unknown = set(r) - {"title", "extra_specs", "instance", "started_on", "resize"}
        if unknown or "title" not in r:
            raise InputError(f"scenario {path}: request {i + 1}: needs title; unknown keys {sorted(unknown)}")
        if r.get("started_on") and r["started_on"] not in hosts:
            raise InputError(f"scenario {path}: request {i + 1}: started_on {r['started_on']!r} is not a host")
        requests.append(Request(r["title"], {str(k): str(v) for k, v in r.get("extra_specs", {}).items()},
                                r.get("instance"), r.get("started_on"), bool(r.get("resize", False))))
    return Scenario(hosts, requests)


def run(scenario: Scenario | None = None, sandbox: Any = None) -> list[dict[str, Any]]:
    """Run every request; returns one result dict per request (also the demo's JSON)."""
    from arm_cpu_filter.samples import sample_host
    from arm_cpu_filter.scheduler import state
    from arm_cpu_filter.snapshot.passthrough import passthrough_definition
    from arm_cpu_filter.store import open_store
    from arm_cpu_filter.testing.nova import sandbox as sandbox_mod
    from arm_cpu_filter.testing.vmfacts import with_kernel_facts

    scenario = scenario or load()
    sb = sandbox or sandbox_mod.get()
    snapshots = {host: with_kernel_facts(sample_host(sample)) for host, sample in scenario.hosts.items()}
    sb.add_computes(list(snapshots))
    sb.publish(snapshots)
    store = open_store(sb.store_url)
    results = []
    for req in scenario.requests:
        ignore = None
        if req.instance and req.started_on:
            if "arm_cpu:model" not in req.extra_specs:  # what the agent records for a passthrough domain
                store.record_instance(req.instance, passthrough_definition(snapshots[req.started_on], req.started_on),
                                      req.started_on)
            ignore = [req.started_on]  # Nova excludes the source host of a move
        spec = sb.request_spec(req.extra_specs, instance_uuid=req.instance, ignore_hosts=ignore, resize=req.resize)
        outcome = sb.schedule(spec)
        request = state.request_for(spec)
        results.append({
            "title": req.title,
            "extra_specs": req.extra_specs,
            "cpu": request.label,
            "admitted": [{"host": h, "weight": w, "arm_cpu_weight": outcome.arm_scores.get(h, 0.0)}
                         for h, w in outcome.admitted],
            "refused": outcome.refused,
        })
    return results
