"""What CPU a scheduling request asks for, from flavor extra specs and the instance's record.

Extra specs (namespace ``arm_cpu``): ``arm_cpu:model=<name>`` (a named model; implies
``mode=custom``), ``arm_cpu:<property>=<value>`` (overrides on the model),
``arm_cpu:mode=host-passthrough|custom``.  No ``arm_cpu`` spec at all means host-passthrough,
the aarch64 default of Nova's libvirt driver.

Boots: the definition is checked against candidates (``engine.accepts``):
- named model: the realized model with its overrides;
- host-passthrough boot: none -- every host with fresh data passes; the weigher steers.

Moves (an instance the agent recorded, or ``RequestSpec.ignore_hosts`` set): the VM is moved
to each candidate with ``engine.migrate``, live or cold (:mod:`arm_cpu_filter.scheduler.move_kind`).
The source is the recorded instance's host, else ``ignore_hosts[0]`` (Nova puts the source
first for live migration, evacuation and resize).  The VM's CPU:
- named model: the realized model, started from it (``defined_vm``);
- host-passthrough, instance recorded by the agent: the definition it recorded when it first
  saw the domain (the CPU of the host the instance first booted on, what the guest still sees),
  started ``-cpu host`` (``running_vm(..., passthrough=True)``);
- host-passthrough, not (yet) recorded: the source host's CPU (``passthrough_vm``).
A live move also needs what the VM's saved state holds: the source's register list and limits,
from the source's fresh data -- a source without it makes a live move fail closed.  A cold move
starts a new QEMU: the CPU alone decides (for an unrecorded VM, the source's last published
snapshot, fresh or not).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from arm_cpu_filter.engine.migrate import RunningVm, passthrough_vm, running_vm, stopped_vm
from arm_cpu_filter.errors import ArmCpuFilterError, InputError
from arm_cpu_filter.models import realize
from arm_cpu_filter.scheduler.fleet import Fleet
from arm_cpu_filter.snapshot import CpuDefinition
from arm_cpu_filter.store import StoreError

NAMESPACE = "arm_cpu"
PASSTHROUGH, CUSTOM = "host-passthrough", "custom"
MODES = (PASSTHROUGH, CUSTOM)
_RESERVED = ("model", "mode")


@dataclass(frozen=True, slots=True)
class CpuSpec:
    """The CPU a flavor asks for."""

    mode: str
    #: ``MODEL[,PROP=VALUE...]`` for :func:`arm_cpu_filter.models.realize`, None for passthrough
    model: str | None = None

    @classmethod
    def from_extra_specs(cls, extra_specs: Mapping[str, Any] | None) -> CpuSpec:
        prefix = NAMESPACE + ":"
        ours = {k[len(prefix):]: str(v).strip() for k, v in (extra_specs or {}).items() if k.startswith(prefix)}
        model = ours.pop("model", None)
        mode = ours.pop("mode", None)
        if mode is not None and mode not in MODES:
            raise InputError(f"{prefix}mode={mode!r}: expected one of {', '.join(MODES)}")
        for key, value in ours.items():
            if not key or not value or "," in value or "=" in value:
                raise InputError(f"{prefix}{key}={value!r}: expected {prefix}<property>=<value> without ',' or '='")
        if model is None:
            if mode == CUSTOM:
                raise InputError(f"{prefix}mode=custom needs {prefix}model")
            if ours:
                raise InputError(f"{prefix}{sorted(ours)[0]} overrides a model property, but the flavor sets no "
                                 f"{prefix}model")
            return cls(PASSTHROUGH)
        if mode == PASSTHROUGH:
            raise InputError(f"{prefix}model={model} contradicts {prefix}mode=host-passthrough")
        if not model or "," in model or "=" in model:
            raise InputError(f"{prefix}model={model!r}: expected a model name")
        return cls(CUSTOM, ",".join([model] + [f"{k}={v}" for k, v in sorted(ours.items())]))


@functools.lru_cache(maxsize=256)
def realize_model(spec: str) -> CpuDefinition:
    """The definition of ``MODEL[,PROP=VALUE...]`` (cached: models never change in a process)."""
    return realize(spec)


@dataclass(frozen=True, slots=True)
class CpuRequest:
    """One scheduling request, resolved once and shared by the filter and the weighers."""

    label: str
    #: the CPU to check against candidates; None for a host-passthrough boot
    definition: CpuDefinition | None = None
    model: str | None = None
    move: bool = False
    source_host: str | None = None
    #: set when the request cannot be resolved: every host fails closed with this reason
    problem: str | None = None
    #: the problem came from reading the store (worth re-reading it), not from the request
    store_error: bool = False
    #: a move: the VM as it runs on its source, which ``engine.migrate`` moves to each candidate
    vm: RunningVm | None = None
    #: a move whose saved state travels (live migration); False: a new QEMU starts (cold)
    live: bool = False


def _store_failed(label: str, exc: ArmCpuFilterError) -> CpuRequest:
    return CpuRequest(label, problem=str(exc), store_error=isinstance(exc, StoreError))


def resolve(
    fleet: Fleet,
    extra_specs: Mapping[str, Any] | None,
    instance_uuid: str | None = None,
    ignore_hosts: Sequence[str] | None = None,
    cold: bool = False,
) -> CpuRequest:
    """The request's CPU; ``cold``: a resize, cold migration or evacuation
    (:func:`arm_cpu_filter.scheduler.move_kind.cold_move`).  A move is live unless it is
    cold or has no ``ignore_hosts`` (an unshelve; see ``move_kind``)."""
    try:
        spec = CpuSpec.from_extra_specs(extra_specs)
    except ArmCpuFilterError as exc:
        return CpuRequest("invalid flavor", problem=f"flavor extra specs: {exc}")
    record = None
    if instance_uuid:
        try:
            record = fleet.store.instance(instance_uuid)
        except ArmCpuFilterError as exc:
            return _store_failed(f"instance {instance_uuid}", exc)
    source = (record.host if record is not None else None) or (ignore_hosts[0] if ignore_hosts else None)
    move = record is not None or bool(ignore_hosts)
    live = move and bool(ignore_hosts) and not cold
    if spec.model is not None:
        try:
            definition = realize_model(spec.model)
        except ArmCpuFilterError as exc:
            return CpuRequest(spec.model, model=spec.model, problem=f"CPU model {spec.model}: {exc}")
        if not move:
            return CpuRequest(spec.model, definition, spec.model)
        return _move(fleet, CpuRequest(spec.model, definition, spec.model, True, source, live=live), False)
    if record is not None:
        try:
            definition = fleet.store.definition(record.fingerprint)
        except ArmCpuFilterError as exc:
            return _store_failed(f"instance {record.uuid}", exc)
        where = f" (first seen on {definition.name})" if definition.name else ""
        label = f"host-passthrough instance {record.uuid}{where}"
        return _move(fleet, CpuRequest(label, definition, None, True, source, live=live), True)
    if move and source:
        label = f"host-passthrough move from {source}"
        if live:  # the source's fresh data is checked by _move
            return _move(fleet, CpuRequest(label, None, None, True, source, live=True), True)
        try:  # a cold move needs only the CPU: the source's last published snapshot, fresh or not
            snapshot = fleet.store.host_snapshot(source)
        except ArmCpuFilterError as exc:
            return _store_failed(label, exc)
        if snapshot is None:
            return CpuRequest(label, problem=(
                f"host-passthrough instance {instance_uuid} has no recorded CPU and its source host {source} "
                f"has no published snapshot"))
        vm = passthrough_vm(snapshot)
        return CpuRequest(label, vm.definition, None, True, source, vm=vm, live=False)
    return CpuRequest("host-passthrough boot")


def _move(fleet: Fleet, request: CpuRequest, passthrough: bool) -> CpuRequest:
    """``request`` with its VM: as it runs on the source's fresh snapshot for a live move (else
    the move fails closed: the VM's register list and limits are unknown), its CPU alone for a
    cold one; ``request.definition`` None: an unrecorded host-passthrough VM (the source's CPU)."""
    definition, source = request.definition, request.source_host
    if not request.live:  # the caller resolves a cold unrecorded move (definition set)
        if definition is None:
            return replace(request, problem="cold move without a CPU to check")
        return replace(request, vm=stopped_vm(definition, passthrough, source or ""))
    data = fleet.host(source) if source else None
    if data is None or data.snapshot is None:
        why = data.problem if data is not None else "Nova named no source host"
        return replace(request, problem=f"live migration from {source}: the source's CPU data is unusable ({why}), "
                                        "so the VM's register list and limits are unknown")
    if definition is None:
        vm = passthrough_vm(data.snapshot)
        return replace(request, definition=vm.definition, vm=vm)
    return replace(request, vm=running_vm(definition, data.snapshot, passthrough))
