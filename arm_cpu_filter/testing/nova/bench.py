"""Speed of the Nova plugin at fleet scale (wired into ``arm-cpu-filter bench``).

- ``nova_overhead_per_request_ms``: 10,000 hosts over 20 distinct snapshots; the time our
  filter and weigher add per request when run through Nova's own filter and weight
  handlers (total with ours minus the same handlers without ours), mean over a passthrough
  boot, a named-model boot and a host-passthrough live migration, warm caches.  This
  includes the bookkeeping Nova's handlers do for any filter or weigher (per candidate: a
  host/node tuple per filter; per weigher two debug dicts, a method call and a formatted
  string per host, debug logging on or off); ``plugin_code_ms[...]`` is our code alone
  (``filter_all`` + ``weigh_objects``, and the WeighedHost list the handler would build);
- ``nova_floor_ms[...]`` (mean: ``nova_floor_per_request_ms``): what Nova's handlers charge
  for a plugin that decides exactly as ours does at no cost of its own -- a filter returning
  our filter's hosts and a weigher returning our weigher's weights, with its bounds and
  multiplier -- so ``nova_overhead_above_floor_ms[...]`` (mean:
  ``nova_overhead_above_floor_per_request_ms``) is the part of the overhead that is ours.
  A request whose filter refuses most hosts can cost less than no plugin at all (the weight
  handler then sorts fewer hosts): its overhead and floor are negative.
  ``nova_weigher_floor_ms`` is what Nova's weight handler charges for a weigher that
  returns zeros for all 10,000 hosts;
- ``nova_overhead_prefiltered_ms``: the named-model boot again, when its flavor also requires
  the model's trait (``arm-cpu-filter flavor``): placement then returns only the hosts whose
  provider config carries ``CUSTOM_ARM_CPU_MODEL_<NAME>`` (the agent writes one per model the
  host realizes), so Nova's handlers and ours see those candidates only;
  ``nova_overhead_above_floor_prefiltered_ms`` is its part above Nova's floor;
  ``nova_candidates[...]`` says how many candidates each request had, ``nova_kept[...]`` how
  many our filter passed, and ``nova_weigher_floor_ms[...]`` what Nova's weight handler
  charges for any weigher over the candidates;
- ``nova_pipeline_overhead_ms[...]`` (mean: ``nova_pipeline_overhead_per_request_ms``): the same
  requests through the scheduler an operator runs -- Nova's own filters of the sandbox's
  ``nova.conf`` (``ComputeFilter``, ``ImagePropertiesFilter``) and all of Nova's weighers, with
  ours appended after them as the README's snippet does, minus that pipeline without ours
  (``nova_pipeline_ms[...]``).  Where our filter passes few hosts, every weigher after it weighs
  few: the plugin then saves time, and the figure is negative;
- ``store_load_10k_s`` / ``store_load_10k_peak_mb``: reading 10,000 host records (file
  backend) plus the 20 snapshots they point at, as a scheduler does on refresh.
"""

from __future__ import annotations

import os
import tempfile
import time
import tracemalloc
import uuid as uuidlib
from typing import Any

from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.testing.bench import skipped

HOSTS, DISTINCT = 10000, 20


def distinct_snapshots(n: int = DISTINCT) -> list[HostSnapshot]:
    """``n`` distinct snapshots: the bundled samples, then kernel-version variants of them, as
    format 2 with the synthetic kvm facts of ``testing.vmfacts`` (moves need them)."""
    from arm_cpu_filter.samples import sample_hosts
    from arm_cpu_filter.testing.vmfacts import with_kernel_facts

    base = [s for s in sample_hosts().values() if s.writable_masks is not None]
    out = []
    for i in range(n):
        s = base[i % len(base)]
        data = s.to_dict()
        if i >= len(base):
            data["kernel"] = f"{s.kernel_version[0]}.{s.kernel_version[1]}.{200 + i}"
        out.append(with_kernel_facts(HostSnapshot.from_dict(data)))
    return out


def fill_store(url: str, hosts: int = HOSTS, distinct: int = DISTINCT) -> dict[str, HostSnapshot]:
    """Publish ``hosts`` host records over ``distinct`` snapshots; returns host -> snapshot."""
    from arm_cpu_filter.store import open_store

    store = open_store(url)
    snaps = distinct_snapshots(distinct)
    fleet = {f"compute-{i:05d}": snaps[i % len(snaps)] for i in range(hosts)}
    now = time.time()
    for name, snap in fleet.items():
        store.publish(snap, host=name, taken_at=now)
    return fleet


