"""The soak's side of the fleet: what it published to the store (its own record, the way the
host agents would), how hosts change during the run, and the ground truth computed from that
record alone -- ``engine.check`` for boots and ``engine.migrate`` (live) for moves, on the
snapshots the soak itself wrote, never through
``Fleet``, the store or the plugin's caches (so a fault there cannot hide itself).

Truth timing rule: the plugin's view is the soak's record as of the plugin's last store read
(:meth:`SoakFleet.read`, called for each read the soak sees the plugin make; the soak writes
only between requests, so a read during a request sees the record as of that request).  A host
is fresh in that view when ``read time - taken_at <= max_snapshot_age``.  Snapshots are
content-addressed, so the snapshot the plugin loads for a record is the one the soak published.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from arm_cpu_filter.engine import check
from arm_cpu_filter.engine.migrate import RunningVm, migrate, passthrough_vm, running_vm
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.store import HostStore
from arm_cpu_filter.table import load_table

#: how a host's data changes during the run (each happens to a slice of hosts, in turn)
UPGRADE, LOWERED, STALE, GONE, RETURN = "kernel upgrade", "lowered fields", "stale", "disappear", "return"
CHANGES = (UPGRADE, LOWERED, STALE, GONE, RETURN)
#: fields a firmware or kernel change may lower (each lowers some catalog model or recorded CPU)
LOWERABLE = ("CTR_EL0.DIC", "ID_AA64ISAR0_EL1.AES", "ID_AA64ISAR0_EL1.CRC32")


def fleet_snapshots() -> list[HostSnapshot]:
    """The distinct snapshots of the soak fleet: the bench's (samples with writable masks and
    kernel variants of them) plus the samples of kernels without them (host-passthrough only),
    all format 2 with the synthetic kvm facts of ``testing.vmfacts``."""
    from arm_cpu_filter.samples import sample_hosts
    from arm_cpu_filter.testing.nova.bench import distinct_snapshots
    from arm_cpu_filter.testing.vmfacts import with_kernel_facts

    return distinct_snapshots() + [with_kernel_facts(s) for s in sample_hosts().values() if s.writable_masks is None]


def _family(name: str) -> str:
    """``graviton2-7.3`` and ``graviton3-6.1`` -> ``graviton2`` and ``graviton3``."""
    return re.sub(r"-\d+\.\d+$", "", name)


def upgraded(snapshot: HostSnapshot) -> HostSnapshot:
    """The same host after a kernel upgrade: the sample of its family with the next newer
    kernel when there is one (e.g. 6.12 -> 7.3 makes MIDR writable), else a patch release."""
    from arm_cpu_filter.samples import sample_hosts
    from arm_cpu_filter.testing.vmfacts import with_kernel_facts

    newer = sorted((s for s in sample_hosts().values()
                    if _family(s.host) == _family(snapshot.host) and s.kernel_version > snapshot.kernel_version),
                   key=lambda s: s.kernel_version)
    if newer:  # the newer kernel's (synthetic) register list: a live move back is refused
        return with_kernel_facts(newer[0])
    major, minor, patch = snapshot.kernel_version
    return dataclasses.replace(snapshot, kernel=f"{major}.{minor}.{patch + 1000}")


def lowered(snapshot: HostSnapshot, qualname: str) -> HostSnapshot | None:
    """``snapshot`` with field ``qualname`` one step lower (None: nothing to lower there)."""
    f = load_table().field(qualname)
    value = snapshot.registers.get(f.register)
    if value is None or f.signed or f.extract(value) == 0:
        return None
    return dataclasses.replace(snapshot, registers={**snapshot.registers, f.register: f.insert(value, f.extract(value) - 1)})


@dataclass
class HostCpu:
    """A host's real CPU during the run: its first snapshot and what has changed since."""

    original: HostSnapshot
    upgraded: bool = False
    lowered: str | None = None


