"""Turning command-line arguments into snapshots and CPU definitions."""

from __future__ import annotations

import os

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.snapshot.files import load_definition, load_snapshot


def snapshot_arg(path: str) -> HostSnapshot:
    """A snapshot file, or the name of a bundled sample host (``graviton3``...)."""
    if os.path.exists(path) or os.sep in path or path.endswith(".json"):
        return load_snapshot(path)
    from arm_cpu_filter.samples import sample_host

    return sample_host(path)


def definition_arg(spec: str | None = None, path: str | None = None) -> CpuDefinition:
    """``--definition FILE`` (a definition or snapshot file) or ``MODEL[,PROP=VAL...]``."""
    if path:
        return load_definition(path)
    if not spec:
        raise InputError("give a CPU model (MODEL[,PROP=VAL...]) or --definition FILE")
    from arm_cpu_filter.models import realize

    return realize(spec)
