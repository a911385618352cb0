"""The engine against KVM verdicts recorded by the lab (no boot needed; see README.rst)."""

from __future__ import annotations

import pytest

from arm_cpu_filter.engine.baseline import kvm_clidr
from tools.lab import build, corpus, run, verdicts


@pytest.mark.parametrize("kernel", sorted([*build.KERNELS, *build.RECORDED_KERNELS]))
def test_engine_agrees_with_recorded_kvm(kernel: str, capsys: pytest.CaptureFixture[str]) -> None:
    if not corpus.corpus_path(kernel).exists():
        pytest.fail(f"missing {corpus.corpus_path(kernel)}: run python3 -m tools.lab.corpus")
    items = [(d, h, p, f"{kernel} {h['host']} {p['id']}") for d, h, p in corpus.iter_probes(kernel)]
    t = verdicts.tally(items)
    with capsys.disabled():
        print("\n" + t.line(f"recorded {kernel} engine vs KVM"))
    assert not t.mismatches, f"{len(t.mismatches)} mismatches, first ones:\n" + "\n".join(t.mismatches[:40])


def accepted_by(kernel: str, prefix: str) -> dict[str, set[str]]:
    """probe id -> hosts whose KVM accepted it, for the recorded probes starting with `prefix`."""
    out: dict[str, set[str]] = {}
    for _, host, probe in corpus.iter_probes(kernel):
        if probe["id"].startswith(prefix):
            out.setdefault(probe["id"], set())
            if probe["realizable"]:
                out[probe["id"]].add(host["host"])
    return out


def test_no_lab_wide_baseline_but_compatible_pools() -> None:
    """KVM's recorded answers on the pool baselines (the live lab re-asks them).

    6.12 cannot write MIDR_EL1, so hosts of different cores never share a CPU; 7.3 with
    KVM_CAP_ARM_WRITABLE_IMP_ID_REGS can, and the baseline of each compatible set is accepted by
    every member. No set of all nine exists on either kernel (FP/AdvSIMD, VH, XNX, VMIDBits,
    TGRAN*_2 ... differ and are never writable); the naive field-wise minimum is refused everywhere.
    """
    assert accepted_by("6.12", "b:") == {"b:full:naive-all": set(), "b:nofeatures:naive-all": set()}
    pools = accepted_by("7.3", "b:")
    assert pools == {
        "b:full:cortex-a57+cortex-a72": {"cortex-a57", "cortex-a72"},
        "b:full:cortex-a710+neoverse-n2": {"cortex-a710", "neoverse-n2"},
        "b:full:cortex-a76+neoverse-n1": {"cortex-a76", "neoverse-n1"},
        "b:full:naive-all": set(),
        "b:nofeatures:cortex-a57+cortex-a72": {"cortex-a57", "cortex-a72"},
        "b:nofeatures:cortex-a710+neoverse-n2+neoverse-v1": {"cortex-a710", "neoverse-n2", "neoverse-v1"},
        "b:nofeatures:cortex-a76+neoverse-n1": {"cortex-a76", "neoverse-n1"},
        "b:nofeatures:naive-all": set(),
    }


def test_every_catalog_model_was_asked_on_every_lab_host() -> None:
    """Catalog models are part of the corpus: each one written into a fresh vCPU on all nine hosts
    (with and, on 7.3, without the implementation-ID cap); a core's own model is accepted on its host."""
    for kernel in sorted(build.KERNELS):
        models = accepted_by(kernel, "c:")
        assert set(models) == {f"c:{name}" for name in corpus.catalog_definitions()}
        for core in ("cortex-a57", "cortex-a72", "cortex-a76", "neoverse-n1", "a64fx"):
            assert core in models[f"c:{core}-v1"], f"{kernel}: {core}-v1 refused on its own lab host"
    assert len(accepted_by("7.3", "nocap:c:")) == len(corpus.catalog_definitions())
    # with the cap, 7.3 also runs cortex-a57-v1 on the A72 and cortex-a76-v1 on the N1 (MIDR written)
    assert accepted_by("7.3", "c:cortex-a57-v1")["c:cortex-a57-v1"] == {"cortex-a57", "cortex-a72"}
    assert accepted_by("7.3", "nocap:c:cortex-a76-v1")["nocap:c:cortex-a76-v1"] == {"cortex-a76"}


