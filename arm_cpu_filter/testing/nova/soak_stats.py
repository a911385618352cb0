"""Measurements of the soak run (:mod:`arm_cpu_filter.testing.nova.soak`): memory samples and
the flatness criterion, latency percentiles, a stopwatch for our part of Nova's handler calls,
and a log counter (the plugin logs each failing-closed host once; a soak makes thousands)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from arm_cpu_filter.errors import InputError

#: share of the run excluded from the memory criterion (caches filling, first snapshots seen)
WARMUP = 0.1
#: RSS may grow by 5 % or this much, whichever is more, between the quarters compared
RSS_FLOOR = 8 << 20
CRITERION = ("flat: after warm-up (the first tenth of the requests), the largest RSS sample of the last quarter "
             "exceeds the largest of the first quarter by at most 5 % or 8 MiB, whichever is more")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def memory_sample() -> tuple[int, int]:
    """(RSS bytes, ``sys.getallocatedblocks()``): cheap, no tracemalloc (and no
    ``gc.get_objects()``, which takes tens of ms with Nova loaded)."""
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError) as exc:
        raise InputError(f"soak: cannot read /proc/self/statm ({exc}): memory is measured on Linux") from None
    return rss, sys.getallocatedblocks()


def flatness(samples: Sequence[tuple[int, int, int]], requests: int) -> dict[str, Any]:
    """The memory verdict (:data:`CRITERION`) over (request, rss, blocks) samples.  Allocated
    blocks are compared the same way for the record: they also move with caches keyed by the
    distinct snapshots and CPUs seen, which a changing fleet grows."""
    post = [s for s in samples if s[0] >= requests * WARMUP]
    q = max(1, len(post) // 4)
    first, last = post[:q], post[-q:]
    out: dict[str, Any] = {"criterion": CRITERION, "samples": len(samples), "warmup_requests": int(requests * WARMUP)}
    if not post:
        return out | {"flat": False}
    for idx, name, unit in ((1, "rss_mb", 2**20), (2, "allocated_blocks", 1)):
        a, b = max(s[idx] for s in first), max(s[idx] for s in last)
        out[name] = {"first_quarter_max": round(a / unit, 1), "last_quarter_max": round(b / unit, 1),
                     "growth": round((b - a) / unit, 1), "growth_pct": round(100 * (b - a) / max(a, 1), 1)}
    a, b = max(s[1] for s in first), max(s[1] for s in last)
    out["rss_mb"]["allowance"] = round(max(0.05 * a, RSS_FLOOR) / 2**20, 1)
    if len(post) >= 2:  # least-squares RSS slope after warm-up, for the record
        xs, ys = [s[0] for s in post], [s[1] for s in post]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs) or 1.0
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var
        out["rss_slope_kb_per_1000_requests"] = round(slope * 1000 / 1024, 1)
    out["rss_mb_peak"] = round(max(s[1] for s in samples) / 2**20, 1)
    out["flat"] = b - a <= max(0.05 * a, RSS_FLOOR)
    return out


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in ms (nearest rank) of durations in seconds."""
    if not values:
        return {}
    v = sorted(values)

    def rank(p: float) -> float:
        return v[min(len(v) - 1, max(0, round(p * len(v)) - 1))] * 1e3

    return {"p50": round(rank(0.5), 2), "p90": round(rank(0.9), 2), "p99": round(rank(0.99), 2),
            "max": round(v[-1] * 1e3, 2)}


class Stopwatch:
    """Time spent inside wrapped callables (our filter and weigher inside Nova's handlers)."""

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - t
        return timed


class LogCount(logging.Handler):
    """Counts log records by level instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.levels: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.levels[record.levelname] += 1
