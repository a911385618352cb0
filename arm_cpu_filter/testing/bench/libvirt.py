"""Speed of domain capabilities (target: the whole catalog in <= 30 ms, warm)."""

from __future__ import annotations

import time

from arm_cpu_filter.libvirt.caps import catalog_definitions, cpu_caps
from arm_cpu_filter.libvirt.domcaps import document, tostring


def _once(host, models, vendors) -> str:  # noqa: ANN001 - bench helper
    return tostring(document(cpu_caps(host, models, vendors)))


def bench_domcaps_ms(host=None, repeat: int = 5) -> float:  # noqa: ANN001
    """Best-of-``repeat`` milliseconds for the whole catalog's document on one host, with the
    catalog realized and the host's views warm (what a long-running agent pays per request)."""
    from arm_cpu_filter.testing.bench import reference_host

    host = host or reference_host()
    models, vendors = catalog_definitions()
    _once(host, models, vendors)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        _once(host, models, vendors)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def bench_all(quick: bool = False) -> dict[str, float]:
    from arm_cpu_filter.testing.bench import reference_host

    host = reference_host("domcaps-cold")
    t = time.perf_counter()
    models, vendors = catalog_definitions()
    _once(host, models, vendors)
    cold = (time.perf_counter() - t) * 1e3
    return {
        "domcaps_ms": bench_domcaps_ms(repeat=3 if quick else 10),
        "domcaps_cold_ms": cold,
        "domcaps_models": float(len(models)),
    }