def fill_sql(url: str, fleet: dict[str, HostSnapshot]) -> str:
    from arm_cpu_filter.store import open_store

    store = open_store(url)
    now = time.time()
    for name, snap in fleet.items():
        store.publish(snap, host=name, taken_at=now)
    return url


def bench_store_load(url: str) -> dict[str, float]:
    from arm_cpu_filter.store import open_store

    def load() -> int:
        store = open_store(url)
        records = store.hosts()
        for fp in {r.fingerprint for r in records.values()}:
            store.snapshot(fp)
        return len(records)

    t = time.perf_counter()
    n = load()
    seconds = time.perf_counter() - t
    tracemalloc.start()
    load()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"store_load_10k_s": round(seconds, 3), "store_load_10k_peak_mb": round(peak / 2**20, 1),
            "store_load_hosts": n}


def host_states(names: list[str]) -> list[Any]:
    """Nova HostStates for ``names`` built the way HostManager builds them from ComputeNodes."""
    from nova import objects
    from nova.scheduler.host_manager import HostState
    from oslo_utils import timeutils

    from arm_cpu_filter.testing.nova.sandbox import CELL1, compute_node_fields

    out = []
    now = timeutils.utcnow()  # Nova's ComputeFilter asks the servicegroup API whether the service is up
    for i, name in enumerate(names):
        hs = HostState(name, name, CELL1)
        node = objects.ComputeNode(id=i + 1, uuid=str(uuidlib.uuid4()), updated_at=None, **compute_node_fields(name))
        service = {"host": name, "disabled": False, "forced_down": False, "created_at": now, "updated_at": now,
                   "last_seen_up": now}
        hs.update(compute=node, service=service, aggregates=[], inst_dict={})
        out.append(hs)
    return out


def trait_hosts(fleet: dict[str, HostSnapshot], model: str) -> list[str]:
    """The hosts whose agent-written provider config carries ``model``'s trait: what placement
    returns for a flavor with ``trait:CUSTOM_ARM_CPU_MODEL_<NAME>=required``."""
    from arm_cpu_filter.engine.catalog import usable_models

    carries = {fp: model in usable_models(snap) for fp, snap in {s.fingerprint: s for s in fleet.values()}.items()}
    return [host for host, snap in fleet.items() if carries[snap.fingerprint]]


