"""The engine's caches: which snapshots share compiled state."""

from __future__ import annotations

from dataclasses import replace

from arm_cpu_filter.engine.cache import admission_key
from arm_cpu_filter.engine.hostview import host_view
from arm_cpu_filter.testing.bench import reference_host
from arm_cpu_filter.testing.vmfacts import with_facts


def test_admission_key_ignores_name_and_vcpu_facts_but_not_what_the_rule_reads() -> None:
    host = with_facts(reference_host("a"))
    other_facts = with_facts(reference_host("b"), vls=(128,), pmu=2)
    assert host.content_key != other_facts.content_key
    assert admission_key(host) == admission_key(other_facts)
    lowered = dict(host.registers, ID_AA64ISAR0_EL1=host.registers["ID_AA64ISAR0_EL1"] - (1 << 4))
    assert admission_key(replace(host, registers=lowered)) != admission_key(host)
    assert admission_key(replace(host, kernel="7.3.4")) != admission_key(host)
    assert admission_key(replace(host, capabilities={"writable_impl_id_regs": True})) != admission_key(host)
    assert admission_key(replace(host, writable_masks=None)) != admission_key(host)


def test_snapshots_differing_only_in_vcpu_facts_share_one_host_view() -> None:
    features = frozenset({"psci-0.2"})
    a, b = with_facts(reference_host("a")), with_facts(reference_host("b"), vls=(128,))
    assert host_view(a, features) is host_view(b, features)
