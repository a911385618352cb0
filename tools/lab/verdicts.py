"""Compare the engine's verdict with KVM's, probe by probe (shared by the live and recorded tests)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from arm_cpu_filter.engine import check
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot


@dataclass
class Tally:
    """Counts per kernel, and the first mismatches in full."""

    probes: int = 0
    realizable: int = 0
    init_refused: int = 0
    mismatches: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.probes} probes, {self.realizable} realizable, {self.init_refused} vCPU inits refused, "
            f"{len(self.mismatches)} mismatches"
        )


def kvm_blocked(probe: dict) -> set[str]:
    """Registers KVM refused or read back differently."""
    return set(probe["bad"])


def mismatch(definition: dict, host: dict, probe: dict, where: str) -> str | None:
    """None if engine.check agrees with KVM on `probe`, else a one-line description.

    Agreement: usable == realizable, and the blocked registers == the registers KVM refused or
    read back differently. When KVM refused the vCPU features themselves (no register was
    written), only the verdict is compared.
    """
    result = check(CpuDefinition.from_dict(definition), HostSnapshot.from_dict(host))
    engine_blocked = {b.register for b in result.blockers if b.register}
    if result.usable != probe["realizable"]:
        return (
            f"{where}: engine usable={result.usable}, KVM realizable={probe['realizable']} "
            f"(KVM bad {probe['bad']}, init {probe['init']}; engine blockers {sorted(engine_blocked)})"
        )
    kvm = kvm_blocked(probe)
    if probe["init"] == 0 and engine_blocked != kvm:
        only_kvm = {r: probe["bad"][r] for r in sorted(kvm - engine_blocked)}
        return f"{where}: engine also blocks {sorted(engine_blocked - kvm)}; only KVM refused/changed {only_kvm}"
    return None


def tally(triples: Iterable[tuple[dict, dict, dict, str]]) -> Tally:
    """Tally (definition, host snapshot, probe record, where) quadruples."""
    t = Tally()
    for definition, host, probe, where in triples:
        t.probes += 1
        t.realizable += bool(probe["realizable"])
        t.init_refused += probe["init"] != 0
        bad = mismatch(definition, host, probe, where)
        if bad:
            t.mismatches.append(bad)
    return t
