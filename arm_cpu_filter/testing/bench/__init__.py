"""Speed targets as measurements (``arm-cpu-filter bench``), not as timed tests.

Each probe returns a dict of named numbers; a probe whose optional package is not installed
(Nova, a database driver...) is skipped and listed under ``skipped`` with the pip line that
installs it, instead of failing the whole run.
"""

from __future__ import annotations

import importlib
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from arm_cpu_filter.engine import accepts, baseline, check, supported
from arm_cpu_filter.extras import missing_extra
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.table import LOWER, load_table

#: Targets from the issues: key -> (limit, unit); printed next to each figure.
TARGETS = {
    "check_us": 3,
    "check_new_host_us": 300,
    "migrate_us": 20,
    "migrate_new_host_us": 1000,
    "supported_ms": 2,
    "baseline_10k_ms": 15,
    "baseline_10k_peak_mb": 200,
    "cli_check_startup_ms": 150,
    "models_realize_us": 200,
    "models_catalog_ms": 50,
    "domcaps_ms": 30,
    "snapshot_read_ms": 100,
    "nova_overhead_per_request_ms": 10,
    "nova_overhead_prefiltered_ms": 2,
    "store_load_10k_s": 1,
    "store_load_10k_peak_mb": 300,
}


def _best(fn: Callable[[], Any], repeat: int, number: int) -> float:
    """Best-of-``repeat`` seconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


def reference_host(name: str = "bench", variant: int = 0) -> HostSnapshot:
    """A full-feature 6.12 host (lab values of ``-cpu max``), ``variant`` lowers fields."""
    from arm_cpu_filter.testing.bench.reference import MAX_612

    regs = {k: v for k, (v, _) in MAX_612.items()}
    masks = {k: m for k, (_, m) in MAX_612.items()}
    table = load_table()
    lowerable = [f for r in ("ID_AA64ISAR0_EL1", "ID_AA64ISAR1_EL1") for f in table.register(r).fields
                 if f.policy == LOWER and f.extract(regs[r])]
    for bit, f in enumerate(lowerable):
        if variant >> bit & 1:
            regs[f.register] = f.insert(regs[f.register], f.extract(regs[f.register]) - 1)
    return HostSnapshot(name, "6.12.95", regs, masks,
                        frozenset({"psci-0.2", "pmu-v3", "sve", "ptrauth-address", "ptrauth-generic"}),
                        {"writable_impl_id_regs": False})


def bench_engine() -> dict[str, float]:
    host = reference_host()
    narrower = reference_host(variant=5).as_definition()
    check(narrower, host)  # warm the host view
    out = {"check_us": _best(lambda: check(narrower, host), 5, 2000) * 1e6}
    # first check on a host never seen: a fresh snapshot body (new content), definition already
    # packed.  The verdict (``accepts``, what the scheduler and the lab's timing ask): every fresh
    # host refuses ``narrower``, so ``check`` would time the reference rule's blockers instead
    fresh = [reference_host(f"new{i}", 64 + i) for i in range(50)]
    t = time.perf_counter()
    for h in fresh:
        accepts(narrower, h)
    out["check_new_host_us"] = (time.perf_counter() - t) / len(fresh) * 1e6
    out["supported_ms"] = _best(lambda: supported(reference_host()), 3, 20) * 1e3
    distinct = [reference_host(f"v{i}", i) for i in range(20)]
    # 10,000 host records over 20 snapshot bodies, as the content-addressed store loads them
    fleet = [replace(distinct[i % 20], host=f"h{i}") for i in range(10_000)]
    t = time.perf_counter()
    result = baseline(fleet)
    out["baseline_10k_ms"] = (time.perf_counter() - t) * 1e3
    # memory in a second run (tracemalloc slows the code it watches): the fleet plus the work
    tracemalloc.start()
    baseline([replace(distinct[i % 20], host=f"h{i}") for i in range(10_000)])
    out["baseline_10k_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert result.definition is not None
    return out


def bench_migrate() -> dict[str, float]:
    """Live ``migrate()`` of a host-passthrough VM: onto a destination already seen (its host
    view warm), and onto destinations never seen.  Hosts carry the synthetic format-2 facts of
    ``testing.vmfacts``."""
    from arm_cpu_filter.engine.migrate import migrate, passthrough_vm
    from arm_cpu_filter.testing.vmfacts import with_facts

    vm = passthrough_vm(with_facts(reference_host("src")))
    known = with_facts(reference_host("dst"))
    assert migrate(vm, known).ok
    out = {"migrate_us": _best(lambda: migrate(vm, known), 5, 2000) * 1e6}
    fresh = [with_facts(reference_host(f"new{i}", 64 + i)) for i in range(50)]
    t = time.perf_counter()
    for h in fresh:
        migrate(vm, h)
    out["migrate_new_host_us"] = (time.perf_counter() - t) / len(fresh) * 1e6
    return out


def bench_cli_startup() -> dict[str, float]:
    """Wall time of a real ``check`` of a small file, as an installed CLI starts: with bytecode
    (pip compiles it at install; here a first, untimed run writes it to a private cache even
    where ``PYTHONDONTWRITEBYTECODE`` is set, so source compilation is not counted)."""
    import json
    import os
    import tempfile

    host = reference_host()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "host.json")
        with open(path, "w") as fh:
            json.dump(host.to_dict(), fh)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
        argv = [sys.executable, "-m", "arm_cpu_filter", "check", "--definition", path, "--host", path]
        subprocess.run(argv, check=True, capture_output=True, env=env)  # writes the bytecode
        times = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - t)
    return {"cli_check_startup_ms": statistics.median(times) * 1e3}


#: Adapter probes: module -> function returning a dict of figures.
OPTIONAL = [
    ("arm_cpu_filter.testing.bench.kvm", "bench_all"),
    ("arm_cpu_filter.testing.bench.models", "bench_all"),
    ("arm_cpu_filter.testing.bench.libvirt", "bench_all"),
    ("arm_cpu_filter.testing.nova.bench", "bench_all"),
]


def skipped(probe: str, exc: ImportError) -> dict[str, str]:
    """The ``skipped`` entry of a probe that could not run because ``exc``'s module is missing;
    re-raises anything that is not a missing optional package (a bug must not pass as a skip)."""
    missing = missing_extra(exc, probe)
    if missing is None:
        raise exc
    return {"probe": probe, "reason": str(missing), "install": missing.pip}


def run_all(quick: bool = False) -> dict[str, Any]:
    """Every probe's figures, plus ``notes`` and ``skipped`` (probes that could not run) when any."""
    out: dict[str, Any] = {}
    out.update(bench_engine())
    out.update(bench_migrate())
    out.update(bench_cli_startup())
    notes, skips = [], []
    for module, func in OPTIONAL:
        try:
            figures = getattr(importlib.import_module(module), func)(quick=quick)
        except ImportError as exc:
            skips.append(skipped(module.removeprefix("arm_cpu_filter.testing."), exc))
            continue
        notes.extend(figures.pop("notes", []))
        skips.extend(figures.pop("skipped", []))
        out.update(figures)
    if notes:
        out["notes"] = notes
    if skips:
        out["skipped"] = skips
    return out
