"""Per-boot jobs beyond the corpus: the speed figures of issue 4 measured inside the emulated
host (snapshot read; engine check vs. asking KVM by trial) and the agent's least privilege
(a non-root user in the kvm group reads the same snapshot; without the group, the documented
error). Run last in each boot: the least-privilege job hands /dev/kvm to the kvm group."""

from __future__ import annotations

from arm_cpu_filter.engine import check
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot

from . import corpus

READS = 5


def timing_definitions(kernel: str, host: str) -> dict[str, dict]:
    """Two catalog models for the side-by-side timing: the first the engine accepts on `host`
    and the first it refuses (either may be missing)."""
    snap = HostSnapshot.from_dict(corpus.load_fixtures(kernel)["full"][host])
    chosen: dict[bool, tuple[str, dict]] = {}
    for name, d in corpus.catalog_definitions().items():
        chosen.setdefault(check(CpuDefinition.from_dict(d), snap).usable, (name, d))
    return dict(chosen.values())


def jobs(kernel: str, host: str) -> list[dict]:
    return [
        {"id": "timing", "kind": "timing", "host": host, "reads": READS, "definitions": timing_definitions(kernel, host)},
        {"id": "nonroot", "kind": "nonroot", "host": host},
    ]
