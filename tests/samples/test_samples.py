"""The bundled sample hosts: real chips as a stated kernel's KVM would describe them.

Checks the converter's output against the real kernel (lab snapshots of the same QEMU CPU models)
and the fleet stories the issues name: Graviton2 vs Ampere Altra (same MIDR), Graviton3 -> 4.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arm_cpu_filter.engine import baseline, check
from arm_cpu_filter.errors import InputError, UnknownNameError
from arm_cpu_filter.samples import SAMPLE_DIR, sample_host, sample_hosts
from arm_cpu_filter.snapshot import HostSnapshot, dumps
from arm_cpu_filter.table import load_table
from tools import inputs

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tests" / "fixtures" / "lab"

NAMES = {"a64fx", "altra", "altra-7.3", "cortex-a72", "cortex-a76", "grace", "graviton2", "graviton2-7.3", "graviton3",
         "graviton3-6.1", "graviton3-7.3", "graviton4", "graviton4-7.3", "neoverse-n1", "neoverse-n2-7.3", "neoverse-v1"}


def blockers(defn_host: str, host: str) -> set[tuple[str, str | None]]:
    result = check(sample_host(defn_host).as_definition(), sample_host(host))
    return {(b.register, b.field) for b in result.blockers}


# ---- the set, the API, the files ----------------------------------------------------------------

def test_sample_names():
    assert set(sample_hosts()) == NAMES
    assert sample_host("graviton2") is sample_host("graviton2")  # shared: engine views are cached on it


def test_unknown_sample_names_the_choices():
    with pytest.raises(UnknownNameError, match=r"unknown sample host 'graviton9' \(samples: a64fx, altra, "):
        sample_host("graviton9")
    with pytest.raises(UnknownNameError):
        sample_host("../samples/hosts/graviton2")


@pytest.mark.parametrize("name", sorted(NAMES))
def test_round_trip_and_provenance(name):
    path = SAMPLE_DIR / f"{name}.json"
    snap = sample_host(name)
    again = HostSnapshot.from_dict(json.loads(dumps(snap)))
    assert again.fingerprint == snap.fingerprint
    assert path.read_text() == dumps(again)  # the file is exactly the canonical serialisation
    assert snap.source == "converted" and snap.host == name
    prov = snap.provenance
    assert prov["converted_by"].startswith("tools/samples/convert.py")
    assert prov["converted_by"] == ("tools/samples/convert.py from tools/inputs/hosts "
                                    "(tools/samples/samples.toml, tools/samples/kvm-sanitise.toml)")
    assert prov["sources"] and all(s["upstream"] and s["kind"] for s in prov["sources"].values())
    # every dump used is a committed input, recorded with the digest the manifest lists
    listed = inputs.manifest()
    assert {f: s["sha256"] for f, s in prov["sources"].items()} == {f: listed[f"hosts/{f}"]["sha256"] for f in prov["sources"]}
    # every register says where it came from (a dump, a fill or a derivation)
    assert set(snap.registers) <= set(prov["registers"])
    assert check(snap.as_definition(), snap).usable


def test_kernels_masks_and_capabilities():
    for name, snap in sample_hosts().items():
        if name.endswith("-7.3"):
            assert snap.kernel == "7.3.4" and snap.writable_impl_id_regs
            assert snap.writable_masks["MIDR_EL1"] == 0xFFFFFFFF
        elif name == "graviton3-6.1":
            assert snap.kernel == "6.1.172" and snap.writable_masks is None
            assert snap.capabilities == {"writable_impl_id_regs": False, "writable_masks": False}
            assert snap.vcpu_features == {"psci-0.2"}
        else:
            assert snap.kernel == "6.12.95" and not snap.writable_impl_id_regs
            assert snap.writable_masks["MIDR_EL1"] == 0
            assert snap.writable_masks.get("ID_AA64ISAR0_EL1", 0xFFFFFFFFFFFFFFF0) == 0xFFFFFFFFFFFFFFF0
            assert set(snap.writable_masks) == set(snap.registers)


def test_vcpu_features_are_what_the_dumps_support():
    assert sample_host("graviton2").vcpu_features == {"psci-0.2", "pmu-v3"}
    assert sample_host("altra").vcpu_features == {"psci-0.2", "pmu-v3"}
    full = {"psci-0.2", "pmu-v3", "sve", "ptrauth-address", "ptrauth-generic"}
    assert sample_host("graviton3").vcpu_features == full
    assert sample_host("graviton4").vcpu_features == full
    assert sample_host("a64fx").vcpu_features == {"psci-0.2", "pmu-v3", "sve"}


def test_concrete_values():
    g2, altra, g3, g4 = (sample_host(n).registers for n in ("graviton2", "altra", "graviton3", "graviton4"))
    assert g2["MIDR_EL1"] == altra["MIDR_EL1"] == 0x413FD0C1
    assert g2["CTR_EL0"] == 0xB444C004 and altra["CTR_EL0"] == 0x9444C004
    assert g2["REVIDR_EL1"] == 0xFF and altra["REVIDR_EL1"] == 0x1C7
    # Altra's raw dump had PMSVer = 1 (SPE) and ID_PFR0.RAS = 1: KVM hides both
    assert altra["ID_AA64DFR0_EL1"] == g2["ID_AA64DFR0_EL1"] == 0x10305408
    assert altra["ID_PFR0_EL1"] == 0x00010131
    # EL3 stays: real KVM on Graviton2 shows it (the lab's EL3 = 0 is QEMU's virt machine)
    assert altra["ID_AA64PFR0_EL1"] == g2["ID_AA64PFR0_EL1"] == 0x1100000011111112
    # KVM fabricates CLIDR_EL1 from CTR_EL0: IDC+DIC -> one unified level; IDC only -> I-cache + L2
    assert g2["CLIDR_EL1"] == 0x01000004 and altra["CLIDR_EL1"] == 0x02000021
    # Graviton3: SVE/PtrAuth/PMU fields from system-litmus, ZFR0 from arm-cpusysregs, NV kept by 6.12
    assert g3["ID_AA64PFR0_EL1"] == 0x1101000121111112
    assert g3["ID_AA64ISAR1_EL1"] == 0x0011100001211032
    assert g3["ID_AA64ZFR0_EL1"] == 0x0000100000100000
    assert g3["ID_AA64DFR0_EL1"] == 0x000000F010305509
    assert g3["ID_AA64MMFR2_EL1"] == 0x0220011102001011
    # Graviton4: AArch64-only, so AArch32 registers read 0 except ID_DFR0.PerfMon (KVM's PMU limit)
    assert g4["ID_DFR0_EL1"] == 0x06000000 and g4["MVFR0_EL1"] == 0
    # nobody dumped Graviton4's SVE sub-features: they come from a Graviton4 guest's cpuinfo flags
    assert g4["ID_AA64ZFR0_EL1"] == 0x0000100100110021
    assert sample_host("graviton4").provenance["fields_from"]["ID_AA64ZFR0_EL1.*"].startswith(
        "graviton4.firecracker-sve-guest-hwcaps.json: no Graviton4 dump reads ZFR0")


def test_partial_and_filled_samples_say_so():
    grace = sample_host("grace")
    assert grace.registers["MIDR_EL1"] == 0x410FD4F0
    assert len(grace.provenance["absent"]) == 39 and "REVIDR_EL1" in grace.provenance["absent"]
    # fail closed: a Graviton4 guest is refused on every register the Grace sample lacks
    blocked = {b.register for b in check(sample_host("graviton4").as_definition(), grace).blockers}
    assert "ID_AA64ISAR0_EL1" in blocked and "MIDR_EL1" in blocked
    altra = sample_host("altra").provenance["registers"]
    assert altra["AIDR_EL1"].startswith("filled from graviton2.firecracker-fingerprint-6.18host.json")
    assert altra["MVFR0_EL1"].startswith("filled from neoverse-n1.qemu-trm.json")


# ---- the fleet stories -------------------------------------------------------------------------

def test_graviton2_and_altra_block_each_other_only_on_dic_and_revidr():
    g2, altra = sample_host("graviton2"), sample_host("altra")
    differing = {r for r in g2.registers if g2.registers[r] != altra.registers.get(r)}
    assert differing == {"CTR_EL0", "REVIDR_EL1", "CLIDR_EL1"}  # CLIDR is free for the VMM to set
    result = check(g2.as_definition(), altra)
    assert {(b.register, b.field, b.requested, b.host) for b in result.blockers} == {
        ("CTR_EL0", "DIC", "on", "off"),
        ("REVIDR_EL1", None, "0x00000000000000ff", "0x00000000000001c7"),
    }
    # the other way DIC = 0 is a lowering KVM accepts: only REVIDR stays
    assert blockers("altra", "graviton2") == {("REVIDR_EL1", None)}


def test_graviton2_altra_baseline_needs_writable_impl_id_regs():
    on_612 = baseline([sample_host("graviton2"), sample_host("altra")])
    assert on_612.definition is None
    assert [(c["register"], c["field"]) for c in on_612.conflicts] == [("REVIDR_EL1", None)]

    g2, altra = sample_host("graviton2-7.3"), sample_host("altra-7.3")
    assert blockers("graviton2-7.3", "altra-7.3") == {("CTR_EL0", "DIC")}
    assert blockers("altra-7.3", "graviton2-7.3") == set()
    on_73 = baseline([g2, altra])
    assert on_73.definition is not None
    ctr = on_73.definition.registers["CTR_EL0"]
    assert load_table().field("CTR_EL0.DIC").extract(ctr) == 0 and ctr == 0x9444C004
    assert check(on_73.definition, g2).usable and check(on_73.definition, altra).usable
    # REVIDR: the AND of both (one MIDR); CLIDR: KVM's own for the baseline's CTR_EL0 (DIC off)
    assert on_73.definition.registers["REVIDR_EL1"] == 0x1C7 & 0xFF == 0xC7
    assert on_73.definition.registers["CLIDR_EL1"] == 0x02000021
    assert on_73.gives_up == {
        "altra-7.3": ["cpu_revidr: 0x1c7 -> 0xc7"],
        "graviton2-7.3": ["cpu_revidr: 0xff -> 0xc7", "hw_prop_LoC: 1 -> 2", "hw_prop_Ctype2: 0 -> 4",
                          "hw_prop_Ctype1: 4 -> 1", "hw_prop_DIC: on -> off"],
    }


def test_graviton3_passthrough_blocked_on_graviton4():
    g3, g4 = sample_host("graviton3"), sample_host("graviton4")
    got = blockers("graviton3", "graviton4")
    aarch64 = {(r, f) for r, f in got if not load_table().register(r).aarch32}
    assert aarch64 == {
        ("ID_AA64ISAR0_EL1", "SM3"), ("ID_AA64ISAR0_EL1", "SM4"),  # Graviton4 has no SM3/SM4
        ("ID_AA64PFR0_EL1", "EL0"),  # no AArch32 EL0 on Neoverse V2
        ("ID_AA64ISAR1_EL1", "APA"),  # PtrAuth level 3 (PAuth2) vs 5 (FPACCOMBINE): not writable
        ("ID_AA64MMFR0_EL1", "TGRAN4_2"), ("ID_AA64MMFR0_EL1", "TGRAN16_2"), ("ID_AA64MMFR0_EL1", "TGRAN64_2"),
        ("MIDR_EL1", "Variant"), ("MIDR_EL1", "PartNum"), ("REVIDR_EL1", None),
    }
    # every AArch32 register Graviton3 has differs from what the AArch64-only Graviton4 shows
    aarch32 = {r for r, _ in got} - {r for r, _ in aarch64}
    assert aarch32 == {r.name for r in load_table().registers
                       if r.aarch32 and g3.registers.get(r.name, 0) != g4.registers.get(r.name, 0)}
    assert len(aarch32) == 19


def test_old_kernel_sample_has_nothing_writable():
    old, new = sample_host("graviton3-6.1"), sample_host("graviton3")
    assert blockers("graviton3", "graviton3-6.1") >= {("", "sve"), ("", "pmu-v3")}
    # a 6.1 host takes nothing but its own values: lowering AES is refused there, accepted on 6.12
    defn = old.as_definition()
    lowered = dict(defn.registers, ID_AA64ISAR0_EL1=defn.registers["ID_AA64ISAR0_EL1"] & ~0xF0)
    assert not check(type(defn)(lowered, defn.vcpu_features), old).usable
    on_612 = new.as_definition()
    lowered = dict(on_612.registers, ID_AA64ISAR0_EL1=on_612.registers["ID_AA64ISAR0_EL1"] & ~0xF0)
    assert check(type(on_612)(lowered, on_612.vcpu_features), new).usable


# ---- against the real kernel (lab) and the tools -------------------------------------------------

#: Fields where QEMU's emulated CPU, not KVM, differs from silicon: without EL3 (virt machine,
#: secure=off) QEMU clears ID_AA64PFR0.EL3, ID_PFR1.Security and ID_DFR0.CopSDbg.
QEMU_NO_EL3 = ("ID_AA64PFR0_EL1.EL3", "ID_PFR1_EL1.Security", "ID_DFR0_EL1.CopSDbg")


@pytest.mark.parametrize("name", ["neoverse-n1", "cortex-a72", "a64fx"])
def test_trm_samples_match_real_kvm_on_the_same_qemu_model(name):
    """Sanitising the TRM table gives what the real 6.12 KVM reported for QEMU's model of that core."""
    lab_file = LAB / "6.12" / f"{name}.json"
    assert lab_file.exists(), f"lab snapshot {lab_file.relative_to(ROOT)} is missing from the checkout"
    lab = json.loads(lab_file.read_text())
    sample, table = sample_host(name), load_table()
    diffs = {}
    for reg, text in lab["registers"].items():
        mask = ~0
        for q in QEMU_NO_EL3:
            if q.startswith(reg + "."):
                mask &= ~table.field(q).mask
        ours = sample.registers.get(reg)
        if ours is None or (ours ^ int(text, 16)) & mask:
            diffs[reg] = (ours, text)
    assert diffs == {}
    assert set(lab["vcpu_features"]) == set(sample.vcpu_features)


