"""The host agent (``arm-cpu-filter agent``), one round every ``agent_interval`` seconds:

0. compare the running kernel (``uname -r``) and boot id with those of the record it last
   published; if either changed (a reboot: new kernel, command line, firmware), withdraw the
   record *before* the slow KVM read, so the scheduler refuses the host until step 2 (and
   keeps refusing it if the read fails);
1. read this host's HostSnapshot (KVM reader; ``--from-file`` for hosts read elsewhere);
2. publish it to the store (content-addressed; the host record's ``taken_at`` is the
   heartbeat the scheduler judges staleness by, with this kernel and boot id);
3. list running libvirt domains; for each Nova instance (Nova's domain metadata) with a
   host-passthrough CPU that the store does not know yet, record the CPU it runs with: this
   host's snapshot as a definition (later moves are checked against it);
4. write a Nova provider-config YAML with a ``CUSTOM_ARM_CPU_MODEL_<NAME>`` trait per catalog
   model this host realizes, so flavors can require a model and placement prefilters.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arm_cpu_filter import logsafe
from arm_cpu_filter.agent.domains import PASSTHROUGH, list_domains
from arm_cpu_filter.agent.provider_config import write_provider_config
from arm_cpu_filter.engine.catalog import usable_models
from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.snapshot.passthrough import passthrough_definition
from arm_cpu_filter.store import HostRecord, HostStore

LOG = logsafe.install(logging.getLogger("arm_cpu_filter.agent"))
BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True)
class Boot:
    """The running kernel and boot: a snapshot read before a reboot may not describe this one."""

    kernel: str
    boot_id: str | None


def current_boot(boot_id_file: str = BOOT_ID) -> Boot:
    try:
        with open(boot_id_file, encoding="ascii") as fh:
            boot_id = fh.read(64).strip() or None
    except (OSError, UnicodeDecodeError):
        boot_id = None  # no procfs: the kernel release alone is compared
    return Boot(os.uname().release, boot_id)


def boot_change(record: HostRecord | None, boot: Boot) -> str | None:
    """Why ``record`` (published by this host's agent) no longer describes ``boot``; None when it
    still does, or nothing can be said (no record, published by hand, already withdrawn)."""
    if record is None or record.problem or record.kernel is None:
        return None
    if record.kernel != boot.kernel:
        return f"kernel changed from {record.kernel} to {boot.kernel}"
    if record.boot_id and boot.boot_id and record.boot_id != boot.boot_id:
        return (f"host rebooted (boot id {record.boot_id} -> {boot.boot_id}; kernel command line, "
                "firmware or KVM settings may differ)")
    return None


def withdraw_if_rebooted(store: HostStore, host: str, boot: Boot) -> str | None:
    """Withdraw ``host``'s record when it was published before a reboot; returns why, or None."""
    why = boot_change(store.host(host), boot)
    if why is not None:
        store.withdraw(host, why)
    return why


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


def run_once(
    store: HostStore,
    snapshot: HostSnapshot,
    host: str,
    libvirt_uri: str | None = None,
    provider_config: str | None = None,
    boot: Boot | None = None,
) -> RoundReport:
    """Publish ``snapshot`` (read on ``boot``), record new instances, write the provider config."""
    record = store.publish(snapshot, host=host, kernel=boot.kernel if boot else None,
                           boot_id=boot.boot_id if boot else None)
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


def run_round(
    store: HostStore,
    read: Callable[[], HostSnapshot],
    host: str,
    libvirt_uri: str | None = None,
    provider_config: str | None = None,
) -> RoundReport:
    """One full round: withdraw data published before a reboot, read (slow), publish."""
    boot = current_boot()
    why = withdraw_if_rebooted(store, host, boot)
    try:
        snapshot = read()
    except ArmCpuFilterError as exc:
        if why:  # say what the scheduler sees now, in the same line
            raise ArmCpuFilterError(f"{exc} (the CPU data of {host} stays withdrawn: {why})") from None
        raise
    report = run_once(store, snapshot, host, libvirt_uri, provider_config, boot)
    if why:
        report.notes.append(f"withdrew the previous CPU data before reading: {why}")
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
            report = run_round(store, read, host, libvirt_uri, provider_config)
            LOG.info("published %s as %s; recorded %d new instance(s); %d usable model(s)",
                     host, report.fingerprint[:12], len(report.recorded), len(report.models))
            for note in report.notes:
                LOG.warning("%s", note)
        except ArmCpuFilterError as exc:
            LOG.error("agent round failed: %s", exc)
        except Exception as exc:  # a bug must not stop the heartbeat for good: the next round may work
            LOG.error("agent round failed: internal error: %s: %s", type(exc).__name__, exc)
        done += 1
        if rounds is None or done < rounds:
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
