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
import gzip
import json
import lzma
import re
import struct
from collections import Counter
from pathlib import Path

from . import build
from .migrate import VARIANTS

FIXTURES = build.REPO / "tests" / "fixtures" / "lab"

#: (class, pattern over QEMU's error text): first match wins
FAILURE_CLASSES = (
    ("reg-list length", r"cpreg_vmstate_array_len"),
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
    "3_0_0_0_0": "MIDR_EL1", "3_0_0_0_5": "MPIDR_EL1", "3_0_0_0_6": "REVIDR_EL1", "3_1_0_0_1": "CLIDR_EL1",
    "3_3_0_0_1": "CTR_EL0", "3_0_0_4_0": "ID_AA64PFR0_EL1", "3_0_0_4_1": "ID_AA64PFR1_EL1",
    "3_0_0_5_0": "ID_AA64DFR0_EL1", "3_0_0_5_1": "ID_AA64DFR1_EL1", "3_0_0_6_0": "ID_AA64ISAR0_EL1",
    "3_0_0_6_1": "ID_AA64ISAR1_EL1", "3_0_0_6_2": "ID_AA64ISAR2_EL1", "3_0_0_7_0": "ID_AA64MMFR0_EL1",
    "3_0_0_7_1": "ID_AA64MMFR1_EL1", "3_0_0_7_2": "ID_AA64MMFR2_EL1", "3_3_9_12_0": "PMCR_EL0",
    "3_0_9_14_6": "PMMIR_EL1", "3_0_0_1_0": "ID_PFR0_EL1", "3_0_0_1_1": "ID_PFR1_EL1", "3_0_0_1_2": "ID_DFR0_EL1",
    "3_0_0_1_4": "ID_MMFR0_EL1", "3_0_0_1_5": "ID_MMFR1_EL1", "3_0_0_1_6": "ID_MMFR2_EL1", "3_0_0_1_7": "ID_MMFR3_EL1",
    "3_0_0_2_0": "ID_ISAR0_EL1", "3_0_0_2_1": "ID_ISAR1_EL1", "3_0_0_2_2": "ID_ISAR2_EL1", "3_0_0_2_3": "ID_ISAR3_EL1",
    "3_0_0_2_4": "ID_ISAR4_EL1", "3_0_0_2_5": "ID_ISAR5_EL1", "3_0_0_2_6": "ID_MMFR4_EL1", "3_0_0_2_7": "ID_ISAR6_EL1",
    "3_0_0_3_0": "MVFR0_EL1", "3_0_0_3_1": "MVFR1_EL1", "3_0_0_3_2": "MVFR2_EL1",
    "3_0_1_2_0": "ZCR_EL1", "3_0_2_1_0": "APIAKEYLO_EL1", "3_0_2_1_1": "APIAKEYHI_EL1",
    "3_0_2_1_2": "APIBKEYLO_EL1", "3_0_2_1_3": "APIBKEYHI_EL1", "3_0_2_2_0": "APDAKEYLO_EL1",
    "3_0_2_2_1": "APDAKEYHI_EL1", "3_0_2_2_2": "APDBKEYLO_EL1", "3_0_2_2_3": "APDBKEYHI_EL1",
    "3_0_2_3_0": "APGAKEYLO_EL1", "3_0_2_3_1": "APGAKEYHI_EL1",
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
    if group == 0x0016:  # KVM_REG_ARM_FW_FEAT_BMAP_REG(n)
        bmaps = ("STD_BMAP", "STD_HYP_BMAP", "VENDOR_HYP_BMAP", "VENDOR_HYP_BMAP_2")
        n = value & 0xFFFF
        return f"KVM_REG_ARM_{bmaps[n]}" if n < len(bmaps) else f"FW_FEAT_BMAP({n})"
    kinds = {0x0010: "core", 0x0011: "demux", 0x0014: "firmware", 0x0015: "SVE"}
    return f"{kinds.get(group, hex(group))}:{value & 0xFFFF:#06x}"


PMCR_EL0 = 0x6030000000130000 | 3 << 14 | 3 << 11 | 9 << 7 | 12 << 3


def is_id_register(reg_id: int) -> bool:
    """Sysregs in the feature-ID space op0=3, op1=0|1|3, CRn=0 (MIDR, ID_*, CTR, CLIDR...)."""
    return (reg_id >> 16) & 0xFFFF == 0x0013 and (reg_id >> 14) & 3 == 3 and (reg_id >> 7) & 0xF == 0


def stream_cpregs(data: bytes) -> dict[int, int]:
    """QEMU's coprocessor-register list (index -> value) inside an ARM ``cpu`` vmstate.

    The section holds ``cpreg_vmstate_array_len`` (be32) then that many sorted be64 KVM register
    ids then their values; found by shape (ids all 0x60..., strictly increasing), which is
    enough for these small single-vCPU streams."""
    for off in range(len(data) - 12):
        if data[off + 4] != 0x60:
            continue
        (n,) = struct.unpack_from(">i", data, off)
        if not 16 < n < 4096 or off + 4 + 16 * n > len(data):
            continue
        ids = struct.unpack_from(f">{n}Q", data, off + 4)
        if all(i >> 56 == 0x60 for i in ids) and all(a < b for a, b in zip(ids, ids[1:])):
            return dict(zip(ids, struct.unpack_from(f">{n}Q", data, off + 4 + 8 * n)))
    raise ValueError("no cpreg list found in the stream")


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


def restores(report: dict, streams: dict[str, dict[int, int]]) -> list[dict]:
    """One row per restore; failures classified by QEMU's text, then refined with the streams:
    a register the destination's own QEMU does not list (cpu_post_load's "in their list but not
    ours") or, when every register is known, a value KVM_SET_ONE_REG refused; ID registers whose
    values differ between the stream and the destination's own save are listed as candidates."""
    variant_of = {cpu: label for label, cpu in VARIANTS.items()}
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
            incoming = streams.get(stream)
            own = streams.get(f"{dest['host']}@{dest['kernel']}@{variant_of.get(dest_cpu)}")
            if incoming is not None and own is not None:
                row["unknown_to_dest"] = sorted(reg_name(f"{i:x}") for i in incoming if i not in own)
                row["id_value_diffs"] = sorted(
                    reg_name(f"{i:x}") for i, v in incoming.items() if is_id_register(i) and i in own and own[i] != v
                )
                pmcr = [(regs.get(PMCR_EL0, 0) >> 11) & 0x1F for regs in (incoming, own) if PMCR_EL0 in regs]
                if len(pmcr) == 2 and pmcr[0] != pmcr[1]:
                    row["pmcr_n"] = pmcr  # [stream, destination]
            if not row["ok"]:
                cls = classify(text)
                if r.get("phase") == "start":
                    cls = "start: " + cls
                elif cls == "other" and "unknown_to_dest" in row:
                    cls = "register unknown to destination" if row["unknown_to_dest"] else "value refused by KVM"
                row["class"] = cls
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


def median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def costs(report: dict) -> dict:
    """Wall seconds per boot and per QEMU job inside the emulated hosts (medians, 2 shared cores)."""
    boots = report["sources"] + report["destinations"]
    jobs = [r for b in boots for r in b["results"].values()]
    saves = [r for b in report["sources"] for k, r in b["results"].items() if k.startswith("save:")]
    loads = [r for b in report["destinations"] for r in b["results"].values()]
    return {
        "rounds_s": report["rounds_s"],
        "boots": len(boots),
        "boot_to_init_s": median([b["boot_s"] for b in boots]),
        "boot_wall_s": {"source": median([b["wall_s"] for b in report["sources"]]),
                        "destination": median([b["wall_s"] for b in report["destinations"]]),
                        "max": max(b["wall_s"] for b in boots)},
        "qemu_exec_s": median([r.get("start_s") for r in jobs]),
        "machine_init_s": median([r.get("init_s") for r in jobs]),
        "save_s": median([r.get("save_s") for r in saves]),
        "load_s": median([r.get("load_s") for r in loads]),
        "job_s": {"save": median([r.get("job_s") for r in saves]), "load": median([r.get("job_s") for r in loads])},
        "restores": len(loads),
    }  # fmt: skip


CODES = {"reg-list length": "L", "register unknown to destination": "U", "value refused by KVM": "V"}


def grid(rows: list[dict]) -> str:
    """RST table: a row per saved stream, a column per destination; a cell is the outcome per
    destination -cpu string, in ``VARIANTS`` order ("host" first), separated by "/"."""
    dests = sorted({(r["dest"], r["dest_kernel"]) for r in rows})
    streams = sorted({(r["source"], r["source_kernel"], r["variant"]) for r in rows})
    cells: dict[tuple, list[str]] = {}
    order = list(VARIANTS.values())
    for r in sorted(rows, key=lambda r: order.index(r["dest_cpu"]) if r["dest_cpu"] in order else len(order)):
        code = "ok" if r["ok"] else CODES.get(r.get("class", ""), "S" if r["phase"] == "start" else "?")
        cells.setdefault((r["source"], r["source_kernel"], r["variant"], r["dest"], r["dest_kernel"]), []).append(code)
    header = ["stream"] + [f"{h}@{k}" for h, k in dests]
    body = [[f"{h}@{k} {v}"] + ["/".join(cells.get((h, k, v, dh, dk), ["-"])) for dh, dk in dests] for h, k, v in streams]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    rule = " ".join("=" * w for w in widths)
    lines = [rule, " ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip(), rule]
    lines += [" ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join([*lines, rule])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--archive", type=Path, help="write results.json.gz, summary.json.gz, streams/*.mig.xz here")
    args = ap.parse_args()
    report = json.loads((args.dir / "results.json").read_text())
    streams = {p.name.removesuffix(".mig"): stream_cpregs(p.read_bytes()) for p in (args.dir / "streams").glob("*.mig")}
    rows = restores(report, streams)
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
    print("== outcome grid")
    print(grid(rows))
    print("== costs", json.dumps(costs(report)))
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
                                         "costs": costs(report)}, indent=1) + "\n")  # fmt: skip
    if args.archive:
        archive(args.dir, args.archive, args.json)


def archive(src: Path, dest: Path, summary: Path | None) -> None:
    """Raw results small enough to commit: gzip'd JSON and xz'd streams (~11 KB each: mostly zero pages)."""
    (dest / "streams").mkdir(parents=True, exist_ok=True)
    for path in [src / "results.json", *([summary] if summary else [])]:
        (dest / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes(), 9, mtime=0))
    for mig in sorted((src / "streams").glob("*.mig")):
        (dest / "streams" / f"{mig.name}.xz").write_bytes(lzma.compress(mig.read_bytes(), preset=9))


if __name__ == "__main__":
    main()
