"""Which named models a host can realize: the agent's placement traits and the weigher's
tightest fit both ask this of the whole catalog."""

from __future__ import annotations

import functools

from arm_cpu_filter.engine.check import accepts
from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.models import catalog, realize
from arm_cpu_filter.models.registry import catalog_key
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot


def model_definitions() -> dict[str, CpuDefinition]:
    """Every catalog model (bundled and site), realized (once per catalog state)."""
    return _definitions(catalog_key())


@functools.lru_cache(maxsize=8)
def _definitions(key: tuple[str, int | None]) -> dict[str, CpuDefinition]:
    out = {}
    for name in sorted(catalog()):
        try:
            out[name] = realize(name)
        except ArmCpuFilterError:  # a model that cannot be realized offers no trait
            continue
    return out


def usable_models(snapshot: HostSnapshot) -> list[str]:
    """Names of the catalog models ``snapshot``'s KVM would realize."""
    return [name for name, d in model_definitions().items() if accepts(d, snapshot)]
