"""Summarise a migration matrix (``tools.lab.migrate matrix``): facts, outcomes, failure classes.

Usage (repository root): ``python3 -m tools.lab.migreport <dir with results.json> [--json OUT]``

Prints the tables ``tests/lab/MIGRATION.rst`` quotes and, with ``--json``, writes a compact
summary (every restore with its outcome, error class and QEMU's error lines; per host+kernel
facts with KVM_GET_REG_LIST sizes and the 6.12 -> 7.3 register-list diff). For restores of a
plain ``-cpu host`` VM onto ``-cpu host`` it also records what an ID-register-only check says
(the engine's ``check`` of the source's committed lab snapshot against the destination's), so
the failures such a check would miss are counted.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from . import build

FIXTURES = build.REPO / "tests" / "fixtures" / "lab"

#: (class, pattern over QEMU's error text): first match wins
FAILURE_CLASSES = (
    ("reg-list length", r"cpreg_vmstate_array_len"),
    ("register refused by KVM_SET_ONE_REG", r"write_list_to_kvmstate|cpreg|Invalid value for|failed to set"),
    ("vCPU option unknown on destination", r"not found|can't apply global|Property"),
    ("SVE vector lengths", r"(?i)sve|vector length"),
    ("PMU", r"(?i)pmu"),
    ("pointer authentication", r"(?i)pauth|pointer auth"),
    ("IPA size", r"(?i)ipa"),
)

#: names of registers that come and go between kernels (sysreg encodings op0_op1_CRn_CRm_op2)
SYSREG_NAMES = {
    "3_0_2_0_3": "TCR2_EL1", "3_0_10_2_2": "PIRE0_EL1", "3_0_10_2_3": "PIR_EL1",
    "3_0_10_2_4": "POR_EL1", "3_3_10_2_4": "POR_EL0", "3_0_1_0_3": "SCTLR2_EL1",
    "3_0_0_4_2": "ID_AA64PFR2_EL1", "3_0_0_7_3": "ID_AA64MMFR3_EL1", "3_0_0_7_4": "ID_AA64MMFR4_EL1",
    "3_0_0_6_3": "ID_AA64ISAR3_EL1", "3_0_0_4_5": "ID_AA64SMFR0_EL1", "3_0_0_4_4": "ID_AA64ZFR0_EL1",
    "3_0_0_5_2": "ID_AA64DFR2_EL1", "3_1_0_0_7": "AIDR_EL1", "3_0_12_1_1": "DISR_EL1",
    "3_3_13_0_5": "TPIDR2_EL0", "3_3_13_0_7": "SCXTNUM_EL0", "3_0_13_0_7": "SCXTNUM_EL1",
    "3_0_1_2_4": "SMPRI_EL1", "3_0_1_2_6": "SMCR_EL1", "3_3_4_2_2": "SVCR",
    "3_0_0_3_4": "ID_PFR2_EL1", "3_0_0_3_5": "ID_DFR1_EL1", "3_0_0_3_6": "ID_MMFR5_EL1",
    "3_3_0_0_7": "DCZID_EL0", "3_0_14_1_0": "CNTKCTL_EL1", "3_0_13_0_5": "ACCDATA_EL1",
    "3_0_2_5_0": "GCSCR_EL1", "3_0_2_5_1": "GCSPR_EL1", "3_0_2_5_2": "GCSCRE0_EL1", "3_3_2_5_1": "GCSPR_EL0",
}  # fmt: skip


def reg_name(reg_id: str) -> str:
    """A readable name for a KVM register id (hex string)."""
    value = int(reg_id, 16)
    group = (value >> 16) & 0xFFFF
    if group == 0x0013:
        enc = [(value >> 14) & 3, (value >> 11) & 7, (value >> 7) & 0xF, (value >> 3) & 0xF, value & 7]
        key = "_".join(map(str, enc))
        return SYSREG_NAMES.get(key, "S{}_{}_C{}_C{}_{}".format(*enc))
    kinds = {0x0010: "core", 0x0011: "demux", 0x0014: "firmware", 0x0015: "SVE", 0x0016: "fw-bitmap"}
    return f"{kinds.get(group, hex(group))}:{value & 0xFFFF:#06x}"


def classify(text: str) -> str:
    for label, pattern in FAILURE_CLASSES:
        if re.search(pattern, text):
            return label
    return "other"


def id_check(src: str, dst: str, src_kernel: str, dst_kernel: str) -> bool | None:
    """The engine's verdict for the source's lab snapshot on the destination's (None: no fixture)."""
    from arm_cpu_filter.engine import check
    from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot

    sp, dp = FIXTURES / src_kernel / f"{src}.json", FIXTURES / dst_kernel / f"{dst}.json"
    if not (sp.exists() and dp.exists()):
        return None
    s = json.loads(sp.read_text())
    definition = CpuDefinition.from_dict({"registers": s["registers"], "vcpu_features": s["vcpu_features"]})
    return check(definition, HostSnapshot.from_dict(json.loads(dp.read_text()))).usable


