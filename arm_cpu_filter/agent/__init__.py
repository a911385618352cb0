"""The host agent (``arm-cpu-filter agent``), one round every ``agent_interval`` seconds:

1. read this host's HostSnapshot (KVM reader; ``--from-file`` for hosts read elsewhere);
2. publish it to the store (content-addressed; the host record's ``taken_at`` is the
   heartbeat the scheduler judges staleness by);
3. list running libvirt domains; for each Nova instance (Nova's domain metadata) with a
   host-passthrough CPU that the store does not know yet, record the CPU it runs with: this
   host's snapshot as a definition (later moves are checked against it);
4. write a Nova provider-config YAML with a ``CUSTOM_ARM_CPU_MODEL_<NAME>`` trait per catalog
   model this host realizes, so flavors can require a model and placement prefilters.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arm_cpu_filter.agent.domains import PASSTHROUGH, list_domains
from arm_cpu_filter.agent.provider_config import write_provider_config
from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.scheduler.catalog import usable_models
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.store import HostStore

LOG = logging.getLogger("arm_cpu_filter.agent")


@dataclass
class RoundReport:
    host: str
    fingerprint: str
    recorded: list[str] = field(default_factory=list)  # instances recorded this round
    known: list[str] = field(default_factory=list)  # Nova instances already in the store
    skipped: dict[str, str] = field(default_factory=dict)  # domain -> why not recorded
    models: list[str] = field(default_factory=list)
    provider_config: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def passthrough_definition(snapshot: HostSnapshot, host: str) -> CpuDefinition:
    """What a host-passthrough guest on ``host`` sees, named after the compute host."""
    d = snapshot.as_definition()
    return dataclasses.replace(d, name=host, provenance={**d.provenance, "host-passthrough": host})


def run_once(
    store: HostStore,
    snapshot: HostSnapshot,
    host: str,
    libvirt_uri: str | None = None,
    provider_config: str | None = None,
) -> RoundReport:
    record = store.publish(snapshot, host=host)
    report = RoundReport(host, record.fingerprint)
    if libvirt_uri:
        try:
            domains = list_domains(libvirt_uri)
        except ArmCpuFilterError as exc:
            report.notes.append(str(exc))
            domains = []
        definition = passthrough_definition(snapshot, host)
        for dom in domains:
            if dom.instance is None:
                report.skipped[dom.name] = "not a Nova instance"
            elif dom.cpu_mode != PASSTHROUGH:
                report.skipped[dom.name] = f"CPU mode {dom.cpu_mode or 'unset'} (the flavor defines its CPU)"
            elif store.record_instance(dom.instance, definition, host):
                report.recorded.append(dom.instance)
            else:
                report.known.append(dom.instance)
    report.models = usable_models(snapshot)
    if provider_config:
        write_provider_config(provider_config, report.models, host)
        report.provider_config = provider_config
    return report


def run(
    store: HostStore,
    read: Callable[[], HostSnapshot],
    host: str,
    interval: float,
    libvirt_uri: str | None = None,
    provider_config: str | None = None,
    rounds: int | None = None,
) -> None:
    """Rounds forever (or ``rounds`` times); a failed round is logged and retried next time."""
    done = 0
    while rounds is None or done < rounds:
        started = time.monotonic()
        try:
            report = run_once(store, read(), host, libvirt_uri, provider_config)
            LOG.info("published %s as %s; recorded %d new instance(s); %d usable model(s)",
                     host, report.fingerprint[:12], len(report.recorded), len(report.models))
        except ArmCpuFilterError as exc:
            LOG.error("agent round failed: %s", exc)
        done += 1
        if rounds is None or done < rounds:
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