class SoakFleet:
    """What the soak published (host -> snapshot, taken_at), the hosts' real CPUs, and the
    ground truth for the plugin's current view of it."""

    def __init__(self, store: HostStore, cpus: dict[str, HostSnapshot], max_age: float) -> None:
        self.store = store
        self.max_age = max_age
        self.cpus = {host: HostCpu(snap) for host, snap in cpus.items()}
        #: hosts changed, stale or gone since their first state (a RETURN restores them)
        self.disturbed: set[str] = set()
        #: host -> (snapshot, taken_at) exactly as written to the store
        self.published: dict[str, tuple[HostSnapshot, float]] = {}
        self._variants: dict[tuple[str, bool, str | None], HostSnapshot] = {}
        self._verdicts: dict[tuple[str, str], bool] = {}
        #: when the plugin last read the store (its view is the record as of then)
        self.view_time: float | None = None
        self.reads = 0
        #: per read: fresh host names, and fresh hosts grouped by snapshot fingerprint
        self.fresh: frozenset[str] = frozenset()
        self._by_fp: dict[str, tuple[HostSnapshot, list[str]]] = {}
        self._expected: dict[object, frozenset[str]] = {}
        #: fresh host -> its snapshot, as of the plugin's last read (a move's source comes from it)
        self.view: dict[str, HostSnapshot] = {}
        self._moves: dict[tuple[str, str, bool, str], bool] = {}
        #: hosts found stale at a read (summed over reads)
        self.stale_seen = 0

    # -- the hosts' CPUs -----------------------------------------------------------------------
    def actual(self, host: str) -> HostSnapshot:
        """The snapshot ``host``'s agent would publish now (memoized per variant)."""
        cpu = self.cpus[host]
        key = (cpu.original.fingerprint, cpu.upgraded, cpu.lowered)
        snap = self._variants.get(key)
        if snap is None:
            snap = upgraded(cpu.original) if cpu.upgraded else cpu.original
            if cpu.lowered:
                snap = lowered(snap, cpu.lowered) or snap
            self._variants[key] = snap
        return snap

    # -- publishing and changes -----------------------------------------------------------------
    def publish(self, host: str, taken_at: float) -> None:
        """What the host's agent does: publish its current snapshot with ``taken_at``."""
        snap = self.actual(host)
        self.store.publish(snap, host=host, taken_at=taken_at)
        self.published[host] = (snap, taken_at)

    def change(self, kind: str, hosts: list[str], now: float, rng: random.Random, refresh: float) -> int:
        """Apply one kind of change to ``hosts`` in the store and in the record; returns how
        many hosts it changed.  A host runs its first snapshot, its kernel upgrade, or its
        first snapshot with one field lowered: a bounded set of variants however long the run
        (as in a real fleet), which the run's first change events already show the plugin."""
        done = 0
        for host in hosts:
            cpu = self.cpus[host]
            if kind == UPGRADE:
                cpu.upgraded, cpu.lowered = True, None
                self.publish(host, now)
            elif kind == LOWERED:
                options = [q for q in LOWERABLE if q != cpu.lowered and lowered(cpu.original, q) is not None]
                if not options:
                    continue
                cpu.upgraded, cpu.lowered = False, rng.choice(options)
                self.publish(host, now)
            elif kind == STALE:  # the agent stopped: its last heartbeat is (or soon gets) too old
                self.publish(host, now - self.max_age + rng.uniform(-2.0, 2.0) * refresh)
            elif kind == GONE:
                self.store.remove_host(host)
                self.published.pop(host, None)
            else:  # RETURN: reinstalled with its first kernel and firmware, agent running
                cpu.upgraded, cpu.lowered = False, None
                self.publish(host, now)
            if kind == RETURN:
                self.disturbed.discard(host)
            else:
                self.disturbed.add(host)
            done += 1
        return done

    def spread(self, rng: random.Random, k: int) -> list[str]:
        """``k`` random hosts spread over the first snapshots (every one when ``k`` allows)."""
        groups: dict[str, list[str]] = {}
        for host, cpu in self.cpus.items():
            groups.setdefault(cpu.original.fingerprint, []).append(host)
        out: list[str] = []
        members = [rng.sample(g, len(g)) for g in groups.values()]
        for i in range(max(len(m) for m in members)):
            out.extend(m[i] for m in members if i < len(m))
            if len(out) >= k:
                break
        return out[:k]

    # -- the plugin's view and the truth -------------------------------------------------------
    def read(self, now: float) -> None:
        """The plugin reads the store now: its view becomes the soak's current record."""
        self.view_time, self.reads = now, self.reads + 1
        by_fp: dict[str, tuple[HostSnapshot, list[str]]] = {}
        view = {}
        for host, (snap, taken_at) in self.published.items():
            if self.max_age and now - taken_at > self.max_age:
                self.stale_seen += 1
                continue
            view[host] = snap
            by_fp.setdefault(snap.fingerprint, (snap, []))[1].append(host)
        self.fresh, self.view, self._by_fp, self._expected = frozenset(view), view, by_fp, {}

    def verdict(self, definition: CpuDefinition, snapshot: HostSnapshot) -> bool:
        """``engine.check`` (cached per content address: both fingerprints are content hashes)."""
        key = (definition.fingerprint, snapshot.fingerprint)
        v = self._verdicts.get(key)
        if v is None:
            v = self._verdicts[key] = check(definition, snapshot).usable
        return v

    def expected(self, definition: CpuDefinition | None) -> frozenset[str]:
        """Fresh hosts of the view that accept ``definition`` (None: a host-passthrough boot)."""
        if definition is None:
            return self.fresh
        key = definition.fingerprint
        hosts = self._expected.get(key)
        if hosts is None:
            hosts = self._expected[key] = frozenset(
                h for snap, names in self._by_fp.values() if self.verdict(definition, snap) for h in names)
        return hosts

    def expected_move(self, definition: CpuDefinition | None, source: str, passthrough: bool) -> frozenset[str] | None:
        """Fresh hosts of the view a VM running on ``source`` live-migrates to (``engine.migrate``);
        ``definition`` None: an unrecorded host-passthrough VM (the source's CPU).  None: the
        source has no fresh data in the view, so the VM is unknown (the request is unresolvable)."""
        snap = self.view.get(source)
        if snap is None:
            return None
        fp = definition.fingerprint if definition is not None else ""
        key = (fp, snap.fingerprint, passthrough)
        hosts = self._expected.get(key)
        if hosts is None:
            if definition is None:
                vm = passthrough_vm(snap)
            else:
                vm = running_vm(definition, snap, passthrough)
            hosts = self._expected[key] = frozenset(
                h for dest, names in self._by_fp.values() if self._movable(key, vm, dest) for h in names)
        return hosts

    def _movable(self, key: tuple[str, str, bool], vm: RunningVm, dest: HostSnapshot) -> bool:
        """``migrate(vm, dest)`` (live), cached per (VM key, destination fingerprint)."""
        k = (*key, dest.fingerprint)
        v = self._moves.get(k)
        if v is None:
            v = self._moves[k] = migrate(vm, dest).ok
        return v

    def distinct(self) -> int:
        return len({s.fingerprint for s, _ in self.published.values()})