def restores(report: dict) -> list[dict]:
    rows = []
    for dest in report["destinations"]:
        for job_id, r in dest["results"].items():
            _, stream, dest_cpu = job_id.split(":", 2)
            src, src_kernel, variant = stream.split("@")
            text = " | ".join([r.get("error", "")] + r.get("stderr", []))
            row = {
                "source": src, "source_kernel": src_kernel, "variant": variant,
                "dest": dest["host"], "dest_kernel": dest["kernel"], "dest_cpu": dest_cpu,
                "ok": bool(r.get("ok")), "phase": r.get("phase"), "status": r.get("status"),
                "error": r.get("error"), "stderr": r.get("stderr", []),
                "start_s": r.get("start_s"), "init_s": r.get("init_s"), "load_s": r.get("load_s"),
            }  # fmt: skip
            if not row["ok"]:
                row["class"] = "start: " + classify(text) if r.get("phase") == "start" else classify(text)
            if variant == "host" and dest_cpu == "host":
                row["id_check_usable"] = id_check(src, dest["host"], src_kernel, dest["kernel"])
            rows.append(row)
    return rows


def facts(report: dict) -> dict[str, dict]:
    out = {}
    for src in report["sources"]:
        f = dict(src["results"].get("facts", {}))
        lists = f.pop("reg_lists", {})
        f["reg_list_lengths"] = {k: len(v) for k, v in lists.items()}
        f["_lists"] = lists
        out[f"{src['host']}@{src['kernel']}"] = f
    return out


def reg_list_diffs(f: dict[str, dict]) -> dict[str, dict]:
    diffs = {}
    hosts = sorted({k.split("@")[0] for k in f})
    for h in hosts:
        old, new = f.get(f"{h}@6.12", {}).get("_lists", {}), f.get(f"{h}@7.3", {}).get("_lists", {})
        for fs in sorted(set(old) & set(new)):
            a, b = set(old[fs]), set(new[fs])
            diffs[f"{h}:{fs}"] = {
                "only_6.12": sorted(reg_name(r) for r in a - b),
                "only_7.3": sorted(reg_name(r) for r in b - a),
            }
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report = json.loads((args.dir / "results.json").read_text())
    rows = restores(report)
    f = facts(report)
    diffs = reg_list_diffs(f)
    print("== facts per host@kernel")
    for k, v in f.items():
        print(k, {x: y for x, y in v.items() if x not in ("_lists", "job_s")})
    print("== KVM_GET_REG_LIST differences 6.12 -> 7.3 (same emulated CPU)")
    for k, v in diffs.items():
        print(k, v)
    print("== saves")
    for src in report["sources"]:
        for jid, r in src["results"].items():
            if jid.startswith("save:"):
                print(src["host"], src["kernel"], jid, r.get("ok"), r.get("bytes"), r.get("error", ""), r.get("stderr", []))
    print("== restores:", len(rows), "ok:", sum(r["ok"] for r in rows))
    print(Counter(r.get("class", "loaded") for r in rows))
    seen: dict[str, str] = {}
    for r in rows:
        if not r["ok"]:
            seen.setdefault(r["class"], " | ".join(filter(None, [r["error"], *r["stderr"]])))
    for cls, text in seen.items():
        print(f"[{cls}] e.g. {text}")
    missed = [r for r in rows if r.get("id_check_usable") and not r["ok"]]
    caught = [r for r in rows if r.get("id_check_usable") is False and not r["ok"]]
    false_block = [r for r in rows if r.get("id_check_usable") is False and r["ok"]]
    print(f"== host->host restores: ID check usable but restore failed: {len(missed)}; ID check blocked and "
          f"restore failed: {len(caught)}; ID check blocked but restore loaded: {len(false_block)}")  # fmt: skip
    for r in missed + false_block:
        print(" ", r["source"], r["source_kernel"], "->", r["dest"], r["dest_kernel"], "ok" if r["ok"] else r["class"])
    if args.json:
        for v in f.values():
            v["reg_lists"] = v.pop("_lists")
        args.json.write_text(json.dumps({"facts": f, "reg_list_diffs": diffs, "restores": rows,
                                         "rounds_s": report["rounds_s"]}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
