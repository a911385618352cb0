"""The generated register table: regenerated from the kernel files, and spot-checked facts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from arm_cpu_filter.table import EXACT, LOWER, load_table

ROOT = Path(__file__).resolve().parents[2]


def test_committed_table_is_what_the_generator_produces():
    """From the committed inputs (tools/inputs/linux/sysreg): a clone verifies its own table."""
    out = subprocess.run([sys.executable, "tools/table/generate.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_table_records_its_inputs_inside_the_repository():
    sysreg = load_table().inputs["sysreg"]
    assert sysreg["file"] == "tools/inputs/linux/sysreg"
    assert sysreg["source"] == "torvalds/linux@5f44f603b0daeda535b6d307cd02ef9a24b3b8c5:arch/arm64/tools/sysreg"
    assert sysreg["sha256"] == "65c0664b022b212508159118630aeada7eff41408feefa43604ad45dcf60b9f9"
    assert load_table().inputs["policy"]["file"] == "tools/table/kernel-policy.toml"


def test_every_register_the_issue_lists_is_there():
    names = {r.name for r in load_table().registers}
    aa64 = {f"ID_AA64{x}_EL1" for x in
            "PFR0 PFR1 PFR2 ZFR0 SMFR0 FPFR0 DFR0 DFR1 AFR0 AFR1 ISAR0 ISAR1 ISAR2 ISAR3 MMFR0 MMFR1 MMFR2 MMFR3 MMFR4".split()}
    aa32 = {f"ID_{x}_EL1" for x in "PFR0 PFR1 PFR2 DFR0 DFR1 AFR0".split()}
    aa32 |= {f"ID_MMFR{i}_EL1" for i in range(6)} | {f"ID_ISAR{i}_EL1" for i in range(7)} | {f"MVFR{i}_EL1" for i in range(3)}
    other = {"CTR_EL0", "DCZID_EL0", "MIDR_EL1", "REVIDR_EL1", "AIDR_EL1", "CLIDR_EL1"}
    assert aa64 | aa32 | other <= names


def test_field_facts():
    t = load_table()
    aes = t.field("ID_AA64ISAR0_EL1.AES")
    assert (aes.shift, aes.width, aes.signed, aes.policy, aes.default) == (4, 4, False, LOWER, 0)
    assert aes.values == {0: "NI", 1: "AES", 2: "PMULL"}
    fp = t.field("ID_AA64PFR0_EL1.FP")
    assert (fp.shift, fp.signed, fp.default, fp.ordinal(0xF)) == (16, True, 0xF, -1)
    assert t.field("ID_AA64MMFR0_EL1.TGRAN16").signed is False  # unlike TGRAN4/64
    assert t.field("ID_AA64MMFR0_EL1.TGRAN4").signed is True
    # KVM's overrides of the host table: PMUVer/DebugVer/PerfMon compare as LOWER
    pmu = t.field("ID_AA64DFR0_EL1.PMUVer")
    assert (pmu.host_policy, pmu.policy) == (EXACT, LOWER)
    assert t.field("ID_DFR0_EL1.PerfMon").policy == LOWER
    l1ip = t.field("CTR_EL0.L1Ip")
    assert (l1ip.policy, l1ip.safe) == (EXACT, 2)
    assert t.field("ID_AA64MMFR0_EL1.TGRAN4_2").safe == 1
    # no kernel entry -> no policy (KVM exposes 0 and accepts only 0)
    assert t.field("ID_AA64PFR1_EL1.CSV2_frac").policy is None
    assert t.field("ID_MMFR0_EL1.InnerShr").signed is True  # signed only in the kernel's table


def test_encodings():
    t = load_table()
    isar0 = t.register("ID_AA64ISAR0_EL1")
    assert isar0.encoding == (3, 0, 0, 6, 0)
    assert t.register("CTR_EL0").encoding == (3, 3, 0, 0, 1)
    assert t.register("CLIDR_EL1").encoding == (3, 1, 0, 0, 1)
    assert t.register("ID_AA64ISAR0") is isar0  # short names work


def test_defaults_are_not_implemented():
    t = load_table()
    assert t.register("ID_AA64ISAR0_EL1").default == 0
    assert t.register("ID_AA64PFR0_EL1").default == 0xFF0011  # FP/AdvSIMD NI (0xF), EL0/EL1 AArch64
    assert t.register("CTR_EL0").default == 0x80008000  # RES1 bit 31, L1Ip VIPT
    assert t.field("ID_AA64DFR0_EL1.DebugVer").default == 6
