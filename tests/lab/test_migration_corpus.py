"""``engine.migrate`` against the recorded real QEMU restores (no boot; see MIGRATION.rst).

Every restore of ``tests/fixtures/lab/migrations.json.gz``: the VM from the source's format-2
lab fixture and its ``-cpu`` string, the destination's fixture and ``-cpu`` string, the engine's
verdict against QEMU's outcome.
"""

from __future__ import annotations

from collections import Counter

import pytest

from arm_cpu_filter.engine.migrate import VECTOR_LENGTHS
from tools.lab import migcorpus
from tools.lab.vmcpu import CpuStringRefused, vcpu_of

FULL_V1 = frozenset({"psci-0.2", "pmu-v3", "sve", "ptrauth-address", "ptrauth-generic"})


@pytest.fixture(scope="module")
def judged() -> list[tuple[dict, migcorpus.Judgement]]:
    return [(rec, migcorpus.judge(rec)) for rec in migcorpus.load()]


def test_corpus_is_built_from_the_committed_runs() -> None:
    assert migcorpus.load() == migcorpus.rebuild(), "regenerate: python3 -m tools.lab.migcorpus"


def test_corpus_holds_every_recorded_restore_once() -> None:
    recs = migcorpus.load()
    assert len(recs) == 807 and sum(r["loaded"] for r in recs) == 110
    assert Counter(r["class"] for r in recs if not r["loaded"]) == {
        "value-refused": 260, "register-list": 408, "destination-start": 29,
    }  # fmt: skip


def test_engine_is_never_unsafe_and_rarely_conservative(judged, capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = Counter(j.verdict for _, j in judged)
    compared = len(judged) - verdicts["guest-visible-change"] - verdicts["not-started"]
    with capsys.disabled():
        print(f"\nrecorded restores: {len(judged)}, QEMU loaded {sum(r['loaded'] for r, _ in judged)}; engine: "
              f"{dict(sorted(verdicts.items()))}; conservative {verdicts['conservative']}/{compared} "
              f"(guest-visible change counted apart: {verdicts['guest-visible-change']})")  # fmt: skip
    unsafe = [migcorpus.key_of(r) for r, j in judged if j.verdict == "unsafe"]
    assert unsafe == []
    assert verdicts["conservative"] <= compared / 100
    # the two: a pmu=off VM onto a PMU vCPU of a64fx, which has no AArch32 EL0: KVM drops the write
    # of ID_DFR0_EL1.PerfMon = 0 (RAZ/WI), QEMU loads, and the guest would read the host's PerfMon
    # in an AArch32 register; the engine keeps its rule that a dropped write is not realized
    conservative = sorted((r["source"]["host"], r["source"]["cpu"], r["destination"]["cpu"])
                          for r, j in judged if j.verdict == "conservative")
    assert conservative == [("a64fx", "host,pmu=off", "host")] * 2


def test_guest_visible_changes_are_vector_lengths_qemu_loads_anyway(judged) -> None:
    """QEMU's stream does not carry SVE vector lengths: those restores load, and the engine's only
    blockers are vector-length ones a destination setting lifts (15: max, neoverse-v1, a64fx)."""
    changes = [(r, j) for r, j in judged if j.verdict == "guest-visible-change"]
    assert len(changes) == 15
    for rec, j in changes:
        assert rec["loaded"] and j.result is not None
        assert {b.kind for b in j.result.blockers} == {VECTOR_LENGTHS}
        assert "sve128=on" in rec["source"]["cpu"] + rec["destination"]["cpu"]


def test_blockers_name_what_qemu_complained_about(judged) -> None:
    problems = [(migcorpus.key_of(r), j.problems) for r, j in judged if j.problems]
    assert problems == []


def test_destinations_qemu_would_not_start_are_refused_before_migrating(judged) -> None:
    not_started = [r for r, j in judged if j.verdict == "not-started"]
    assert len(not_started) == 29
    assert all(r["class"] == "destination-start" and "sve128" in r["destination"]["cpu"] for r in not_started)


def test_an_id_register_only_check_misses_failures(judged, capsys: pytest.CaptureFixture[str]) -> None:
    """``engine.check`` of the VM's CPU on the destination calls these usable; QEMU failed them."""
    missed = Counter(r["class"] for r, j in judged if not r["loaded"] and j.id_check_usable)
    with capsys.disabled():
        print(f"\nID-register-only check usable but QEMU failed: {dict(sorted(missed.items()))}")
    assert missed == {"register-list": 87, "value-refused": 25}


def test_cpu_strings_map_to_qemu_vcpus() -> None:
    v1, n1 = migcorpus.snapshot("neoverse-v1", "7.3"), migcorpus.snapshot("neoverse-n1", "7.3")
    assert vcpu_of("host", v1) == (FULL_V1, None)
    assert vcpu_of("host,sve=off,pauth=off", v1) == (frozenset({"psci-0.2", "pmu-v3"}), None)
    assert vcpu_of("host,pmu=off", v1) == (FULL_V1 - {"pmu-v3"}, None)
    assert vcpu_of("host,sve128=on", v1) == (FULL_V1, frozenset({128}))
    assert vcpu_of("host,sve256=on", migcorpus.snapshot("max", "7.3"))[1] == frozenset({128, 256})
    with pytest.raises(CpuStringRefused, match="SVE not supported by KVM"):
        vcpu_of("host,sve128=on", n1)
