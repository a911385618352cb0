"""Issue 12: the catalog fits the bundled hosts -- each named model is usable on a sample of its
own SoC or core where real data allows it, ``aarch32=off`` moves a model to AArch64-only hosts, and
a generic model spans a mixed pool once the values KVM does not let userspace change agree."""

from __future__ import annotations

import json

import pytest

from arm_cpu_filter.cli import main
from arm_cpu_filter.engine import check, fix_model
from arm_cpu_filter.models import realize
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.table import load_table
from tests.models import hosts as H

#: model -> the sample of its own SoC/core it is usable on (7.3: the kernel hides NV, which 6.12
#: shows and does not let userspace lower, so on 6.12 the V1/N2/V2 samples refuse every model)
DIAGONAL = {
    "a64fx-v1": "a64fx", "altra-v1": "altra", "cortex-a72-v1": "cortex-a72", "cortex-a76-v1": "cortex-a76",
    "graviton2-v1": "graviton2", "graviton3-v1": "graviton3-7.3", "neoverse-n1-v1": "neoverse-n1",
    "neoverse-n2-v1": "neoverse-n2-7.3", "neoverse-v1-v1": "graviton3-7.3",
    # Neoverse V2: Graviton4 on 7.3 (its ZFR0 from the flags of a Graviton4 guest with SVE); no
    # Grace dump exists, so grace-v1 (the V2 core without crypto, MIDR r0p0) is shown on the core
    "graviton4-v1": "graviton4-7.3", "neoverse-v2-v1": "graviton4-7.3", "grace-v1": "graviton4-7.3",
}

#: what still blocks a model on its own core's samples, and why (data gaps, not model errors)
STILL_BLOCKED = {
    ("graviton3-v1", "graviton3"): {("ID_AA64MMFR2_EL1", "NV")},  # 6.12: host NV = 2, not writable
    ("graviton4-v1", "graviton4"): {("ID_AA64MMFR2_EL1", "NV")},
    # 6.12 cannot write MIDR/REVIDR: r0p2 (the TRM's) or r0p0 (Grace's) vs Graviton4's r0p1
    ("neoverse-v2-v1", "graviton4"): {("ID_AA64MMFR2_EL1", "NV"), ("MIDR_EL1", "Revision"), ("REVIDR_EL1", None)},
    ("grace-v1", "graviton4"): {("ID_AA64MMFR2_EL1", "NV"), ("MIDR_EL1", "Revision"), ("REVIDR_EL1", None)},
    # the QEMU TRM table of Neoverse V1 has BF16 = 0 (see the sample); real V1 silicon (Graviton3) has it
    ("neoverse-v1-v1", "neoverse-v1"): {("ID_AA64ISAR1_EL1", "BF16"), ("ID_AA64MMFR2_EL1", "NV")},
}

#: a generic architecture model with one composite and the fields KVM keeps at the host's value
#: (FP/AdvSIMD, debug counters, ASID/VMID bits, EVT, CTR_EL0.CWG/ERG are not writable)
GENERIC = ("armv8.2-a-v1,aarch32=off,feat_AdvSIMD=fp16,feat_FP=fp16,hw_prop_CTX_CMPs=1,hw_prop_BRPs=5,"
           "hw_prop_ASIDBITS=16bit,hw_prop_VMIDBits=16bit,feat_EVT=evt,hw_prop_CWG=4,hw_prop_ERG=4")


@pytest.mark.parametrize("model, host", sorted(DIAGONAL.items()))
def test_models_are_usable_on_a_sample_of_their_own_core(model, host):
    assert check(realize(model), sample_host(host)).usable


@pytest.mark.parametrize("pair, blocked", sorted(STILL_BLOCKED.items()))
def test_what_still_blocks_the_diagonal_is_named(pair, blocked):
    model, host = pair
    got = {(b.register, b.field) for b in check(realize(model), sample_host(host)).blockers}
    assert got == blocked


def test_the_newer_kernel_is_what_lifts_nv():
    for old, new in (("graviton3", "graviton3-7.3"), ("graviton4", "graviton4-7.3")):
        assert sample_host(old).registers["ID_AA64MMFR2_EL1"] >> 24 & 0xF == 2
        assert sample_host(new).registers["ID_AA64MMFR2_EL1"] >> 24 & 0xF == 0
        assert sample_host(new).kernel == "7.3.4" and sample_host(new).writable_impl_id_regs


