"""The scheduler's view of the fleet: host records from the store (re-read at most every
``refresh_interval`` seconds), snapshots cached by fingerprint (content-addressed, so never
invalid), and verdicts cached per (definition fingerprint, snapshot fingerprint) for boots and
per (VM, snapshot fingerprint, live) for moves -- a fleet has few distinct snapshots, few
distinct definitions and few sources, so almost every verdict is a dict hit.

No Nova imports: the filter, the weighers and the operator commands share this module.
The owner calls ``refresh()`` once per request; the store is read again only when the
previous read is older than ``refresh_interval`` (staleness is judged at that read).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from arm_cpu_filter.engine import accepts, check
from arm_cpu_filter.engine.migrate import ID_REGISTERS, RunningVm, migrate
from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.store import HostRecord, HostStore, StoreError


@dataclass(frozen=True, slots=True)
class HostData:
    """What the fleet knows about one host: its snapshot, or why there is none."""

    host: str
    snapshot: HostSnapshot | None
    #: None when usable; else the one-line reason the host must fail closed
    problem: str | None
    #: for problems whose text changes while they last, a stable name ("store": the store is
    #: unreadable, "stale"), so that the filter logs each such problem once per host
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class _Derived:
    """What one generation of store records implies; rebuilt when the generation changes.  The
    two caches fill as requests ask (the snapshots they derive from never change within it)."""

    generation: int = -1
    #: fresh host -> snapshot fingerprint
    fingerprints: dict[str, str] = field(default_factory=dict)
    #: the distinct fresh snapshots, by fingerprint
    snapshots: dict[str, HostSnapshot] = field(default_factory=dict)
    #: fingerprint -> how many fresh hosts have it
    counts: Counter[str] = field(default_factory=Counter)
    #: snapshot fingerprint -> share of fresh hosts accepting a passthrough VM started there
    passthrough_shares: dict[str, float] = field(default_factory=dict)
    #: definition fingerprint (None: any definition), or a move's (vm key, live) -> the fresh
    #: hosts that accept it
    accepting: dict[Hashable, frozenset[str]] = field(default_factory=dict)


def _age(seconds: float) -> str:
    if seconds < 600:  # exact near the usual limits: "125 s", not "2 min" against a "2 min" limit
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Fleet:
    def __init__(
        self,
        store: HostStore,
        max_age: float = 3600,
        refresh_interval: float = 30,
        cache_size: int = 100000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.refresh_interval = refresh_interval
        self.cache_size = cache_size
        self.clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, HostRecord] = {}
        self._loaded_at: float | None = None
        self._load_error: str | None = None
        self._verdicts: dict[tuple[str, str], bool] = {}
        self._moves: dict[tuple[Hashable, str, bool], bool] = {}
        #: generation counter: derived per-fleet data (shares) is recomputed when it changes
        self.generation = 0
        self._derived = _Derived()

    # -- store view ------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        now = self.clock()
        if not force and self._loaded_at is not None and now - self._loaded_at < self.refresh_interval:
            return
        with self._lock:
            try:
                records = self.store.hosts()
                error = None
            except ArmCpuFilterError as exc:
                records, error = {}, str(exc)
            except Exception as exc:  # a bug or an unexpected driver error: fail closed all the same
                records, error = {}, f"store {self.store.url}: internal error: {type(exc).__name__}: {exc}"
            self._records, self._load_error, self._loaded_at = records, error, now
            self.generation += 1

    @property
    def load_error(self) -> str | None:
        """Set when the last read of the store failed (every host then fails closed)."""
        return self._load_error

    def records(self) -> dict[str, HostRecord]:
        if self._loaded_at is None:
            self.refresh()
        return self._records

    def fingerprints(self) -> dict[str, str]:
        """host -> snapshot fingerprint for every host whose data was fresh at the last read."""
        self._derive()
        return self._derived.fingerprints

    def host(self, name: str, now: float | None = None) -> HostData:
        """The snapshot of ``name`` if it is present, fresh and intact, else the problem."""
        rec = self.records().get(name)
        if self._load_error:
            return HostData(name, None, self._load_error, "store")
        if rec is None:
            return HostData(name, None, f"no CPU data published for host {name} in {self.store.url}")
        if rec.problem:  # withdrawn by its agent (kernel or boot changed) or damaged
            return HostData(name, None, rec.problem)
        now = (self._loaded_at or self.clock()) if now is None else now
        if self._stale(rec, now):
            age = now - rec.taken_at
            if age < 0:  # a record from the future would never go stale: fail closed instead
                return HostData(name, None, f"CPU data of host {name} claims to be taken {_age(-age)} in the future "
                                            f"(limit {_age(self.max_age)}): check the clocks", "stale")
            return HostData(name, None, f"CPU data of host {name} is stale (taken {_age(age)} ago, "
                                        f"limit {_age(self.max_age)}): is its agent running?", "stale")
        try:
            return HostData(name, self.store.snapshot(rec.fingerprint), None)
        except StoreError as exc:
            return HostData(name, None, str(exc))

    def _stale(self, rec: HostRecord, now: float) -> bool:
        """Older than ``max_age``, or as far in the future (clock skew, damage): not to be trusted."""
        return bool(self.max_age) and abs(now - rec.taken_at) > self.max_age

    def _derive(self) -> None:
        records = self.records()
        if self._derived.generation == self.generation:
            return
        now = self._loaded_at or self.clock()
        fps: dict[str, str] = {}
        by_fp: dict[str, HostSnapshot] = {}
        for name, rec in records.items():
            if rec.problem or self._stale(rec, now):
                continue
            snap = by_fp.get(rec.fingerprint)
            if snap is None:
                try:
                    snap = by_fp[rec.fingerprint] = self.store.snapshot(rec.fingerprint)
                except Exception:  # host() reports it; the host is left out here
                    continue
            fps[name] = rec.fingerprint
        self._derived = _Derived(self.generation, fps, by_fp, Counter(fps.values()))

    def fresh(self) -> dict[str, HostSnapshot]:
        """Every host with usable data, by name."""
        self._derive()
        by_fp = self._derived.snapshots
        return {name: by_fp[fp] for name, fp in self._derived.fingerprints.items()}

    # -- verdicts --------------------------------------------------------------------------
    def usable(self, definition: CpuDefinition, snapshot: HostSnapshot) -> bool:
        key = (definition.fingerprint, snapshot.fingerprint)
        return self._remember(self._verdicts, key, lambda: accepts(definition, snapshot))

    def movable(self, vm: RunningVm, snapshot: HostSnapshot, live: bool) -> bool:
        """Does ``engine.migrate`` move ``vm`` onto ``snapshot``?  Cached per (VM, destination
        fingerprint, live): a fleet's VMs come from few sources and definitions."""
        key = (vm_key(vm), snapshot.fingerprint, live)
        return self._remember(self._moves, key, lambda: migrate(vm, snapshot, live).ok)

    def _remember(self, cache: dict, key: Hashable, verdict: Callable[[], bool]) -> bool:
        """``cache[key]``, computed on a miss; the cache starts over beyond ``cache_size``."""
        found = cache.get(key)
        if found is None:
            found = verdict()
            if len(cache) >= self.cache_size:
                cache.clear()
            cache[key] = found
        return found

    def accepting(self, definition: CpuDefinition | None) -> frozenset[str]:
        """Names of the fresh hosts that accept ``definition`` (None: every fresh host)."""
        if definition is None:
            return self._accepting(None, lambda snap: True)
        return self._accepting(definition.fingerprint, lambda snap: self.usable(definition, snap))

    def accepting_move(self, vm: RunningVm, live: bool) -> frozenset[str]:
        """Names of the fresh hosts ``vm`` can move to (live or cold)."""
        return self._accepting((vm_key(vm), live), lambda snap: self.movable(vm, snap, live))

    def _accepting(self, key: Hashable, verdict: Callable[[HostSnapshot], bool]) -> frozenset[str]:
        """One verdict per distinct fresh snapshot, cached for the store generation under ``key``."""
        self._derive()
        derived = self._derived
        names = derived.accepting.get(key)
        if names is None:
            ok = {fp for fp, snap in derived.snapshots.items() if verdict(snap)}
            names = derived.accepting[key] = frozenset(n for n, fp in derived.fingerprints.items() if fp in ok)
        return names

    def census(self) -> tuple[dict[str, HostSnapshot], Counter[str]]:
        """Distinct fresh snapshots by fingerprint and how many hosts have each."""
        self._derive()
        return self._derived.snapshots, self._derived.counts

    def passthrough_share(self, snapshot: HostSnapshot) -> float:
        """Share of fresh hosts that would accept a host-passthrough VM started on ``snapshot``."""
        by_fp, counts = self.census()
        shares = self._derived.passthrough_shares
        share = shares.get(snapshot.fingerprint)
        if share is None:
            definition = snapshot.as_definition()
            accepted = sum(n for fp, n in counts.items() if self.usable(definition, by_fp[fp]))
            share = shares[snapshot.fingerprint] = accepted / max(1, sum(counts.values()))
        return share