def bench_nova(url: str, fleet: dict[str, HostSnapshot], repeat: int = 5) -> dict[str, float]:
    from oslo_config import cfg

    from arm_cpu_filter.scheduler import state
    from arm_cpu_filter.store import open_store
    from arm_cpu_filter.testing.nova import sandbox

    sb = sandbox.get()
    hm = sb.host_manager
    conf = cfg.CONF
    old = conf.arm_cpu_filter.store_url, conf.arm_cpu_filter.store_refresh_interval
    conf.set_override("store_url", url, "arm_cpu_filter")
    conf.set_override("store_refresh_interval", 30, "arm_cpu_filter")
    state.reset()
    try:
        states = host_states(list(fleet))
        ours = [f for f in hm.enabled_filters if is_ours(f)]
        our_weighers = [w for w in hm.weighers if is_ours(w)]
        migrating = str(uuidlib.uuid4())
        first = next(iter(fleet))
        open_store(url).record_instance(migrating, fleet[first].as_definition(), first)
        model = _a_model()
        specs = {
            "passthrough boot": sb.request_spec({}),
            "named-model boot": sb.request_spec({"arm_cpu:model": model}),
            "passthrough live migration": sb.request_spec({}, instance_uuid=migrating, ignore_hosts=[first]),
        }

        from nova.scheduler.weights import WeighedHost

        candidates = {label: states for label in specs}
        # the named-model boot once more, its flavor requiring the model's trait: placement's answer
        prefiltered = "named-model boot, trait required"
        specs[prefiltered] = sb.request_spec({"arm_cpu:model": model})
        with_trait = set(trait_hosts(fleet, model))
        candidates[prefiltered] = [h for h in states if h.host in with_trait]

        def ours_only(spec: Any, states: list[Any]) -> float:
            """Our code alone: filter_all plus weigh_objects, without Nova's handler bookkeeping."""
            t = time.perf_counter()
            hosts = list(ours[0].filter_all(states, spec))
            for w in our_weighers:
                w.weigh_objects([WeighedHost(h, 0.0) for h in hosts], spec)
            return time.perf_counter() - t

        def run(spec: Any, with_ours: bool, weighers: list[Any] | None = None, states: list[Any] = states,
                filters: list[Any] | None = None) -> float:
            if with_ours:
                return timed_request(hm, spec, ours, our_weighers, states)
            return timed_request(hm, spec, filters or [], weighers or [], states)

        out: dict[str, float] = {}
        cold = time.perf_counter()
        for label, spec in specs.items():
            run(spec, True, states=candidates[label])
        out["nova_first_requests_s"] = round(time.perf_counter() - cold, 3)
        overheads, above = [], []
        for label, spec in specs.items():
            hosts = candidates[label]
            # Nova's own cost for a plugin deciding the same at no cost of its own: a filter that
            # returns our filter's answer, a weigher that returns our weigher's weights
            kept = list(ours[0].filter_all(hosts, spec))
            answer = [w.weigh_objects([WeighedHost(h, 0.0) for h in kept], spec) for w in our_weighers]
            same_filter = [answer_filter(kept)]
            same_weighers = [answer_weigher(w, weights) for w, weights in zip(our_weighers, answer)]
            with_ours, without, floor = [], [], []
            for _ in range(repeat):  # interleaved, so that a load change hits all three alike
                with_ours.append(run(spec, True, states=hosts))
                without.append(run(spec, False, states=hosts))
                floor.append(run(spec, False, same_weighers, states=hosts, filters=same_filter))
            ms = (min(with_ours) - min(without)) * 1e3
            out[f"nova_overhead_ms[{label}]"] = round(ms, 2)
            out[f"nova_floor_ms[{label}]"] = round((min(floor) - min(without)) * 1e3, 2)
            out[f"nova_overhead_above_floor_ms[{label}]"] = round((min(with_ours) - min(floor)) * 1e3, 2)
            out[f"plugin_code_ms[{label}]"] = round(min(ours_only(spec, hosts) for _ in range(repeat)) * 1e3, 2)
            out[f"nova_candidates[{label}]"] = len(hosts)
            out[f"nova_kept[{label}]"] = len(kept)
            if label != prefiltered:
                overheads.append(ms)
                above.append(out[f"nova_overhead_above_floor_ms[{label}]"])
        out["nova_overhead_per_request_ms"] = round(sum(overheads) / len(overheads), 2)
        out["nova_overhead_prefiltered_ms"] = out[f"nova_overhead_ms[{prefiltered}]"]
        out["nova_floor_per_request_ms"] = round(
            sum(out[f"nova_floor_ms[{label}]"] for label in specs if label != prefiltered) / len(overheads), 2)
        out["nova_overhead_above_floor_per_request_ms"] = round(sum(above) / len(above), 2)
        out["nova_overhead_above_floor_prefiltered_ms"] = out[f"nova_overhead_above_floor_ms[{prefiltered}]"]
        boot = specs["passthrough boot"]
        floor = min(run(boot, False, [zero_weigher()]) for _ in range(repeat)) - min(run(boot, False) for _ in range(repeat))
        out["nova_weigher_floor_ms"] = round(floor * 1e3, 2)
        few = candidates[prefiltered]
        floor = min(run(boot, False, [zero_weigher()], states=few) for _ in range(repeat)) - min(
            run(boot, False, states=few) for _ in range(repeat))
        out[f"nova_weigher_floor_ms[{prefiltered}]"] = round(floor * 1e3, 2)
        out.update(pipeline_overhead(hm, specs, candidates, prefiltered, repeat))
        out["nova_bench_hosts"] = len(states)
        return out
    finally:
        conf.set_override("store_url", old[0], "arm_cpu_filter")
        conf.set_override("store_refresh_interval", old[1], "arm_cpu_filter")
        state.reset()


def is_ours(plugin: Any) -> bool:
    """Is ``plugin`` (a Nova filter or weigher object) this project's?"""
    return type(plugin).__module__.startswith("arm_cpu_filter")


def timed_request(hm: Any, spec: Any, filters: list[Any], weighers: list[Any], hosts: list[Any]) -> float:
    """Seconds one request takes through Nova's filter handler (skipped without filters) and weight
    handler, as the scheduler runs them."""
    t = time.perf_counter()
    if filters:
        hosts = list(hm.filter_handler.get_filtered_objects(filters, hosts, spec) or [])
    hm.weight_handler.get_weighed_objects(weighers, hosts, spec)
    return time.perf_counter() - t