def test_committed_samples_are_what_the_converter_produces():
    """From the committed dumps (tools/inputs/hosts): a clone verifies its own samples."""
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "samples" / "convert.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"convert: {len(NAMES)} samples up to date"


def test_committed_masks_are_the_lab_measurements():
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "samples" / "masks.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_converter_refuses_to_guess(tmp_path):
    sys.path.insert(0, str(ROOT / "tools" / "samples"))
    try:
        import convert
    finally:
        sys.path.pop(0)
    dump = {"cpu": "x", "source": "test", "kind": "trm-table",
            "registers": {"MIDR_EL1": "0x410fd0c1", "ID_AA64PFR0_EL1": "0x11", "ID_AA64ISAR2_EL1": "0x1"}}
    (tmp_path / "x.json").write_text(json.dumps(dump))
    specs, rules, masks = convert.load_inputs(convert.HERE / "samples.toml", convert.HERE / "kvm-sanitise.toml",
                                              convert.MASKS)
    spec = {"kernel": "6.12.95", "base": "x.json", "base_why": "test", "unlisted_zero": True}
    with pytest.raises(InputError, match=r"ID_AA64ISAR2_EL1.WFxT is 1, but KVM's value then depends"):
        convert.convert("x", spec, tmp_path, rules, masks)
    spec["fill"] = [{"registers": ["AIDR_EL1"], "source": "x.json", "why": "test"}]
    spec.pop("unlisted_zero")
    with pytest.raises(InputError, match=r"x.json has no AIDR_EL1 to fill"):
        convert.convert("x", spec, tmp_path, rules, masks)