def test_aarch32_off_lifts_every_aarch32_blocker_of_a_core_with_aarch32_at_el0_and_el1():
    # Cortex-A72 (AArch32 at EL0 and EL1) on Graviton4 (AArch64 only); tests/models/hosts.py's
    # Graviton4 (Linux 6.18 masks, ZFR0 inferred: no sample knows ZFR0)
    g4 = H.graviton4()

    def aarch32_blockers(spec: str) -> set[tuple[str, str | None]]:
        return {(b.register, b.field) for b in check(realize(spec), g4).blockers
                if load_table().register(b.register).aarch32 or b.field in ("EL0", "EL1", "EL2", "EL3")}

    before = aarch32_blockers("cortex-a72-v1")
    assert {("ID_AA64PFR0_EL1", "EL0"), ("ID_AA64PFR0_EL1", "EL1"), ("MVFR0_EL1", "FPDP")} <= before
    assert len(before) == 77
    assert aarch32_blockers("cortex-a72-v1,aarch32=off") == set()
    assert aarch32_blockers("cortex-a72-v1,feat_EL0=aarch64") == {("ID_AA64PFR0_EL1", "EL1")}  # one level is not enough
    assert fix_model("graviton3-v1", g4).changes["aarch32"] == "off"


def test_a_generic_model_spans_a_mixed_pool():
    pool = ("graviton2-7.3", "altra-7.3")  # AWS and Ampere SoCs, Linux 7.3 (MIDR/REVIDR writable)
    assert all(check(realize(GENERIC), sample_host(h)).usable for h in pool)
    # across cores it stops at fields KVM does not let userspace change
    blocked = {(b.register, b.field) for b in check(realize(GENERIC), sample_host("graviton3-7.3")).blockers}
    assert blocked == {("ID_AA64MMFR2_EL1", "EVT"), ("ID_AA64MMFR2_EL1", "FWB"), ("ID_AA64MMFR2_EL1", "IDS")}
    # and 6.12 hosts refuse any MIDR but their own
    assert not check(realize(GENERIC), sample_host("graviton2")).usable


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_matrix_shows_the_diagonal(capsys):
    out = _run(capsys, "matrix")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split()[:1] and "-v1" in line.split()[0]}
    assert rows["graviton3-v1"][0] == "1/4" and rows["neoverse-n2-v1"][0] == "1/1"
    assert rows["grace-v1"][0] == "1/3" and rows["graviton4-v1"][0] == "1/3"
    assert rows["kvm-base-v1"][0] == "-"  # a generic model names no core
    assert "12 of 12 named CPUs usable on a host of their own core." in out


def test_matrix_checks_extra_specs_on_a_pool(capsys):
    out = _run(capsys, "matrix", "--no-models", "--host", "graviton2-7.3", "--host", "altra-7.3",
               "--host", "graviton3-7.3", "--cpu", GENERIC)
    assert f"cpu#1: {GENERIC}" in out
    assert [line.split() for line in out.splitlines() if line.startswith("cpu#1 ")] == [
        ["cpu#1", "-", "yes", "yes", "no(3)"]]
    data = json.loads(_run(capsys, "matrix", "--no-models", "--host", "altra-7.3", "--cpu", GENERIC, "--format", "json"))
    assert data[GENERIC]["altra-7.3"]["usable"] is True


def test_domcapabilities_list_aarch32_with_the_properties(capsys):
    out = _run(capsys, "domcapabilities", "--properties", "--host", "graviton4")
    assert '<acf:property name="aarch32" type="composite" value="off" writable="no" supports="off"/>' in out
    out = _run(capsys, "domcapabilities", "--properties", "--host", "graviton3-7.3")
    line = next(x.strip() for x in out.splitlines() if 'name="aarch32"' in x and "acf:property" in x)
    assert line == ('<acf:property name="aarch32" type="composite" value="on" model="on" writable="yes" '
                    'supports="off,on"/>')
