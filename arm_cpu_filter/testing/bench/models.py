"""Speed of the model layer (wired into ``arm-cpu-filter bench``): realizing a model with
overrides must stay <= 200 us warm, loading the whole catalog <= 50 ms."""

from __future__ import annotations

import time

SPEC = "grace-v1,feat_AES=pmull,hw_prop_DIC=off,sve=off,SYSREG_ID_AA64ISAR0_EL1_RDM=0"


def bench_realize_us(spec: str = SPEC, rounds: int = 2000) -> float:
    """Median-of-5 mean microseconds per warm ``realize(spec)``."""
    from arm_cpu_filter.models import realize

    realize(spec)  # warm: catalog, table, properties and the model's chain
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(rounds // 5):
            realize(spec)
        samples.append((time.perf_counter() - t0) / (rounds // 5) * 1e6)
    return sorted(samples)[2]


def bench_catalog_ms(rounds: int = 5) -> float:
    """Best milliseconds to load and validate every model file (table/properties warm)."""
    from arm_cpu_filter.models.registry import load_catalog
    from arm_cpu_filter.properties import properties

    properties()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        load_catalog()
        best = min(best, (time.perf_counter() - t0) * 1e3)
    return best


def bench_all(quick: bool = False) -> dict[str, float]:
    """Figures for ``arm-cpu-filter bench``."""
    rounds = 500 if quick else 2000
    return {"models_realize_us": round(bench_realize_us(rounds=rounds), 1),
            "models_catalog_ms": round(bench_catalog_ms(rounds=3 if quick else 5), 2)}
