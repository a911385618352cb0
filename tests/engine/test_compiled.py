"""The compiled core is pinned to the reference rule: same verdict, same blockers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arm_cpu_filter.engine.check import check
from arm_cpu_filter.engine.compiled import CompiledHost, first_check, is_usable
from arm_cpu_filter.engine.hostview import host_view
from arm_cpu_filter.engine.rule import reference_check
from arm_cpu_filter.samples import sample_hosts
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.table import load_table
from arm_cpu_filter.testing.bench.reference import MAX_612
from tests.conftest import make_host
from tools.lab import build, corpus

TABLE = load_table()
SAMPLES = sample_hosts()
CATALOG = [CpuDefinition.from_dict(d) for d in corpus.catalog_definitions().values()]
MAX_HOSTS = [
    make_host({k: v for k, (v, _) in MAX_612.items()}, {k: m for k, (_, m) in MAX_612.items()},
              kernel=kernel, impl_writable=impl, host=f"max-{kernel}-{impl}")
    for kernel, impl in (("6.12.95", False), ("7.3.4", False), ("7.3.4", True))
] + [make_host({k: v for k, (v, _) in MAX_612.items()}, None, kernel="6.1.192", host="max-6.1")]  # CSV2/CSV3 only
#: fields KVM compares by policy (signed, floors, setter rules among them): where the masks do work
POLICY_FIELDS = [f for f in TABLE.fields() if f.policy]
HOSTS = [*SAMPLES.values(), *MAX_HOSTS]
DEFINITIONS = [*CATALOG, *(h.as_definition() for h in HOSTS)]


def assert_agree(definition: CpuDefinition, host: HostSnapshot) -> bool:
    """Both tiers of the verdict (a host's first check, the compiled host) and ``check`` equal
    the reference rule."""
    reference = reference_check(definition, host)
    features = definition.vcpu_features
    if features <= host.vcpu_features:
        assert first_check(definition, host, features) == reference.usable
        assert CompiledHost(host_view(host, features)).accepts(definition) == reference.usable
    assert is_usable(definition, host) == reference.usable
    assert check(definition, host).to_dict() == reference.to_dict()
    return reference.usable


@pytest.mark.parametrize("kernel", sorted([*build.KERNELS, *build.RECORDED_KERNELS]))
def test_compiled_agrees_with_reference_on_every_recorded_probe(kernel: str) -> None:
    usable = probes = 0
    for definition, host, _ in corpus.iter_probes(kernel):
        usable += assert_agree(CpuDefinition.from_dict(definition), HostSnapshot.from_dict(host))
        probes += 1
    assert probes > 9000 and 0 < usable < probes  # both verdicts were exercised


@st.composite
def mutated(draw):
    """A sample or lab host and a catalog model or host snapshot with random raw field values."""
    host = draw(st.sampled_from(HOSTS))
    base = draw(st.sampled_from(DEFINITIONS) | st.just(host.as_definition()))  # often: near the host
    regs = dict(base.registers)
    names = sorted(n for n in regs if TABLE.get(n) is not None and TABLE.register(n).fields)
    for _ in range(draw(st.integers(0, 4))):
        f = draw(st.sampled_from(POLICY_FIELDS) | st.sampled_from(names).flatmap(
            lambda n: st.sampled_from(TABLE.register(n).fields)))
        regs[f.register] = f.insert(regs.get(f.register, 0), draw(st.integers(0, f.max)))
    if draw(st.booleans()):  # now and then a value the host has, a field off
        regs.update({n: v for n, v in host.registers.items() if draw(st.booleans())})
    features = base.vcpu_features
    if draw(st.booleans()):
        features = frozenset(draw(st.sets(st.sampled_from(sorted(host.vcpu_features | {"sve", "pmu-v3"})))))
    return CpuDefinition(regs, features), host


@settings(max_examples=600, deadline=None)
@given(mutated())
def test_compiled_agrees_with_reference_on_random_field_mutations(case) -> None:
    assert_agree(*case)


def test_catalog_on_every_sample_host_agrees() -> None:
    verdicts = [assert_agree(d, h) for d in DEFINITIONS for h in HOSTS]
    assert any(verdicts) and not all(verdicts)


def test_accepts_is_the_verdict_without_blockers():
    from arm_cpu_filter.engine import accepts
    from arm_cpu_filter.models import realize

    hosts = sample_hosts()
    assert accepts(realize("graviton2-v1"), hosts["graviton2"]) is True
    assert accepts(realize("graviton2-v1"), hosts["altra"]) is False  # REVIDR and DIC (6.12)
    assert check(realize("graviton2-v1"), hosts["altra"]).usable is False
