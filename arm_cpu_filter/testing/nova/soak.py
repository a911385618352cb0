"""Soak run of the Nova plugin (``arm-cpu-filter soak``): a fleet of compute hosts, a long
mix of scheduling requests through Nova's real ``HostManager.get_filtered_hosts`` and
``get_weighed_hosts`` (the sandbox's Nova), host data changing underneath, and every
decision checked against the engine run independently.

Requests: host-passthrough boots, named-model boots (catalog models, some with property
overrides in the flavor's extra specs), live migrations of running instances (host-passthrough
ones recorded in the store with the CPU they started with, as the agent does; named-model
ones), and live migrations of host-passthrough instances the agent has not recorded (the
plugin falls back to the source host's snapshot).  Moves carry ``instance_uuid`` and
``ignore_hosts=[source]`` like Nova's live migration; the truth is ``engine.migrate`` of the
VM as it runs on its source (the source's snapshot in the plugin's view: a source without fresh
data there makes the move unresolvable).  Hosts publish format 2 with synthetic kvm facts
(``testing.vmfacts``), so kernel upgrades also change register lists.  The cloud runs a constant number of
instances: each boot replaces a random one.

Changes: every ``requests / changes`` requests a slice of hosts gets, in turn, a kernel
upgrade, a lowered ID field, a stopped agent (stale data), a removed record, or a return to
its first state.  The plugin sees them through its normal refresh (``store_refresh_interval``
on a simulated clock given to its ``Fleet``, which advances between requests); no reset mid-run.

Truth timing: the plugin's view during a request is the soak's record as of the plugin's last
store read (the soak writes only between requests, so a read during request *i* sees the record
as of *i*).  Reads are detected by ``Fleet.generation``: the plugin must read when its view is
``store_refresh_interval`` old (a missing read is an error: ``late_store_reads``) and may read
more often (it re-reads when a request cannot be resolved, to tell a store outage from a bad
request: ``extra_store_reads``).  Staleness is judged at the read, as the plugin documents.
Verdicts: :class:`~arm_cpu_filter.testing.nova.soak_fleet.SoakFleet` (engine on the soak's own
record).  Memory and latency: :mod:`arm_cpu_filter.testing.nova.soak_stats`.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
import uuid as uuidlib
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.testing.nova.soak_fleet import CHANGES, RETURN, Checker, SoakFleet, fleet_snapshots
from arm_cpu_filter.testing.nova.soak_stats import LogCount, Stopwatch, flatness, memory_sample, percentiles

PT_BOOT, MODEL_BOOT = "passthrough boot", "named-model boot"
PT_MOVE, MODEL_MOVE = "passthrough live migration", "named-model live migration"
BLIND_MOVE = "passthrough live migration, unrecorded"
KINDS = (PT_BOOT, MODEL_BOOT, PT_MOVE, MODEL_MOVE, BLIND_MOVE)
MOVES = (PT_MOVE, MODEL_MOVE, BLIND_MOVE)
MIX = (0.30, 0.25, 0.25, 0.12, 0.08)
#: named-model flavors (extra specs), each realizable on a few of the fleet's snapshots; the
#: last one on none of them (NoValidHost: every host refused)
MODEL_FLAVORS: tuple[dict[str, str], ...] = (
    {"arm_cpu:model": "graviton2-v1"},
    {"arm_cpu:model": "graviton2-v1", "arm_cpu:hw_prop_DIC": "off"},
    {"arm_cpu:model": "altra-v1"},
    {"arm_cpu:model": "altra-v1", "arm_cpu:feat_AES": "aes"},
    {"arm_cpu:model": "neoverse-n1-v1"},
    {"arm_cpu:model": "neoverse-n1-v1", "arm_cpu:pmu": "off"},
    {"arm_cpu:model": "cortex-a72-v1", "arm_cpu:feat_CRC32": "off"},
    {"arm_cpu:model": "a64fx-v1", "arm_cpu:sve": "off"},
    {"arm_cpu:model": "graviton3-v1"},
)
#: Nova configurations: "ours" enables only ArmCpuModelFilter and ArmCpuWeigher; "full" is the
#: sandbox's nova.conf (Nova's default filters before ours, and every Nova weigher beside ours)
PIPELINES = ("ours", "full")
REFRESH, MAX_AGE = 30, 3600
EPOCH = 1_700_000_000.0


@dataclass
class SoakConfig:
    hosts: int = 10000
    requests: int = 100000
    seed: int = 1
    #: candidates per request (placement's allocation candidates, a random sample): 0 = every host
    candidates: int = 0
    pipeline: str = "ours"
    #: store refresh periods over the run (simulated duration: refreshes * store_refresh_interval)
    refreshes: int = 40
    #: change events over the run, and hosts per event (0: 1 % of the fleet)
    changes: int = 200
    change_hosts: int = 0
    #: memory samples over the run
    samples: int = 200
    #: running instances per pool (host-passthrough, named-model) that moves pick from
    pool: int = 1000

    def validate(self) -> None:
        if self.hosts < 2 or self.requests < 1:
            raise InputError(f"soak: needs at least 2 hosts and 1 request (got {self.hosts}, {self.requests})")
        if self.candidates and not 2 <= self.candidates <= self.hosts:
            raise InputError(f"soak: {self.candidates} candidates per request: expected 0 (all) or 2..{self.hosts}")
        if self.pipeline not in PIPELINES:
            raise InputError(f"soak: pipeline {self.pipeline!r}: expected one of {', '.join(PIPELINES)}")
        if not 1 <= self.refreshes * REFRESH < MAX_AGE / 2:
            raise InputError(f"soak: {self.refreshes} refresh periods: the run must last under half of "
                             f"max_snapshot_age ({MAX_AGE} s) at {REFRESH} s each")


@dataclass
class Instance:
    uuid: str
    host: str
    extra_specs: dict[str, str]
    #: the CPU the truth checks its moves against (recorded host-passthrough CPU or realized model)
    definition: CpuDefinition


class SimClock:
    """The plugin's clock during the soak: advances only between requests."""

    def __init__(self, start: float, step: float) -> None:
        self.now, self.step = start, step

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.step


