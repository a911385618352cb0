"""Models on real host data: each SoC model on its own host, each reference core on the lab's
emulated host of that core (real KVM), and the known cross-host cases with their fixes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arm_cpu_filter.engine import check, fix_model
from arm_cpu_filter.models import realize
from arm_cpu_filter.models.realization import fields_of
from arm_cpu_filter.snapshot.files import load_snapshot
from tests.models import hosts as H

LAB = Path(__file__).resolve().parents[1] / "fixtures" / "lab"


def blockers(model, host):
    return {(b.register, b.field) for b in check(realize(model), host).blockers}


def lab(kernel, cpu):
    path = LAB / kernel / f"{cpu}.json"
    assert path.exists(), f"lab fixture tests/fixtures/lab/{kernel}/{path.name} is missing from the checkout"
    return load_snapshot(str(path))


PAUTH = {("ID_AA64ISAR1_EL1", f) for f in ("APA", "API", "GPA", "GPI")}


@pytest.mark.parametrize("kernel", ["6.12", "7.3"])
@pytest.mark.parametrize("cpu", ["cortex-a57", "cortex-a72", "cortex-a76", "neoverse-n1", "a64fx"])
def test_reference_core_is_usable_on_the_lab_host_of_that_core(kernel, cpu):
    assert check(realize(f"{cpu}-v1"), lab(kernel, cpu)).usable


@pytest.mark.parametrize("cpu", ["neoverse-v1", "neoverse-n2"])
def test_v1_n2_differ_from_their_tcg_host_only_where_qemu_differs_from_silicon(cpu):
    # QEMU's TCG V1/N2 use the IMPLEMENTATION DEFINED pointer-auth algorithm (API/GPI), silicon
    # and the TRM use QARMA5 (APA/GPA): pointer auth is not writable, so pauth=off is the fix.
    assert blockers(f"{cpu}-v1", lab("7.3", cpu)) == PAUTH
    assert fix_model(f"{cpu}-v1", lab("7.3", cpu)).spec == f"{cpu}-v1,pauth=off"
    # Linux 6.12 also passes the host's ID_AA64MMFR2_EL1.NV = 2 through (not writable); 7.3 forces 0,
    # which the model presents: no override set exists on 6.12 (a real kernel-upgrade break).
    assert blockers(f"{cpu}-v1", lab("6.12", cpu)) == PAUTH | {("ID_AA64MMFR2_EL1", "NV")}
    assert not fix_model(f"{cpu}-v1", lab("6.12", cpu)).usable


def test_differing_midr_blocks_only_without_writable_impl_id_regs():
    # cortex-a76 and neoverse-n1 lab hosts differ only in MIDR (arm-kvm-lab.md)
    assert blockers("cortex-a76-v1", lab("6.12", "neoverse-n1")) == {
        ("MIDR_EL1", "PartNum")}
    assert check(realize("cortex-a76-v1"), lab("7.3", "neoverse-n1")).usable  # 7.3: writable_impl_id_regs


@pytest.mark.parametrize("model, host", [
    ("graviton2-v1", H.graviton2), ("altra-v1", H.graviton2), ("graviton3-v1", H.graviton3),
    ("graviton4-v1", H.graviton4), ("neoverse-v2-v1", H.graviton4), ("grace-v1", H.grace),
])
def test_soc_model_is_usable_on_its_real_host_data(model, host):
    result = check(realize(model), host())
    assert result.usable, [b.to_dict() for b in result.blockers]


@pytest.mark.parametrize("model, sample", [
    ("graviton2-v1", "graviton2"), ("graviton2-v1", "graviton2-7.3"),
    ("altra-v1", "altra"), ("altra-v1", "altra-7.3"),
])
def test_soc_model_is_usable_on_the_bundled_sample_of_its_host(model, sample):
    assert check(realize(model), H.sample(sample)).usable


@pytest.mark.parametrize("model, sample", [("graviton3-v1", "graviton3"), ("graviton4-v1", "graviton4")])
def test_v_core_soc_on_a_612_sample_is_blocked_only_by_the_612_nv_leak(model, sample):
    host = H.sample(sample)
    expected = {("ID_AA64MMFR2_EL1", "NV")}
    if "ID_AA64ZFR0_EL1" not in host.registers:  # the sample has no ZFR0 value (no dump with SVE shows it)
        expected.add(("ID_AA64ZFR0_EL1", None))
    assert blockers(model, host) == expected


def test_soc_models_equal_the_dumps_they_come_from():
    """Every field the Firecracker dump shows equals the model, except what the model documents:
    EL2/EL3 presented as 0, CLIDR derived, and the fields the PSCI-only vCPU hides."""
    hidden = {"ID_AA64PFR0_EL1.EL2", "ID_AA64PFR0_EL1.EL3", "ID_AA64PFR0_EL1.SVE", "ID_AA64DFR0_EL1.PMUVer",
              "ID_DFR0_EL1.PerfMon", "ID_AA64ISAR1_EL1.APA", "ID_AA64ISAR1_EL1.API", "ID_AA64ISAR1_EL1.GPA",
              "ID_AA64ISAR1_EL1.GPI"}
    for model, dump in [("graviton2-v1", "graviton2"), ("graviton3-v1", "graviton3"), ("graviton4-v1", "graviton4")]:
        raw = json.loads(H.dump(f"{dump}.firecracker-fingerprint-6.18host.json").read_text())["registers"]
        want = fields_of({k: int(v, 16) for k, v in raw.items() if k not in ("CLIDR_EL1", "ID_AA64ZFR0_EL1")})
        got = fields_of(realize(model).registers)
        diff = {k for k, v in want.items() if k in got and got[k] != v and k not in hidden}
        assert diff == set(), (model, diff)


def test_altra_dump_matches_altra_model_except_what_kvm_hides():
    raw = json.loads(H.dump("ampere-altra.arm-cpusysregs-mtjade-host.json").read_text())["registers"]
    want = fields_of({k: int(v, 16) for k, v in raw.items() if k != "MPIDR_EL1"})
    got = fields_of(realize("altra-v1").registers)
    diff = {k for k, v in want.items() if k in got and got[k] != v}
    # bare metal: KVM hides SPE and AArch32 RAS, the model shows EL2/EL3 as 0
    assert diff == {"ID_AA64DFR0_EL1.PMSVer", "ID_PFR0_EL1.RAS", "ID_AA64PFR0_EL1.EL2", "ID_AA64PFR0_EL1.EL3"}


def test_graviton2_and_altra_differ_only_in_ctr_dic_and_revidr():
    g2, alt = realize("graviton2-v1"), realize("altra-v1")
    diff = {k for k in fields_of(g2.registers) if fields_of(g2.registers)[k] != fields_of(alt.registers)[k]}
    assert diff - {f for f in diff if f.startswith("CLIDR_EL1.")} == {"CTR_EL0.DIC"}
    assert {r for r in g2.registers if g2.registers[r] != alt.registers[r]} == {"CTR_EL0", "REVIDR_EL1", "CLIDR_EL1"}
    altra73, g273 = H.sample("altra-7.3"), H.sample("graviton2-7.3")
    assert fix_model("graviton2-v1", altra73).spec == "graviton2-v1,hw_prop_DIC=off"
    assert check(realize("altra-v1"), g273).usable  # DIC 0 <= 1; REVIDR writable on 7.3
    assert not fix_model("graviton2-v1", H.sample("altra")).usable  # 6.12: REVIDR is not writable, no override helps


def test_graviton3_to_graviton4_needs_sm3_sm4_off_and_no_aarch32_el0():
    model_fix = fix_model("graviton3-v1", H.graviton4())
    spec, overrides = model_fix.spec, model_fix.changes
    assert model_fix.usable and check(realize(spec), H.graviton4()).usable
    assert overrides["feat_SM3"] == "off" and overrides["feat_SM4"] == "off"
    assert overrides["aarch32"] == "off"
    # the rest: pointer auth QARMA5 level 3 vs 5 (not writable), TGRAN*_2 0 vs 2 (7.3: only the
    # host's value or 1); Graviton4's SVE has every sub-feature Graviton3's has (BF16, I8MM)
    assert set(overrides) == {"feat_SM3", "feat_SM4", "aarch32", "pauth", "hw_prop_TGRAN4_2", "hw_prop_TGRAN16_2",
                              "hw_prop_TGRAN64_2"}
    for name in ("feat_SM3", "aarch32", "pauth", "hw_prop_TGRAN4_2"):  # minimal: none can be dropped
        fewer = ",".join(p for p in spec.split(",") if not p.startswith(name + "="))
        assert not check(realize(fewer), H.graviton4()).usable


def test_neoverse_v1_on_grace_after_turning_off_tgran2_and_pauth():
    model_fix = fix_model("neoverse-v1-v1", H.grace())
    overrides = model_fix.changes
    assert model_fix.usable and check(realize(model_fix.spec), H.grace()).usable
    assert overrides["pauth"] == "off"
    assert {overrides[f"hw_prop_TGRAN{g}_2"] for g in (4, 16, 64)} == {"off"}
    assert overrides["aarch32"] == "off"  # V1 has AArch32 EL0, Neoverse V2 does not


def test_grace_on_graviton3_has_no_fix_on_real_kernels():
    for name in ("graviton3", "graviton3-6.1"):
        host = H.sample(name)
        assert not check(realize("grace-v1"), host).usable
        assert not fix_model("grace-v1", host).usable  # MIDR (6.12: not writable) / nothing writable (6.1)


def test_fix_model_returns_the_spec_itself_when_usable_and_verifies_its_answer():
    assert fix_model("graviton3-v1", H.graviton3()).spec == "graviton3-v1"
    assert fix_model("graviton3-v1", H.graviton3()).changes == {}
    assert fix_model("graviton3-v1,feat_AES=aes", H.graviton3()).spec == "graviton3-v1,feat_AES=aes"


def test_fix_model_replaces_a_given_override_instead_of_repeating_it():
    altra73 = H.sample("altra-7.3")
    model_fix = fix_model("graviton2-v1,hw_prop_DIC=on", altra73)
    assert model_fix.usable and model_fix.blocked == ()
    assert model_fix.given == {"hw_prop_DIC": "on"}
    assert model_fix.changes == {"hw_prop_DIC": "off"}
    assert model_fix.overrides == {"hw_prop_DIC": "off"}
    assert model_fix.spec == "graviton2-v1,hw_prop_DIC=off"  # each property once: realize takes it
    assert check(realize(model_fix.spec), altra73).usable
    # the user's override already is the fix: nothing to add
    same = fix_model("graviton2-v1,hw_prop_DIC=off", altra73)
    assert same.usable and same.changes == {} and same.spec == "graviton2-v1,hw_prop_DIC=off"


def test_fix_model_without_a_fix_says_what_stays_blocked():
    altra = H.sample("altra")
    if altra is None:
        pytest.skip("sample altra not bundled")
    model_fix = fix_model("graviton2-v1", altra)
    assert not model_fix.usable
    # 6.12: REVIDR is not writable, so no override helps; DIC alone would be liftable
    assert {(b.register, b.field) for b in model_fix.blocked} == {("REVIDR_EL1", None), ("CTR_EL0", "DIC")}
    assert [b.to_dict() for b in check(realize(model_fix.spec), altra).blockers] == [
        b.to_dict() for b in model_fix.blocked
    ]