@dataclass
class Checker:
    """Per-request comparison of the plugin's admissions with the truth, and tallies of why
    the right refusals were right (so a run shows the check was not vacuous)."""

    wrongly_admitted: int = 0
    wrongly_refused: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)
    #: requests where the engine accepted some fresh candidates and refused others
    mixed: int = 0
    no_valid_host: int = 0

    def compare(self, request: int, label: str, admitted: set[str], expected: frozenset[str] | None,
                candidates: set[str] | None, ignore: set[str], fleet: SoakFleet) -> None:
        """``expected``: hosts the truth admits (None: the request is unresolvable, none);
        ``candidates``: the hosts Nova was given (None: every host); ``ignore``: its ignore_hosts."""
        exp = frozenset() if expected is None else expected if candidates is None else expected & candidates
        if candidates is not None:
            ignore = ignore & candidates
        bad_in = (admitted - exp) | (admitted & ignore)
        n_exp = len(exp) - sum(1 for h in ignore if h in exp)
        n_bad_out = n_exp - (len(admitted) - len(bad_in))
        if bad_in or n_bad_out:
            self.wrongly_admitted += len(bad_in)
            self.wrongly_refused += n_bad_out
            missing = sorted((exp - ignore) - admitted)
            for host, was in [(h, True) for h in sorted(bad_in)] + [(h, False) for h in missing]:
                if len(self.examples) < 10:
                    pub = fleet.published.get(host)
                    self.examples.append({"request": request, "cpu": label, "host": host, "admitted": was,
                                          "plugin_store_read": fleet.reads,
                                          "published_snapshot": pub[0].fingerprint[:12] if pub else None})
        fresh = fleet.fresh if candidates is None else fleet.fresh & candidates
        n_fresh = len(fresh) - sum(1 for h in ignore if h in fresh)
        n_cand = (len(fleet.cpus) if candidates is None else len(candidates)) - len(ignore)
        self.decisions["admitted"] += len(admitted)
        self.decisions["refused: no fresh data"] += n_cand - n_fresh
        self.decisions["refused: request unresolvable" if expected is None else "refused: engine"] += n_fresh - n_exp
        self.mixed += bool(expected is not None and admitted and n_fresh > n_exp)
        self.no_valid_host += not admitted
