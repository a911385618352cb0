"""Speed of this host's KVM read (wired into ``arm-cpu-filter bench``; target <= 100 ms).

Only meaningful on an ARM64 KVM host; elsewhere the probe says why it has no figure. The lab
(tests/lab) measures the same read inside emulated hosts.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from arm_cpu_filter.kvm.errors import KvmError
from arm_cpu_filter.kvm.reader import read_snapshot


def bench_all(quick: bool = False) -> dict[str, Any]:
    times = []
    try:
        for _ in range(3 if quick else 7):
            t = time.perf_counter()
            read_snapshot(host="bench")
            times.append(time.perf_counter() - t)
    except KvmError as exc:
        return {"notes": [f"snapshot read: no figure on this machine ({exc})"]}
    return {"snapshot_read_ms": statistics.median(times) * 1e3}
