"""A throwaway but real Nova scheduler: Nova's own database migrations on SQLite (API and
cell databases), cell mappings, compute services and compute nodes, a ``nova.conf`` that
enables our filter and weighers beside Nova's, and Nova's ``HostManager`` with its filter
and weight handlers.  Used by ``arm-cpu-filter demo``, the tests and the bench.

The one stand-in is placement (no placement service runs here): ``host_states()`` asks the
HostManager for every compute node as if placement had returned all of them as allocation
candidates -- what it answers for a fleet with room and no required traits.

Nova's configuration is process-global, so there is one sandbox per process (``get()``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid as uuidlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arm_cpu_filter.snapshot import HostSnapshot

FILTER = "arm_cpu_filter.scheduler.filters.ArmCpuModelFilter"
WEIGHER = "arm_cpu_filter.scheduler.weighers.ArmCpuWeigher"
#: Nova's own filters that run before ours (as in a default deployment)
NOVA_FILTERS = ("ComputeFilter", "ImagePropertiesFilter")
CELL1 = "c0ffee00-0000-4000-8000-000000000001"


def nova_conf(workdir: Path, store_url: str) -> str:
    """The nova.conf of the sandbox (also a worked example of the operator snippet)."""
    filters = ",".join(NOVA_FILTERS + ("ArmCpuModelFilter",))
    return f"""[DEFAULT]
host = arm-cpu-filter-sandbox
transport_url = fake:/
# services were "up" when created; keep them up however long a test session runs
service_down_time = 31536000
[oslo_messaging_notifications]
driver = noop
[api_database]
connection = sqlite:///{workdir}/nova_api.sqlite
[database]
connection = sqlite:///{workdir}/nova_cell1.sqlite
[filter_scheduler]
available_filters = nova.scheduler.filters.all_filters
available_filters = {FILTER}
enabled_filters = {filters}
weight_classes = nova.scheduler.weights.all_weighers,{WEIGHER}
track_instance_changes = False
[arm_cpu_filter]
store_url = {store_url}
store_refresh_interval = 0
"""


@dataclass
class Outcome:
    """One scheduling request through Nova's handlers."""

    admitted: list[tuple[str, float]]  # (host, total weight), best first
    refused: dict[str, str]  # host -> why (first filter that refused it, with our reason)
    by_filter: dict[str, list[str]] = field(default_factory=dict)  # hosts each filter removed
    arm_scores: dict[str, float] = field(default_factory=dict)  # ArmCpuWeigher's part of each weight


