"""Property-based tests (hypothesis) of the engine's laws over generated hosts.

Hosts are derived from the lab's 6.12 `-cpu max` dump by lowering writable fields and
varying non-writable ones, on both measured kernels, with and without writable
implementation ID registers.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from arm_cpu_filter.engine import baseline, check, compare
from arm_cpu_filter.table import LOWER, load_table
from arm_cpu_filter.testing.bench.reference import MAX_612
from tests.conftest import make_def, make_host

TABLE = load_table()
BASE = {k: v for k, (v, _) in MAX_612.items()}
MASKS = {k: m for k, (_, m) in MAX_612.items()}
#: fields with a floor or a cross-register rule (DebugVer >= 6, CopDbg >= 6, PerfMon not 1/2,
#: EL0/EL1 not 0 on 7.3, CTR.IDC vs CLIDR): lowering them can be refused by design
FLOORS = {"ID_AA64DFR0_EL1.DebugVer", "ID_DFR0_EL1.CopDbg", "ID_DFR0_EL1.PerfMon", "ID_AA64PFR0_EL1.EL0",
          "ID_AA64PFR0_EL1.EL1", "CTR_EL0.IDC"}
LOWERABLE = [
    f for name, m in MASKS.items() for f in TABLE.register(name).fields
    if f.policy == LOWER and f.mask & m == f.mask and f.qualname not in FLOORS
]


@st.composite
def hosts(draw, name="h"):
    regs = dict(BASE)
    for f in draw(st.lists(st.sampled_from(LOWERABLE), max_size=6, unique_by=lambda f: f.qualname)):
        cur = f.extract(regs[f.register])
        lower = [v for v in range(f.max + 1) if f.ordinal(v) <= f.ordinal(cur)]
        regs[f.register] = f.insert(regs[f.register], draw(st.sampled_from(lower)))
    # a non-writable difference: BRPs (ID_AA64DFR0_EL1 15:12) and the implementation (MIDR)
    dfr0 = TABLE.field("ID_AA64DFR0_EL1.BRPs")
    regs["ID_AA64DFR0_EL1"] = dfr0.insert(regs["ID_AA64DFR0_EL1"], draw(st.sampled_from([5, 5, 5, 3])))
    regs["MIDR_EL1"] = draw(st.sampled_from([0xF0510, 0xF0510, 0x410FD0C1]))
    kernel = draw(st.sampled_from(["6.12.95", "7.3.4"]))
    impl = kernel.startswith("7.") and draw(st.booleans())
    return make_host(regs, MASKS, kernel=kernel, impl_writable=impl, host=name)


@settings(max_examples=150, deadline=None)
@given(hosts())
def test_a_host_accepts_its_own_snapshot(h):
    assert check(h.as_definition(), h).usable


@settings(max_examples=100, deadline=None)
@given(st.lists(hosts(), min_size=1, max_size=5))
def test_baseline_is_accepted_by_every_member(pool):
    result = baseline(pool)
    if result.definition is None:
        # impossible only for a reason the engine names: a non-writable difference
        assert result.conflicts
        assert {c["register"] for c in result.conflicts} <= {"MIDR_EL1", "ID_AA64DFR0_EL1"}
        return
    for h in pool:
        assert check(result.definition, h).usable, check(result.definition, h).blockers


@settings(max_examples=150, deadline=None)
@given(hosts(), st.sampled_from(LOWERABLE), st.data())
def test_lowering_a_lower_field_keeps_a_definition_accepted(h, f, data):
    definition = h.as_definition()
    assert check(definition, h).usable
    regs = dict(definition.registers)
    cur = f.extract(regs[f.register])
    lower = [v for v in range(f.max + 1) if f.ordinal(v) <= f.ordinal(cur)]
    regs[f.register] = f.insert(regs[f.register], data.draw(st.sampled_from(lower)))
    assert check(make_def(regs), h).usable


@settings(max_examples=150, deadline=None)
@given(hosts("a"), hosts("b"))
def test_compare_is_antisymmetric(a, b):
    ab, ba = compare(a.as_definition(), b.as_definition()), compare(b.as_definition(), a.as_definition())
    flip = {"identical": "identical", "superset": "subset", "subset": "superset", "incompatible": "incompatible"}
    assert ba.result == flip[ab.result]
    assert set(ab.differences) == set(ba.differences)


@settings(max_examples=100, deadline=None)
@given(hosts("a"), hosts("b"))
def test_identical_definitions_get_the_same_verdict_everywhere(a, b):
    if compare(a.as_definition(), b.as_definition()).result == "identical":
        assert check(b.as_definition(), a).usable
        assert a.as_definition().fingerprint == b.as_definition().fingerprint
