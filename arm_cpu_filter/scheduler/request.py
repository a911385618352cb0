"""What CPU a scheduling request asks for, from flavor extra specs and the instance's record.

Extra specs (namespace ``arm_cpu``): ``arm_cpu:model=<name>`` (a named model; implies
``mode=custom``), ``arm_cpu:<property>=<value>`` (overrides on the model),
``arm_cpu:mode=host-passthrough|custom``.  No ``arm_cpu`` spec at all means host-passthrough,
the aarch64 default of Nova's libvirt driver.

The CPU definition checked against candidates:
- named model: the realized model with its overrides (boots and moves alike);
- host-passthrough, instance recorded by the agent: the definition it recorded when it first
  saw the domain (the CPU of the host the instance first booted on, what the guest still sees);
- host-passthrough move of an instance not (yet) recorded: the snapshot of the source host,
  which Nova puts first in ``RequestSpec.ignore_hosts`` for live migration, evacuation and
  resize (unless resizing to the same host is allowed);
- host-passthrough boot: none -- every host with fresh data passes; the weigher steers.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def _store_failed(label: str, exc: ArmCpuFilterError) -> CpuRequest:
    return CpuRequest(label, problem=str(exc), store_error=isinstance(exc, StoreError))


def resolve(
    fleet: Fleet,
    extra_specs: Mapping[str, Any] | None,
    instance_uuid: str | None = None,
    ignore_hosts: Sequence[str] | None = None,
) -> CpuRequest:
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
    if spec.model is not None:
        try:
            definition = realize_model(spec.model)
        except ArmCpuFilterError as exc:
            return CpuRequest(spec.model, model=spec.model, problem=f"CPU model {spec.model}: {exc}")
        return CpuRequest(spec.model, definition, spec.model, move, source)
    if record is not None:
        try:
            definition = fleet.store.definition(record.fingerprint)
        except ArmCpuFilterError as exc:
            return _store_failed(f"instance {record.uuid}", exc)
        where = f" (first seen on {definition.name})" if definition.name else ""
        return CpuRequest(f"host-passthrough instance {record.uuid}{where}", definition, None, True, source)
    if move and source:
        try:
            snapshot = fleet.store.host_snapshot(source)
        except ArmCpuFilterError as exc:
            return _store_failed(f"host-passthrough move from {source}", exc)
        if snapshot is None:
            return CpuRequest(f"host-passthrough move from {source}", problem=(
                f"host-passthrough instance {instance_uuid} has no recorded CPU and its source host {source} "
                f"has no published snapshot"))
        return CpuRequest(f"host-passthrough move from {source}", snapshot.as_definition(), None, True, source)
    return CpuRequest("host-passthrough boot")
