"""Which named models a host can realize (placement traits, the tightest-fit weigher)."""

from __future__ import annotations

import functools
import re

from arm_cpu_filter.engine import check
from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot

TRAIT_PREFIX = "CUSTOM_ARM_CPU_MODEL_"


@functools.cache
def model_definitions() -> dict[str, CpuDefinition]:
    """Every catalog model, realized (models never change within a process)."""
    from arm_cpu_filter.models import catalog, realize

    out = {}
    for name in sorted(catalog()):
        try:
            out[name] = realize(name)
        except ArmCpuFilterError:  # a model that cannot be realized offers no trait
            continue
    return out


def usable_models(snapshot: HostSnapshot) -> list[str]:
    """Names of the catalog models ``snapshot``'s KVM would realize."""
    return [name for name, d in model_definitions().items() if check(d, snapshot).usable]


def trait_name(model: str) -> str:
    """``grace-v1`` -> ``CUSTOM_ARM_CPU_MODEL_GRACE_V1`` (placement: ``CUSTOM_[A-Z0-9_]+``)."""
    return TRAIT_PREFIX + re.sub(r"[^A-Z0-9]", "_", model.upper())
