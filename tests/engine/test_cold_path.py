"""A host's first check: the per-process tables the compiled core builds from the register table
give the same integers and verdicts as computing them field by field."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from arm_cpu_filter.engine.check import clear_caches
from arm_cpu_filter.engine.compiled import _flip, _hosts, _lanes, _spread, is_usable
from arm_cpu_filter.engine.rule import reference_check
from arm_cpu_filter.table import load_table
from tests.engine.test_compiled import DEFINITIONS, HOSTS, POLICY_FIELDS

TABLE = load_table()
LANED = sorted(r.name for r in TABLE.registers if _lanes(r.name)[0])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(LANED), st.integers(0, (1 << 64) - 1))
def test_spread_byte_tables_equal_the_lane_by_lane_spread(register: str, value: int) -> None:
    expected = 0
    for f, off in _lanes(register)[0]:
        expected |= (f.extract(value) ^ _flip(f)) << off
    assert _spread(register, value) == expected


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(HOSTS), st.sampled_from(POLICY_FIELDS), st.integers(0, 15), st.sampled_from(DEFINITIONS))
def test_first_check_on_a_host_never_seen_agrees_with_reference(host, field, raw, definition) -> None:
    if field.register not in host.registers:
        return
    regs = dict(host.registers)
    regs[field.register] = field.insert(regs[field.register], raw & field.max)
    new = replace(host, registers=regs)
    clear_caches()
    expected = reference_check(definition, new).usable
    assert is_usable(definition, new) == expected  # first check: the definition's registers only
    assert is_usable(definition, new) == expected  # second: the host compiled


def test_a_host_is_compiled_on_its_second_check_and_forgotten_by_clear_caches() -> None:
    host = HOSTS[0]
    definition = host.as_definition()
    clear_caches()
    assert is_usable(definition, host) is True
    entry = _hosts(host, definition.vcpu_features)
    assert entry.seen and entry.compiled is None
    assert is_usable(definition, replace(host, host="twin")) is True  # same content: the same entry
    assert entry.compiled is not None and entry.compiled.accepts(definition) is True
    clear_caches()
    assert _hosts(host, definition.vcpu_features) is not entry
