"""The engine's caches: explicit, bounded objects it owns, never attributes on its inputs.

Snapshots and definitions are immutable and compared by identity (``eq=False``), so the fast
key is the object itself; a snapshot seen for the first time is then looked up by the content the
acceptance rule reads (``admission_key``), so the thousands of host records a store hands out
over a few snapshot bodies compile once per body.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from arm_cpu_filter.snapshot import HostSnapshot

V = TypeVar("V")


class BoundedCache(Generic[V]):
    """A dict that forgets its oldest entry beyond ``size`` entries (first in, first out:
    a hit costs one dict lookup, no reordering)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: dict[Hashable, V] = {}

    def get(self, key: Hashable) -> V | None:
        return self._data.get(key)

    def put(self, key: Hashable, value: V) -> V:
        data = self._data
        if len(data) >= self.size:
            del data[next(iter(data))]
        data[key] = value
        return value

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value under ``key``, made (and kept) on a miss."""
        value = self._data.get(key)
        return self.put(key, make()) if value is None else value

    def clear(self) -> None:
        self._data.clear()

    def values(self) -> Iterable[V]:
        return self._data.values()

    def __len__(self) -> int:
        return len(self._data)


def admission_key(snap: HostSnapshot) -> tuple:
    """What the ID-register acceptance rule reads from a snapshot, as a hashable key: kernel,
    registers, writable masks, vCPU features, capabilities.  Not format 2's vCPU facts (register
    lists, vector lengths: ``migrate`` reads those from the snapshot itself), whose digest in
    ``HostSnapshot.content_key`` costs more than a whole first check."""
    masks = snap.writable_masks
    return (
        snap.kernel,
        tuple(snap.registers.items()),
        None if masks is None else tuple(masks.items()),
        snap.vcpu_features,
        tuple(sorted(k for k, v in snap.capabilities.items() if v)),
    )


class SnapshotCache(Generic[V]):
    """Values derived from (snapshot, vCPU features) by the acceptance rule, built once per
    ``admission_key``.

    Bounds: ``size`` snapshot objects by identity (the entry holds the object, so its identity
    stays unique) and ``size`` distinct contents."""

    def __init__(self, build: Callable[[HostSnapshot, frozenset[str]], V], size: int = 4096) -> None:
        self._build = build
        self._by_object: BoundedCache[V] = BoundedCache(size)
        self._by_content: BoundedCache[V] = BoundedCache(size)

    def __call__(self, snap: HostSnapshot, features: frozenset[str]) -> V:
        key = (snap, features)
        value = self._by_object.get(key)
        if value is None:
            content = (admission_key(snap), features)
            value = self._by_content.get(content)
            if value is None:
                value = self._by_content.put(content, self._build(snap, features))
            self._by_object.put(key, value)
        return value

    def clear(self) -> None:
        self._by_object.clear()
        self._by_content.clear()
