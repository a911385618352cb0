"""Bundled sample host snapshots: real chips (Graviton2/3/4, Ampere Altra, ...) as a stated kernel's
KVM would describe them, converted from public dumps by ``tools/samples/convert.py``.

Each file in ``hosts/`` is a HostSnapshot (format 1, ``source: "converted"``) whose ``provenance``
says where every register came from and what was derived.  They are for demos, tests and
what-if questions ("would a Graviton3 guest move to Graviton4?"), not a substitute for reading
the real host.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from arm_cpu_filter.errors import UnknownNameError
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.snapshot.files import load_snapshot

SAMPLE_DIR = Path(__file__).with_name("hosts")


def sample_names() -> list[str]:
    return sorted(p.stem for p in SAMPLE_DIR.glob("*.json"))


@cache
def sample_host(name: str) -> HostSnapshot:
    """The bundled sample ``name`` (one shared object per name, so the engine's host views are reused)."""
    path = SAMPLE_DIR / f"{name}.json"
    if "/" in name or "\\" in name or not path.is_file():
        raise UnknownNameError(f"unknown sample host {name!r} (samples: {', '.join(sample_names())})")
    return load_snapshot(path)


def sample_hosts() -> dict[str, HostSnapshot]:
    """Every bundled sample, by name."""
    return {name: sample_host(name) for name in sample_names()}
