"""Shared test helpers: build HostSnapshots and definitions from compact register maps."""

from __future__ import annotations

import pytest

from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot

ALL_FEATURES = ["psci-0.2", "pmu-v3", "sve", "ptrauth-address", "ptrauth-generic"]


def make_host(registers: dict[str, int], masks: dict[str, int] | None, *, kernel: str = "6.12.95",
              features: list[str] | None = None, impl_writable: bool = False, host: str = "h") -> HostSnapshot:
    return HostSnapshot.from_dict({
        "format": 1, "host": host, "kernel": kernel,
        "vcpu_features": ALL_FEATURES if features is None else features,
        "registers": {k: f"0x{v:016x}" for k, v in registers.items()},
        **({"writable_masks": {k: f"0x{v:016x}" for k, v in masks.items()}} if masks is not None else {}),
        "capabilities": {"writable_impl_id_regs": impl_writable},
    })


def make_def(registers: dict[str, int], features: list[str] | None = None) -> CpuDefinition:
    return CpuDefinition(dict(registers), frozenset(ALL_FEATURES if features is None else features))


@pytest.fixture
def host_factory():
    return make_host
