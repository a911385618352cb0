"""Turning command-line arguments into snapshots and CPU definitions."""

from __future__ import annotations

import os

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.snapshot.files import load_definition, load_snapshot


def names_a_file(arg: str) -> bool:
    """Is a command-line argument a file path rather than a name (a sample host, a CPU model)?
    An existing path, one with a directory part, or a ``*.json`` name; so a missing file is
    still read, and fails as a missing file rather than as an unknown name."""
    return os.path.exists(arg) or os.sep in arg or arg.endswith(".json")


def snapshot_arg(path: str) -> HostSnapshot:
    """A snapshot file, or the name of a bundled sample host (``graviton3``...)."""
    if names_a_file(path):
        return load_snapshot(path)
    from arm_cpu_filter.samples import sample_host

    return sample_host(path)


def definition_arg(spec: str | None = None, path: str | None = None) -> CpuDefinition:
    """``--definition FILE`` (a definition or snapshot file) or ``MODEL[,PROP=VAL...]``; a
    ``spec`` that names a file is read as a definition.  Both at once is an error: two CPUs."""
    if spec and path:
        raise InputError(f"two CPUs given ({spec} and --definition {path}): give one")
    if spec and names_a_file(spec):
        spec, path = None, spec
    if path:
        return load_definition(path)
    if not spec:
        raise InputError("give a CPU model (MODEL[,PROP=VAL...]) or --definition FILE")
    from arm_cpu_filter.models import realize

    return realize(spec)