class Sandbox:
    def __init__(self, workdir: str | os.PathLike[str] | None = None) -> None:
        if workdir is None:  # our own scratch directory: removed when the process exits
            workdir = tempfile.mkdtemp(prefix="arm-cpu-filter-nova-")
            atexit.register(shutil.rmtree, workdir, True)
        self.workdir = Path(workdir)
        self.store_url = f"file://{self.workdir}/store"
        self.compute_uuids: dict[str, str] = {}
        self._started = False

    # -- set-up --------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._started:
            return self
        warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        from nova import config, context, objects
        from nova.db import migration

        self.workdir.mkdir(parents=True, exist_ok=True)
        conf_path = self.workdir / "nova.conf"
        conf_path.write_text(nova_conf(self.workdir, self.store_url))
        objects.register_all()
        config.parse_args(["nova-scheduler"], default_config_files=[str(conf_path)])
        _quiet_logs()
        migration.db_sync(database="api")
        migration.db_sync(database="main")
        self.ctxt = context.get_admin_context()
        objects.CellMapping(self.ctxt, uuid=objects.CellMapping.CELL0_UUID, name="cell0",
                            transport_url="none:///", database_connection="sqlite://").create()
        self.cell = objects.CellMapping(self.ctxt, uuid=CELL1, name="cell1", transport_url="none:///",
                                        database_connection=f"sqlite:///{self.workdir}/nova_cell1.sqlite")
        self.cell.create()
        self._started = True
        return self

    def add_computes(self, names: list[str]) -> None:
        """Register nova-compute services and aarch64 KVM compute nodes for ``names``."""
        from nova import context, objects

        with context.target_cell(self.ctxt, self.cell) as cctxt:
            for name in names:
                if name in self.compute_uuids:
                    continue
                service = objects.Service(cctxt, host=name, binary="nova-compute", topic="compute",
                                          report_count=1, disabled=False)
                service.create()
                node = objects.ComputeNode(cctxt, **compute_node_fields(name), service_id=service.id)
                node.create()
                objects.HostMapping(self.ctxt, host=name, cell_mapping=self.cell).create()
                self.compute_uuids[name] = node.uuid

    def publish(self, hosts: Mapping[str, HostSnapshot], taken_at: float | None = None) -> None:
        """Publish each snapshot under its compute host name (what the agents would do)."""
        from arm_cpu_filter.store import open_store

        store = open_store(self.store_url)
        for name, snapshot in hosts.items():
            store.publish(snapshot, host=name, taken_at=taken_at)

    @property
    def host_manager(self) -> Any:
        hm = getattr(self, "_host_manager", None)
        if hm is None:
            from nova.scheduler import host_manager

            hm = self._host_manager = host_manager.HostManager()
        return hm

    # -- requests ------------------------------------------------------------------------
    def request_spec(self, extra_specs: Mapping[str, str] | None = None, *, instance_uuid: str | None = None,
                     ignore_hosts: list[str] | None = None, name: str = "m1.arm", resize: bool = False) -> Any:
        """A RequestSpec; ``resize``: a resize or cold migration, marked the way Nova's
        ``API.resize`` marks it (:mod:`arm_cpu_filter.scheduler.move_kind`)."""
        from nova import objects

        flavor = objects.Flavor(name=name, flavorid=name, memory_mb=2048, vcpus=2, root_gb=20,
                                ephemeral_gb=0, swap=0, rxtx_factor=1.0, vcpu_weight=0, disabled=False,
                                is_public=True, extra_specs=dict(extra_specs or {}))
        image = objects.ImageMeta.from_dict({"properties": {"hw_architecture": "aarch64"}})
        return objects.RequestSpec(
            self.ctxt, flavor=flavor, image=image, num_instances=1,
            instance_uuid=instance_uuid or str(uuidlib.uuid4()), ignore_hosts=ignore_hosts,
            scheduler_hints={}, project_id="demo", user_id="demo", availability_zone=None,
            force_hosts=None, force_nodes=None, retry=None,
            requested_destination=objects.Destination(allow_cross_cell_move=False) if resize else None,
            instance_group=None, limits=objects.SchedulerLimits(), is_bfv=False,
        )

    def host_states(self, spec: Any) -> list[Any]:
        """HostStates from Nova's database for every compute (placement stand-in: all are candidates)."""
        return list(self.host_manager.get_host_states_by_uuids(self.ctxt, list(self.compute_uuids.values()), spec))

    def schedule(self, spec: Any) -> Outcome:
        """Nova's filtering and weighing of every compute for ``spec``, with reasons."""
        from arm_cpu_filter.scheduler import state
        from arm_cpu_filter.scheduler.fleet import explain, explain_move

        hm = self.host_manager
        states = self.host_states(spec)
        # Nova's own ignore_hosts handling, then each enabled filter in turn (as get_filtered_hosts)
        ignored = {h.lower() for h in (spec.ignore_hosts or [])}
        remaining = [s for s in states if s.host.lower() not in ignored]
        refused = {s.host: "source host (ignore_hosts)" for s in states if s.host.lower() in ignored}
        by_filter: dict[str, list[str]] = {}
        for flt in hm.enabled_filters:
            name = type(flt).__name__
            kept = list(hm.filter_handler.get_filtered_objects([flt], remaining, spec) or [])
            gone = sorted({s.host for s in remaining} - {s.host for s in kept})
            by_filter[name] = gone
            for host in gone:
                refused[host] = name
            remaining = kept
        request = state.request_for(spec)
        fleet = state.fleet()
        for host, who in list(refused.items()):
            if who != "ArmCpuModelFilter":
                continue
            data = fleet.host(host)
            if request.problem:
                refused[host] = request.problem
            elif data.snapshot is None:
                refused[host] = data.problem or "no data"
            elif request.vm is not None:
                refused[host] = explain_move(request.vm, data.snapshot, request.live)
            elif request.definition is not None:
                refused[host] = explain(request.definition, data.snapshot)
        weighed = hm.get_weighed_hosts(remaining, spec)
        admitted = [(w.obj.host, round(float(w.weight), 4)) for w in weighed]
        ours = [w for w in hm.weighers if type(w).__name__ == "ArmCpuWeigher"]
        scores = {}
        if ours and remaining:
            from nova.scheduler.weights import WeighedHost

            raw = ours[0].weigh_objects([WeighedHost(s, 0.0) for s in remaining], spec)
            scores = {s.host: round(float(x), 4) for s, x in zip(remaining, raw)}
        return Outcome(admitted, dict(sorted(refused.items())), by_filter, scores)


def compute_node_fields(name: str) -> dict[str, Any]:
    """An aarch64 KVM compute node with room for any demo flavor."""
    from nova import objects

    return dict(
        host=name, hypervisor_hostname=name, hypervisor_type="QEMU", hypervisor_version=8002000,
        vcpus=64, memory_mb=262144, local_gb=2000, vcpus_used=0, memory_mb_used=0, local_gb_used=0,
        free_ram_mb=262144, free_disk_gb=2000, current_workload=0, running_vms=0, disk_available_least=2000,
        cpu_info="{}", host_ip="192.0.2.10",
        supported_hv_specs=[objects.HVSpec(arch="aarch64", hv_type="kvm", vm_mode="hvm")],
        metrics="[]", stats={}, numa_topology=None, pci_device_pools=None,
        cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0, disk_allocation_ratio=1.0,
    )


def _quiet_logs() -> None:
    """Nova and oslo log set-up chatter at INFO; the sandbox only wants warnings."""
    import logging

    for name in ("nova", "oslo_db", "alembic", "oslo.messaging", "stevedore"):
        logging.getLogger(name).setLevel(logging.WARNING)


_SANDBOX: Sandbox | None = None


def get(workdir: str | os.PathLike[str] | None = None) -> Sandbox:
    """The process's sandbox, started on first use."""
    global _SANDBOX
    if _SANDBOX is None:
        _SANDBOX = Sandbox(workdir).start()
    return _SANDBOX