def _host_states(names: list[str]) -> list[Any]:
    """Nova HostStates for ``names`` (the bench's), with the service heartbeat ComputeFilter reads."""
    from oslo_utils import timeutils

    from arm_cpu_filter.testing.nova.bench import host_states

    states = host_states(names)
    up = timeutils.utcnow()
    for hs in states:
        hs.update(service={**dict(hs.service), "created_at": up, "updated_at": up})
    return states


def _host_manager(pipeline: str) -> Any:
    """A HostManager of the soak's own (the sandbox's stays untouched) for ``pipeline``."""
    from nova.scheduler import host_manager
    from oslo_config import cfg

    from arm_cpu_filter.testing.nova.sandbox import WEIGHER

    if pipeline == "full":
        return host_manager.HostManager()
    cfg.CONF.set_override("enabled_filters", ["ArmCpuModelFilter"], "filter_scheduler")
    cfg.CONF.set_override("weight_classes", [WEIGHER], "filter_scheduler")
    try:
        return host_manager.HostManager()
    finally:
        cfg.CONF.clear_override("enabled_filters", "filter_scheduler")
        cfg.CONF.clear_override("weight_classes", "filter_scheduler")


class Soak:
    """One run: the requests, the bookkeeping of running instances, the tallies."""

    def __init__(self, config: SoakConfig, sb: Any, hm: Any, states: list[Any], fleet: SoakFleet,
                 clock: SimClock, plugin_fleet: Any, ours: Stopwatch) -> None:
        self.config, self.sb, self.hm, self.states, self.fleet = config, sb, hm, states, fleet
        self.clock, self.plugin_fleet, self.ours = clock, plugin_fleet, ours
        self.rng = random.Random(config.seed)
        self.names = list(fleet.cpus)
        n = config.requests
        self.whole, self.our_part, self.kinds = array("d", bytes(8 * n)), array("d", bytes(8 * n)), array("B", bytes(n))
        self.pools: dict[str, list[Instance]] = {PT_MOVE: [], MODEL_MOVE: []}
        self._models: dict[tuple[tuple[str, str], ...], CpuDefinition] = {}
        self._own: dict[str, CpuDefinition] = {}
        self.check = Checker()
        self.kind_count: Counter[str] = Counter()
        self.change_count: Counter[str] = Counter()
        self.samples: list[tuple[int, int, int]] = []
        self.late_reads = self.extra_reads = 0
        self.seconds: Counter[str] = Counter()

    # -- CPUs the truth checks ----------------------------------------------------------------
    def model(self, extra_specs: dict[str, str]) -> CpuDefinition:
        """The realized model of a flavor, straight from the models layer."""
        from arm_cpu_filter.models import realize

        key = tuple(sorted(extra_specs.items()))
        d = self._models.get(key)
        if d is None:
            prefix = "arm_cpu:"
            props = [f"{k[len(prefix):]}={v}" for k, v in key if k != "arm_cpu:model"]
            d = self._models[key] = realize(",".join([extra_specs["arm_cpu:model"], *props]))
        return d

    def own_cpu(self, snapshot: HostSnapshot) -> CpuDefinition:
        """What a host-passthrough guest started on ``snapshot`` sees."""
        d = self._own.get(snapshot.fingerprint)
        if d is None:
            d = self._own[snapshot.fingerprint] = snapshot.as_definition()
        return d

    # -- running instances --------------------------------------------------------------------
    def boot_passthrough(self, uuid: str, host: str) -> Instance:
        """What the agent on ``host`` records when it first sees a host-passthrough instance."""
        from arm_cpu_filter.snapshot.passthrough import passthrough_definition

        snapshot = self.fleet.actual(host)
        self.fleet.store.record_instance(uuid, passthrough_definition(snapshot, host), host)
        return Instance(uuid, host, {}, self.own_cpu(snapshot))

    def keep(self, kind: str, inst: Instance) -> None:
        """Add a running instance; when the pool is full a random one is deleted."""
        pool = self.pools[kind]
        if len(pool) < self.config.pool:
            pool.append(inst)
        else:
            pool[self.rng.randrange(len(pool))] = inst

    def fill_pools(self) -> None:
        """The instances running when the soak starts (on hosts that can run them)."""
        for _ in range(self.config.pool):
            self.keep(PT_MOVE, self.boot_passthrough(str(uuidlib.uuid4()), self.rng.choice(self.names)))
        hosts = [[h for h in self.names if self.fleet.verdict(cpu, self.fleet.actual(h))]
                 for cpu in map(self.model, MODEL_FLAVORS)]
        usable = [i for i, h in enumerate(hosts) if h]
        for _ in range(self.config.pool if usable else 0):
            i = self.rng.choice(usable)
            f = MODEL_FLAVORS[i]
            self.keep(MODEL_MOVE, Instance(str(uuidlib.uuid4()), self.rng.choice(hosts[i]), f, self.model(f)))

    # -- one request -----------------------------------------------------------------------------
    def pick_request(self) -> tuple[str, dict[str, str], str | None, list[str], Instance | None, CpuDefinition | None]:
        """(kind, extra specs, instance uuid, ignore_hosts, instance, CPU to check or move)."""
        kind = self.rng.choices(KINDS, MIX)[0]
        if kind in self.pools and not self.pools[kind]:
            kind = PT_BOOT if kind == PT_MOVE else MODEL_BOOT
        if kind == PT_BOOT:
            return kind, {}, None, [], None, None
        if kind == MODEL_BOOT:
            extra = self.rng.choice(MODEL_FLAVORS)
            return kind, extra, None, [], None, self.model(extra)
        if kind == BLIND_MOVE:  # the VM is the source's CPU in the plugin's view (fresh or unresolvable)
            return kind, {}, str(uuidlib.uuid4()), [self.rng.choice(self.names)], None, None
        inst = self.rng.choice(self.pools[kind])
        return kind, inst.extra_specs, inst.uuid, [inst.host], inst, inst.definition

    def request(self, i: int) -> None:
        change_every = max(1, self.config.requests // max(1, self.config.changes))
        if i and i % change_every == 0:
            self.change(CHANGES[(i // change_every - 1) % len(CHANGES)])
        self.clock.tick()
        now = self.clock.now
        t0 = time.perf_counter()
        due = self.fleet.view_time is None or now - self.fleet.view_time >= REFRESH
        kind, extra, uuid, ignore, inst, cpu = self.pick_request()
        cands = self.states if not self.config.candidates else self.rng.sample(self.states, self.config.candidates)
        spec = self.sb.request_spec(extra, instance_uuid=uuid, ignore_hosts=ignore or None)
        t1 = time.perf_counter()
        generation, before = self.plugin_fleet.generation, self.ours.total
        filtered = list(self.hm.get_filtered_hosts(cands, spec))
        weighed = self.hm.get_weighed_hosts(filtered, spec)
        t2 = time.perf_counter()
        self.whole[i], self.our_part[i], self.kinds[i] = t2 - t1, self.ours.total - before, KINDS.index(kind)
        read = self.plugin_fleet.generation != generation
        if read:  # the plugin read the store during this request: its view is the record as of now
            self.fleet.read(now)
        self.late_reads += due and not read
        self.extra_reads += read and not due
        if kind in MOVES:  # live migrations: engine.migrate of the VM as it runs on its source
            expected = self.fleet.expected_move(cpu, ignore[0], kind != MODEL_MOVE)
        else:
            expected = self.fleet.expected(cpu)
        label = kind if inst is None else f"{kind} of {inst.uuid} (from {inst.host})"
        self.check.compare(i, label, {h.host for h in filtered}, expected,
                           None if not self.config.candidates else {h.host for h in cands}, set(ignore), self.fleet)
        self.kind_count[kind] += 1
        if weighed:
            self.placed(kind, weighed[0].obj.host, spec.instance_uuid, extra, cpu, inst)
        self.seconds["nova_handlers"] += t2 - t1
        self.seconds["checker_and_bookkeeping"] += (t1 - t0) + (time.perf_counter() - t2)

    def placed(self, kind: str, dest: str, uuid: str, extra: dict[str, str], cpu: CpuDefinition | None,
               inst: Instance | None) -> None:
        """Nova picked ``dest`` (the best weighed host): the instance now runs there."""
        if kind == PT_BOOT:
            self.keep(PT_MOVE, self.boot_passthrough(uuid, dest))
        elif kind == MODEL_BOOT and cpu is not None:
            self.keep(MODEL_MOVE, Instance(uuid, dest, extra, cpu))
        elif inst is not None:
            if kind == PT_MOVE:  # the agent on the destination updates the instance's host
                self.fleet.store.record_instance(inst.uuid, inst.definition, dest)
            inst.host = dest

    def change(self, kind: str) -> None:
        """One change event: ``change_hosts`` hosts spread over the fleet's kinds of CPU; a
        return restores three slices (against four disturbed by the other kinds in a cycle),
        so the share of changed, stale and vanished hosts levels off instead of growing."""
        t = time.perf_counter()
        k = self.config.change_hosts or max(1, len(self.names) // 100)
        if kind == RETURN:
            hosts = self.rng.sample(sorted(self.fleet.disturbed), min(3 * k, len(self.fleet.disturbed)))
        else:
            hosts = self.fleet.spread(self.rng, k)
        self.change_count[kind] += self.fleet.change(kind, hosts, self.clock.now, self.rng, REFRESH)
        self.seconds["host_changes"] += time.perf_counter() - t

    # -- the whole run ---------------------------------------------------------------------------
    def run(self, progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
        n = self.config.requests
        every = max(1, n // max(1, self.config.samples))
        t = time.perf_counter()
        for i in range(n):
            self.request(i)
            if i % every == 0 or i == n - 1:
                ts = time.perf_counter()
                self.samples.append((i, *memory_sample()))
                self.seconds["memory_samples"] += time.perf_counter() - ts
            if progress is not None and (i + 1) % max(1, n // 20) == 0:
                progress(i + 1, time.perf_counter() - t)
        self.seconds["run"] = time.perf_counter() - t
        self.seconds["ours_in_handlers"] = self.ours.total
        return self.report()

    def report(self) -> dict[str, Any]:
        c, n = self.check, self.config.requests
        memory = flatness(self.samples, n)
        wrong = c.wrongly_admitted + c.wrongly_refused
        latency = {}
        for k, kind in enumerate(KINDS):
            idx = [j for j in range(n) if self.kinds[j] == k]
            latency[kind] = {"whole": percentiles([self.whole[j] for j in idx]),
                             "ours": percentiles([self.our_part[j] for j in idx])}
        latency["all"] = {"whole": percentiles(self.whole), "ours": percentiles(self.our_part)}
        return {
            "hosts": self.config.hosts, "requests": n, "seed": self.config.seed, "pipeline": self.config.pipeline,
            "candidates_per_request": self.config.candidates or self.config.hosts,
            "nova_filters": [type(f).__name__ for f in self.hm.enabled_filters],
            "nova_weighers": [type(w).__name__ for w in self.hm.weighers],
            "requests_by_kind": dict(self.kind_count), "host_changes_by_kind": dict(self.change_count),
            "distinct_snapshots_at_end": self.fleet.distinct(),
            "plugin_store_reads": self.fleet.reads, "extra_store_reads": self.extra_reads,
            "late_store_reads": self.late_reads, "hosts_found_stale_at_reads": self.fleet.stale_seen,
            "simulated_minutes": round(self.clock.step * n / 60, 1),
            "host_decisions": dict(c.decisions), "requests_admitted_and_refused_by_engine": c.mixed,
            "requests_no_valid_host": c.no_valid_host,
            "wrong_admissions": wrong, "wrongly_admitted": c.wrongly_admitted, "wrongly_refused": c.wrongly_refused,
            "wrong_examples": c.examples, "latency_ms": latency, "memory": memory,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "failures": [why for bad, why in ((wrong, f"{wrong} wrong admissions"),
                                              (self.late_reads, f"{self.late_reads} store reads the plugin missed"),
                                              (not memory["flat"], "memory is not flat")) if bad],
        }


def run(config: SoakConfig | None = None, progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Run the soak; returns the figures.  ``ok`` is False on any wrong decision, a store read
    the plugin missed, memory that is not flat, or a plugin fleet rebuilt mid-run."""
    config = config or SoakConfig()
    config.validate()
    from oslo_config import cfg

    from arm_cpu_filter.scheduler import state
    from arm_cpu_filter.store import open_store
    from arm_cpu_filter.testing.nova import sandbox
    from arm_cpu_filter.testing.nova.bench import _scratch

    t_setup = time.perf_counter()
    sb = sandbox.get()
    workdir = tempfile.mkdtemp(prefix="arm-cpu-filter-soak-", dir=_scratch())
    url = f"file://{workdir}/store"
    ours_opts = {"store_url": url, "store_refresh_interval": REFRESH, "max_snapshot_age": MAX_AGE}
    old = {k: getattr(cfg.CONF.arm_cpu_filter, k) for k in ours_opts}
    logger = logging.getLogger("arm_cpu_filter.scheduler")
    log_count, propagate = LogCount(), logger.propagate
    try:
        names = [f"compute-{i:05d}" for i in range(config.hosts)]
        distinct = fleet_snapshots()
        clock = SimClock(EPOCH, config.refreshes * REFRESH / config.requests)
        fleet = SoakFleet(open_store(url), {n: distinct[i % len(distinct)] for i, n in enumerate(names)}, MAX_AGE)
        for name in names:
            fleet.publish(name, clock.now)
        hm = _host_manager(config.pipeline)
        ours = Stopwatch()
        for objs, method in ((hm.enabled_filters, "filter_all"), (hm.weighers, "weigh_objects")):
            for obj in objs:
                if type(obj).__module__.startswith("arm_cpu_filter."):
                    setattr(obj, method, ours.wrap(getattr(obj, method)))
        for key, value in ours_opts.items():
            cfg.CONF.set_override(key, value, "arm_cpu_filter")
        state.reset()
        plugin_fleet = state.fleet()
        plugin_fleet.clock = clock  # the injectable clock: refreshes and staleness follow simulated time
        soak = Soak(config, sb, hm, _host_states(names), fleet, clock, plugin_fleet, ours)
        soak.fill_pools()
        logger.addHandler(log_count)
        logger.propagate = False
        setup_s = time.perf_counter() - t_setup
        result = soak.run(progress)
        result["seconds"]["setup"] = round(setup_s, 1)
        result["plugin_log_lines"] = dict(log_count.levels)
        if state.fleet() is not plugin_fleet:
            result["failures"].append("the plugin's fleet was rebuilt mid-run (its options changed)")
        result["ok"] = not result["failures"]
        return result
    finally:
        logger.removeHandler(log_count)
        logger.propagate = propagate
        for key, value in old.items():
            cfg.CONF.set_override(key, value, "arm_cpu_filter")
        state.reset()
        shutil.rmtree(workdir, ignore_errors=True)