def explain(definition: CpuDefinition, snapshot: HostSnapshot, limit: int = 3) -> str:
    """Why ``definition`` is not realizable on ``snapshot``, in one short line."""
    blockers = check(definition, snapshot).blockers
    parts = []
    for b in blockers[:limit]:
        what = b.property or (f"{b.register}.{b.field}" if b.field else b.register)
        parts.append(f"{what} {b.requested} (host: {b.host})")
    more = f" and {len(blockers) - limit} more" if len(blockers) > limit else ""
    return "; ".join(parts) + more if parts else "usable"


def vm_key(vm: RunningVm) -> Hashable:
    """What decides ``migrate(vm, ...)``: the guest's CPU (fingerprint), how it was started, and
    what its saved state holds -- the source snapshot's part of it, not the source's name (VMs of
    identical sources share verdicts).  The register list is a frozenset: it caches its hash."""
    return (vm.definition.fingerprint, vm.passthrough, vm.register_list, vm.vector_lengths, vm.ipa_bits,
            vm.pmu_counters)


def explain_move(vm: RunningVm, snapshot: HostSnapshot, live: bool, limit: int = 3) -> str:
    """Why ``vm`` cannot move onto ``snapshot``, in one line: the blockers' reasons with the
    destination VMM setting that would lift each; ID-register blockers as :func:`explain` puts
    them (property names) when the VM's own CPU is what the destination cannot realize."""
    blockers = migrate(vm, snapshot, live).blockers
    others = [b for b in blockers if b.kind != ID_REGISTERS]
    ids = [b for b in blockers if b.kind == ID_REGISTERS]
    own = explain(vm.definition, snapshot, limit) if ids else "usable"
    shown = (others if own != "usable" else blockers)[:limit]
    parts = [b.reason + (f" [lifted by {b.lifted_by}]" if b.lifted_by else "") for b in shown]
    if own != "usable":
        parts.insert(0, own)
    hidden = len(others if own != "usable" else blockers) - len(shown)
    return "; ".join(parts) + (f" and {hidden} more" if hidden > 0 else "") if parts else "movable"