def pipeline_overhead(hm: Any, specs: dict[str, Any], candidates: dict[str, list[Any]], prefiltered: str,
                      repeat: int) -> dict[str, float]:
    """What our filter and weigher change in the scheduler an operator runs: the sandbox's Nova
    filters and all of Nova's weighers, ours appended after them (module docstring)."""
    nova_filters = [f for f in hm.enabled_filters if not is_ours(f)]
    nova_weighers = [w for w in hm.weighers if not is_ours(w)]
    with_ours = (hm.enabled_filters, hm.weighers)  # ours come last in both (sandbox.nova_conf)

    out: dict[str, float] = {}
    overheads = []
    for label, spec in specs.items():
        hosts = candidates[label]
        timed_request(hm, spec, *with_ours, hosts)  # warm
        plugin, nova = [], []
        for _ in range(max(2, repeat // 2)):  # interleaved, as above; each run weighs with all of Nova's weighers
            plugin.append(timed_request(hm, spec, *with_ours, hosts))
            nova.append(timed_request(hm, spec, nova_filters, nova_weighers, hosts))
        ms = (min(plugin) - min(nova)) * 1e3
        out[f"nova_pipeline_ms[{label}]"] = round(min(nova) * 1e3, 1)
        out[f"nova_pipeline_overhead_ms[{label}]"] = round(ms, 2)
        if label != prefiltered:
            overheads.append(ms)
    out["nova_pipeline_overhead_per_request_ms"] = round(sum(overheads) / len(overheads), 2)
    return out


def answer_filter(kept: list[Any]) -> Any:
    """A filter that returns ``kept`` whatever it is given (it costs Nova's handler only)."""
    from nova.scheduler import filters

    class AnswerFilter(filters.BaseHostFilter):
        def host_passes(self, host_state: Any, spec_obj: Any) -> bool:
            return host_state in kept

        def filter_all(self, filter_obj_list: Any, spec_obj: Any) -> list[Any]:
            return kept

    return AnswerFilter()


def answer_weigher(like: Any, weights: list[float]) -> Any:
    """A weigher that returns ``weights`` at no cost, with ``like``'s bounds and multiplier (so
    Nova's handler normalizes, multiplies and formats the same numbers as for ``like``)."""
    from nova.scheduler import weights as nova_weights

    class AnswerWeigher(nova_weights.BaseHostWeigher):
        minval, maxval = like.minval, like.maxval
        weight_multiplier = like.weight_multiplier

        def _weigh_object(self, host_state: Any, weight_properties: Any) -> float:
            return 0.0

        def weigh_objects(self, weighed_obj_list: list[Any], weight_properties: Any) -> list[float]:
            return weights

    return AnswerWeigher()


def zero_weigher() -> Any:
    """A weigher that weighs nothing: what Nova's handler costs for any weigher."""
    from nova.scheduler import weights

    class ZeroWeigher(weights.BaseHostWeigher):
        """Weighs nothing: what Nova's handler costs for any weigher over the candidates."""

        def _weigh_object(self, host_state: Any, weight_properties: Any) -> float:
            return 0.0

        def weigh_objects(self, weighed_obj_list: list[Any], weight_properties: Any) -> list[float]:
            return [0.0] * len(weighed_obj_list)

    return ZeroWeigher()


def _a_model() -> str:
    """A catalog model usable on at least one bundled sample (so the request admits hosts)."""
    from arm_cpu_filter.engine.catalog import usable_models

    for snap in distinct_snapshots():
        names = usable_models(snap)
        if names:
            return names[0]
    return "kvm-base-v1"


def _scratch() -> str | None:
    """tmpfs when there is one: filling the store fsyncs every record, loading is what we time."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def bench_all(quick: bool = False) -> dict[str, Any]:
    hosts = 1000 if quick else HOSTS
    with tempfile.TemporaryDirectory(prefix="arm-cpu-filter-bench-", dir=_scratch()) as tmp:
        url = f"file://{tmp}/store"
        fleet = fill_store(url, hosts)
        out: dict[str, Any] = bench_store_load(url)
        skips = []
        try:
            sql = bench_store_load(fill_sql(f"sqlite:///{tmp}/store.sqlite", fleet))
            out.update({f"sqlite_{k}": v for k, v in sql.items() if k != "store_load_hosts"})
        except ImportError as exc:
            skips.append(skipped("sqlite store load", exc))
        try:
            out.update(bench_nova(url, fleet, repeat=3 if quick else 5))
        except ImportError as exc:
            skips.append(skipped("nova scheduler overhead", exc))
        if skips:
            out["skipped"] = skips
        return out


if __name__ == "__main__":
    import json

    print(json.dumps(bench_all(), indent=1))
