"""The compiled acceptance rule: a verdict in a handful of big-integer operations.

A host view is compiled once into integers over the whole register file, 64 bits per register
(slot) in the host's register order:

* ``target``/``exact``: bits that must equal the target (KVM's limit; 0 for CLIDR's RES0 bits
  and MIDR's upper half when implementation IDs are writable);
* per field KVM compares by policy, a *lane* of ``width + 1`` bits in a second, "spread" integer
  whose top (guard) bit stays free; the field's accepted values (policy, signedness and setter
  rules folded in) form one or two intervals of ordinals ``[lo, hi]``, and all lanes compare at
  once: ``(hi | guard) - v`` keeps a lane's guard bit iff ``v <= hi``, ``(v | guard) - lo`` iff
  ``v >= lo`` (no borrow crosses lanes).

A definition is packed once per register layout into the same two forms.  Registers the
integers cannot express (more than two intervals, CLIDR on a host without CTR_EL0.IDC) stay
"slow" and go through the reference rule.  Caches are bounded (see the constants below).

Compiling costs a walk over every register of the host, which a host checked once never earns
back: a host's first check (``first_check``) runs the same operations over only the registers
the definition changes, one chunk each; its second check compiles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import NamedTuple

from arm_cpu_filter.engine.cache import BoundedCache, SnapshotCache
from arm_cpu_filter.engine.hostview import (
    CLIDR,
    GENERIC,
    IMPL_ID,
    HostView,
    RegisterView,
    hidden_masks,
    host_view,
    reads_as_zero,
    register_view,
)
from arm_cpu_filter.engine.rule import check_register, field_accepts
from arm_cpu_filter.engine.setters import kernel_series, setter_rules
from arm_cpu_filter.snapshot import PER_VCPU_REGISTERS, CpuDefinition, HostSnapshot
from arm_cpu_filter.table import EXACT, HIGHER, HIGHER_OR_ZERO, LOWER, Field, load_table

_FULL = (1 << 64) - 1
#: bounds of the caches below (entries)
COMPILED_HOSTS = 4096
REGISTER_CHUNKS = 16384
PACKED_DEFINITIONS = 4096
LAYOUTS = 256


@cache
def _lanes(register: str) -> tuple[tuple[tuple[Field, int], ...], int, int]:
    """Policy fields of a table register with their lane offsets, the register's spread width
    and its guard bits (registers outside the table have no lanes)."""
    reg = load_table().get(register)
    lanes, offset, guard = [], 0, 0
    for f in reg.fields if reg is not None else ():
        if f.policy:
            lanes.append((f, offset))
            guard |= 1 << (offset + f.width)
            offset += f.width + 1
    return tuple(lanes), offset, guard


@cache
def _open_hi(register: str) -> int:
    """Every lane of a register accepting any value: ``hi`` of a register KVM compares exactly."""
    return sum(f.max << off for f, off in _lanes(register)[0])


def _flip(f: Field) -> int:
    """XOR that turns a raw value into an unsigned ordinal (signed fields: two's complement order)."""
    return 1 << (f.width - 1) if f.signed else 0


def _runs(ordinals: set[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for u in sorted(ordinals):
        if runs and runs[-1][1] == u - 1:
            runs[-1] = (runs[-1][0], u)
        else:
            runs.append((u, u))
    return runs


def _refused(f: Field, value: int, series: str) -> bool:
    """Does a custom setter of a ``series`` kernel refuse raw ``value`` (``setters.refusal``)?"""
    return any(rule.refuses(value, series) for rule in setter_rules().get(f.qualname, ()))


def _intervals(f: Field, lim: int, series: str) -> list[tuple[int, int]] | None:
    """Accepted ordinals of a policy-checked field as intervals (None: the host's own value is
    refused by a setter, so the register must equal the host's)."""
    flip, top = _flip(f), f.max
    if f.qualname in setter_rules():
        if _refused(f, lim, series):
            return None
        return _runs({v ^ flip for v in range(top + 1) if field_accepts(f, v, lim) and not _refused(f, v, series)})
    lu = lim ^ flip
    if f.policy == LOWER:
        return [(0, lu)]
    if f.policy == HIGHER:
        return [(lu, top)]
    if f.policy == HIGHER_OR_ZERO:
        return [(lu, lu)] if lim == 0 else [(lu, top), (flip, flip)]
    if f.policy == EXACT and f.safe is not None and f.safe != lim:
        return [(lu, lu), (f.safe ^ flip, f.safe ^ flip)]
    return [(lu, lu)]


#: a lane's bounds for one limit: (lo, hi, lo2, hi2, alt) shifted to the lane, or one of these
_UNCHANGED, _SLOW = "unchanged", "slow"
_LaneBounds = tuple[int, int, int, int, int] | str


def _lane_bounds(f: Field, off: int, lim: int, series: str) -> _LaneBounds:
    """A policy field's lane bounds for limit ``lim``: shifted to the lane, or a special case."""
    spans = _intervals(f, lim, series)
    if spans is None:
        return _UNCHANGED
    if len(spans) > 2:
        return _SLOW
    (a, b), *rest = spans
    lo2, hi2, alt = (rest[0][0] << off, rest[0][1] << off, 1 << (off + f.width)) if rest else (0, 0, 0)
    return a << off, b << off, lo2, hi2, alt


@cache
def _lane_table(f: Field, series: str | None) -> dict[int, _LaneBounds]:
    """A policy field's lane bounds by limit value, filled as values are met (table data: one per
    field and kernel series -- None for fields without setter rules -- per process, at most
    ``2**width`` entries), so a host never seen costs a dict lookup per checked field."""
    return {}


_Lane = tuple[int, int, dict[int, _LaneBounds], Field, int]  # shift, max, table, field, lane offset


@lru_cache(maxsize=4096)
def _checked_lanes(register: str, writable: int, series: str) -> tuple[int, tuple[_Lane, ...]]:
    """For a register under writable mask ``writable`` on a ``series`` kernel: the ``hi`` of the
    lanes not checked (any value) and, per checked lane, (shift, max, lane table, field, offset).
    Masks are per-kernel constants, so this is built once per (register, mask, series) and process."""
    rules = setter_rules()
    open_hi, checked = 0, []
    for f, off in _lanes(register)[0]:
        if f.mask & writable != f.mask:
            open_hi |= f.max << off
        else:
            checked.append((f.shift, f.max, _lane_table(f, series if f.qualname in rules else None), f, off))
    return open_hi, tuple(checked)


class _Chunk(NamedTuple):
    """One register compiled: slot-relative exact mask and target, lane-relative bounds."""

    exact: int
    target: int
    hi: int
    lo: int
    hi2: int
    lo2: int
    alt: int  # guard bits of lanes with a second interval
    slow: bool


class _Context(NamedTuple):
    """What a register's chunk depends on beyond the register itself."""

    series: str
    impl: bool  # implementation ID registers are writable
    idc: bool  # the host's CTR_EL0.IDC
    no_masks: bool  # a kernel without writable ID registers

    @classmethod
    def of(cls, snap: HostSnapshot) -> _Context:
        idc = snap.registers.get("CTR_EL0", 0) & _idc_mask()
        return cls(kernel_series(snap), snap.writable_impl_id_regs, bool(idc), snap.writable_masks is None)


@cache
def _idc_mask() -> int:
    return load_table().field("CTR_EL0.IDC").mask


def _chunk(rv: RegisterView, context: _Context) -> _Chunk:
    open_hi = _open_hi(rv.name)
    kind, limit, series = rv.kind, rv.limit, context.series
    if kind == CLIDR:
        if context.no_masks:
            return _Chunk(_FULL, limit, open_hi, 0, 0, 0, 0, False)
        if not context.idc:
            return _Chunk(0, 0, open_hi, 0, 0, 0, 0, True)
        return _Chunk(_FULL & ~rv.writable, 0, open_hi, 0, 0, 0, 0, False)
    if kind == IMPL_ID and context.impl:
        if rv.name != "MIDR_EL1":
            return _Chunk(0, 0, open_hi, 0, 0, 0, 0, False)
        if limit >> 32:
            return _Chunk(0, 0, open_hi, 0, 0, 0, 0, True)
        return _Chunk(_FULL & ~0xFFFFFFFF, 0, open_hi, 0, 0, 0, 0, False)
    if kind != GENERIC:
        return _Chunk(_FULL, limit, open_hi, 0, 0, 0, 0, False)
    hi, checked = _checked_lanes(rv.name, rv.writable, series)
    lo = hi2 = lo2 = alt = 0
    for shift, top, table, f, off in checked:
        lim = (limit >> shift) & top
        bounds = table.get(lim)
        if bounds is None:
            bounds = table[lim] = _lane_bounds(f, off, lim, series)
        if bounds.__class__ is str:
            if bounds == _UNCHANGED:  # the register passes only unchanged
                return _Chunk(_FULL, limit, open_hi, 0, 0, 0, 0, False)
            return _Chunk(0, 0, open_hi, 0, 0, 0, 0, True)
        a, b, a2, b2, g = bounds  # type: ignore[misc]
        lo |= a
        hi |= b
        if g:
            lo2 |= a2
            hi2 |= b2
            alt |= g
    return _Chunk(_FULL & ~rv.checked_mask, limit, hi, lo, hi2, lo2, alt, False)


_chunks: BoundedCache[_Chunk] = BoundedCache(REGISTER_CHUNKS)


def _register_chunk(rv: RegisterView, context: _Context) -> _Chunk:
    """``_chunk``, kept per (register view content, context): hosts of a fleet share most registers."""
    return _chunks.get_or_make((rv.name, rv.kind, rv.limit, rv.writable, context), lambda: _chunk(rv, context))


class Layout:
    """Slot and lane positions of one register order (hosts of a kernel share it)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.slot = {n: 64 * i for i, n in enumerate(names)}  # bit offset of a register's value
        self.base: list[int] = []  # per register, bit offset of its lanes
        self.lanes_at: dict[str, tuple[int, int]] = {}  # register -> (lane offset, its guard bits there)
        guard = offset = 0
        for n in names:
            _, width, g = _lanes(n)
            self.base.append(offset)
            self.lanes_at[n] = (offset, g << offset)
            guard |= g << offset
            offset += width
        self.guard = guard
        self._packed: BoundedCache[_Packed] = BoundedCache(PACKED_DEFINITIONS)

    def forget_definitions(self) -> None:
        self._packed.clear()

    def packed(self, definition: CpuDefinition) -> _Packed:
        p = self._packed.get(definition)
        if p is None:
            p = self._packed.put(definition, self._pack(definition))
        return p

    def _pack(self, definition: CpuDefinition) -> _Packed:
        value = present = spread = guards = 0
        for name, v in definition.registers.items():
            s = self.slot.get(name)
            if s is None:
                if name in PER_VCPU_REGISTERS:
                    continue
                return _Packed(0, 0, 0, 0, 0, foreign=True)
            value |= v << s
            present |= _FULL << s
            base, lane_guards = self.lanes_at[name]
            spread |= _spread(name, v) << base
            guards |= lane_guards
        return _Packed(value, present, spread, spread | self.guard, guards, foreign=False)


@dataclass(frozen=True, slots=True)
class _Packed:
    value: int  # register values, 64 bits per slot
    present: int  # all-ones slots of the registers the definition sets
    spread: int  # lane ordinals
    spread_guarded: int  # lane ordinals with every guard bit set
    guards: int  # guard bits of the lanes of the registers the definition sets
    foreign: bool  # sets a register the host does not have


@cache
def _spread_lanes(register: str) -> tuple[tuple[int, int, int, int], ...]:
    """Per lane of a register: (field shift, max, flip, lane offset)."""
    return tuple((f.shift, f.max, _flip(f), off) for f, off in _lanes(register)[0])


def _spread(name: str, v: int) -> int:
    """A register value's lane ordinals."""
    s = 0
    for shift, top, flip, off in _spread_lanes(name):
        s |= (((v >> shift) & top) ^ flip) << off
    return s


_layouts: BoundedCache[Layout] = BoundedCache(LAYOUTS)


def _layout(names: tuple[str, ...]) -> Layout:
    layout = _layouts.get(names)
    if layout is None:
        layout = _layouts.put(names, Layout(names))
    return layout


class CompiledHost:
    """One host view as integers over the layout of its registers."""

    def __init__(self, view: HostView) -> None:
        self.view = view
        snap = view.snapshot
        self.ctr = snap.registers.get("CTR_EL0", 0)
        self.layout = layout = _layout(tuple(view.registers))
        exact = target = hi = lo = hi2 = lo2 = alt = 0
        slow = []
        context = _Context.of(snap)
        for (name, rv), b in zip(view.registers.items(), layout.base):
            c = _register_chunk(rv, context)
            if c.slow:
                slow.append(name)
            s = layout.slot[name]
            exact |= c.exact << s
            target |= c.target << s
            hi |= c.hi << b
            lo |= c.lo << b
            if c.alt:
                hi2 |= c.hi2 << b
                lo2 |= c.lo2 << b
                alt |= c.alt << b
        self.exact, self.target = exact, target
        self.hi_guarded, self.lo = hi | layout.guard, lo
        self.hi2_guarded, self.lo2, self.alt = hi2 | layout.guard, lo2, alt
        self.slow = tuple(slow)

    def accepts(self, definition: CpuDefinition) -> bool:
        p = self.layout.packed(definition)
        if p.foreign or (p.value ^ self.target) & self.exact & p.present:
            return False
        guards = p.guards
        fails = guards & ~((self.hi_guarded - p.spread) & (p.spread_guarded - self.lo))
        if fails and (fails & ~self.alt or (self.hi2_guarded - p.spread) & (p.spread_guarded - self.lo2) & fails != fails):
            return False
        for name in self.slow:
            v = definition.registers.get(name)
            if v is not None and check_register(name, v, self.view, self.ctr):
                return False
        return True


@cache
def _always_checked() -> frozenset[str]:
    """Registers KVM checks even when written unchanged (CLIDR: against the host's CTR_EL0.IDC)."""
    return frozenset(r.name for r in load_table().registers if r.kvm == "clidr")


def _register_accepts(rv: RegisterView, v: int, context: _Context, snap: HostSnapshot,
                      features: frozenset[str]) -> bool:
    """One register of ``CompiledHost.accepts``: the same integer operations over its chunk."""
    c = _register_chunk(rv, context)
    if c.slow:
        view = HostView(snap, features, {rv.name: rv}, snap.aarch32_el0)  # the rule reads only this register
        return not check_register(rv.name, v, view, snap.registers.get("CTR_EL0", 0))
    if (v ^ c.target) & c.exact:
        return False
    guard = _lanes(rv.name)[2]
    spread = _spread(rv.name, v)
    fails = guard & ~(((c.hi | guard) - spread) & ((spread | guard) - c.lo))
    return not fails or (not fails & ~c.alt and ((c.hi2 | guard) - spread) & ((spread | guard) - c.lo2) & fails == fails)


def first_check(definition: CpuDefinition, snap: HostSnapshot, features: frozenset[str]) -> bool:
    """The compiled verdict without compiling the host: a register the definition leaves at the
    host's limit passes with one compare, each other one goes through its own chunk (and stops
    the walk when refused).  Costs a fraction of ``CompiledHost`` on a host never seen."""
    regs, always, hidden = snap.registers, _always_checked(), hidden_masks(features)
    context = None
    for name, v in definition.registers.items():
        value = regs.get(name)
        if value is None:
            if name in PER_VCPU_REGISTERS:
                continue
            if not reads_as_zero(name, features):
                return False
            value = 0
        if v == value & ~hidden.get(name, 0) and name not in always:
            continue
        context = context or _Context.of(snap)
        if not _register_accepts(register_view(snap, features, name), v, context, snap, features):
            return False
    return True


class _Host:
    """A host (snapshot content, vCPU features) as the verdict sees it: its first check is
    ``first_check``; the second compiles it (``CompiledHost``), which every later check reuses.
    A host checked once is not compiled at all."""

    __slots__ = ("snap", "features", "compiled", "seen")

    def __init__(self, snap: HostSnapshot, features: frozenset[str]) -> None:
        self.snap, self.features = snap, features  # read for content only, like ``HostView.snapshot``
        self.compiled: CompiledHost | None = None
        self.seen = False

    def accepts(self, definition: CpuDefinition) -> bool:
        compiled = self.compiled
        if compiled is None:
            if not self.seen:
                self.seen = True
                return first_check(definition, self.snap, self.features)
            compiled = self.compiled = CompiledHost(host_view(self.snap, self.features))
        return compiled.accepts(definition)


_hosts: SnapshotCache[_Host] = SnapshotCache(_Host, COMPILED_HOSTS)


def is_usable(definition: CpuDefinition, host: HostSnapshot) -> bool:
    """The verdict of the acceptance rule (``rule.reference_check(...).usable``), compiled."""
    features = definition.vcpu_features
    if not features <= host.vcpu_features:
        return False
    return _hosts(host, features).accepts(definition)


def clear_compiled() -> None:
    """Forget every host seen or compiled, register chunk and packed definition
    (``check.clear_caches``); layouts keep their slot and lane positions, which depend on
    register names only."""
    _hosts.clear()
    _chunks.clear()
    for layout in _layouts.values():
        layout.forget_definitions()