def hosts_accepting(fleet: Fleet, definition: CpuDefinition, names: Iterable[str] | None = None) -> dict[str, str | None]:
    """Per host: None when it accepts ``definition``, else the reason it does not."""
    return _why_not(fleet, names, lambda snap: fleet.usable(definition, snap), lambda snap: explain(definition, snap))


def hosts_accepting_move(fleet: Fleet, vm: RunningVm, live: bool = True,
                         names: Iterable[str] | None = None) -> dict[str, str | None]:
    """Per host: None when ``vm`` can move there (``engine.migrate``), else the reason it cannot."""
    return _why_not(fleet, names, lambda snap: fleet.movable(vm, snap, live),
                    lambda snap: explain_move(vm, snap, live))


def _why_not(fleet: Fleet, names: Iterable[str] | None, passes: Callable[[HostSnapshot], bool],
             explain_refusal: Callable[[HostSnapshot], str]) -> dict[str, str | None]:
    """Per host (every store host, or ``names``): None when it passes, else why not."""
    out: dict[str, str | None] = {}
    for name in sorted(fleet.records() if names is None else names):
        data = fleet.host(name)
        if data.snapshot is None:
            out[name] = data.problem
        else:
            out[name] = None if passes(data.snapshot) else explain_refusal(data.snapshot)
    return out
