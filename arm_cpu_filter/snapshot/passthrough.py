"""The CPU definition of a host-passthrough guest: the host's snapshot, named after the host."""

from __future__ import annotations

import dataclasses

from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot


def passthrough_definition(snapshot: HostSnapshot, host: str) -> CpuDefinition:
    """What a host-passthrough guest on ``host`` sees, named after the compute host (the agent
    records it per instance; the scheduler compares destinations against it)."""
    d = snapshot.as_definition()
    return dataclasses.replace(d, name=host, provenance={**d.provenance, "host-passthrough": host})