def test_kvm_clidr_is_what_every_lab_kernel_reports() -> None:
    """The baseline's CLIDR rule rests on ``kvm_clidr`` being KVM's reset_clidr(): every snapshot the
    lab took (each kernel, host and variant) reports exactly ``kvm_clidr`` of its own CTR_EL0."""
    seen = 0
    for kernel in sorted(build.KERNELS):
        for variant, hosts in corpus.load_fixtures(kernel).items():
            for host, snap in hosts.items():
                regs = {k: int(v, 16) for k, v in snap["registers"].items()}
                if snap.get("writable_masks") is None:
                    continue  # before 6.3 KVM passed the hardware's CLIDR through
                assert kvm_clidr(regs["CTR_EL0"]) == regs["CLIDR_EL1"], f"{kernel} {variant} {host}"
                seen += 1
    assert seen >= 2 * 9 * 2


def test_a_register_the_vcpu_reads_as_zero_needs_no_host_value() -> None:
    """KVM shows ID_AA64ZFR0_EL1 as zero to a vCPU without SVE, whatever the host has (the lab's
    snapshots taken with no vCPU feature), so a host snapshot without ZFR0 (a sample converted
    from a non-SVE guest's view) decides a non-SVE VM exactly as the whole snapshot does: every
    recorded probe of a non-SVE definition, ZFR0 taken out of its host's snapshot, agrees with KVM."""
    sve_cores = set()
    for kernel in sorted(build.KERNELS):
        fixtures = corpus.load_fixtures(kernel)
        for host, snap in fixtures["full"].items():
            if int(snap["registers"]["ID_AA64ZFR0_EL1"], 16):
                sve_cores.add(host)
                assert int(fixtures["nofeatures"][host]["registers"]["ID_AA64ZFR0_EL1"], 16) == 0, (kernel, host)
    assert sve_cores == {"max", "neoverse-v1", "neoverse-n2", "cortex-a710"}
    accepted_on_sve_cores = 0
    for kernel in sorted(build.KERNELS):
        items = []
        for definition, host, probe in corpus.iter_probes(kernel):
            if "sve" in definition["vcpu_features"]:
                continue
            without = {**host, "registers": {r: v for r, v in host["registers"].items() if r != "ID_AA64ZFR0_EL1"}}
            if host.get("writable_masks") is not None:
                without["writable_masks"] = {r: m for r, m in host["writable_masks"].items() if r != "ID_AA64ZFR0_EL1"}
            items.append((definition, without, probe, f"{kernel} {host['host']} {probe['id']} without ZFR0"))
            accepted_on_sve_cores += probe["realizable"] and host["host"] in sve_cores
        t = verdicts.tally(items)
        assert not t.mismatches, "\n".join(t.mismatches[:20])
        assert t.probes > 4000 and t.realizable > 700
    assert accepted_on_sve_cores > 0


def test_kernel_6_1_accepts_only_csv2_and_csv3_lowered() -> None:
    """What 6.1 (no writable masks) took beyond a host's own values, on all nine hosts: CSV2 and CSV3
    lowered from 1 to 0 (set_id_aa64pfr0_el1()), nothing else; raising them (affected hosts, or
    above 1) and their AArch32 copies (ID_PFR0.CSV2, ID_PFR2.CSV3) were refused."""
    accepted = {(host["host"], probe["id"]) for _, host, probe in corpus.iter_probes("6.1") if probe["realizable"]}
    own = {(h, f"{kind}:{h}") for h in run.HOST_BY_LABEL for kind in ("x", "f")}
    csv2_unaffected = {"max", "neoverse-n1", "cortex-a76", "neoverse-v1", "neoverse-n2", "cortex-a710"}
    lowered = {(h, "m:ID_AA64PFR0_EL1.CSV2:dec") for h in csv2_unaffected}
    lowered |= {(h, "m:ID_AA64PFR0_EL1.CSV3:dec") for h in run.HOST_BY_LABEL if h != "a64fx"}
    assert accepted == own | lowered
