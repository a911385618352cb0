#!/usr/bin/env python3
"""Convert the reference host dumps into the bundled sample HostSnapshots (format 1).

Inputs: the reference dumps directory (the committed ``tools/inputs/hosts`` unless given), the sample
list ``tools/samples/samples.toml`` (which dumps make which sample, and why), KVM's sanitisation
as data ``tools/samples/kvm-sanitise.toml`` and the per-kernel writable masks
``arm_cpu_filter/table/data/kvm-masks.toml``.  Output: ``arm_cpu_filter/samples/hosts/<name>.json``,
each with a ``provenance`` object saying where every register (and every changed field) came from,
and the sha256 of every dump it used.  Nothing is guessed: a register no source has stays absent
and the provenance says so.

    python3 tools/samples/convert.py            # write the samples from the committed dumps
    python3 tools/samples/convert.py --check    # verify the committed ones
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arm_cpu_filter.errors import InputError  # noqa: E402
from arm_cpu_filter.snapshot import HostSnapshot, dumps, has_aarch32_el0  # noqa: E402
from arm_cpu_filter.snapshot.files import atomic_write  # noqa: E402
from arm_cpu_filter.table import U64, Register, load_table  # noqa: E402
from tools import inputs  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = ROOT / "arm_cpu_filter" / "samples" / "hosts"
MASKS = ROOT / "arm_cpu_filter" / "table" / "data" / "kvm-masks.toml"
REFERENCE = inputs.HERE / "hosts"
RAW_KINDS = ("real-host-dump", "trm-table")

#: Registers of a dump that are not part of a sample, and why.
DROPPED = {
    "MPIDR_EL1": "per-vCPU identity KVM derives from the vCPU id, not part of a CPU model",
    "CCSIDR_EL1": "one value per cache level (CSSELR-selected), fabricated by KVM; not an ID register",
    "DCZID_EL0": "KVM cannot read or set it on these kernels (ENOENT in the lab): the guest reads the hardware",
}


@dataclass
class Dump:
    file: str
    meta: dict[str, Any]
    registers: dict[str, int]
    sha256: str


@dataclass
class Build:
    """A sample being built: register values plus the provenance of each."""

    name: str
    spec: dict[str, Any]
    registers: dict[str, int] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    changes: dict[str, str] = field(default_factory=dict)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    kind: str = ""

    @property
    def series(self) -> str:
        major, minor = self.spec["kernel"].split(".")[:2]
        return f"{major}.{minor}"

    def version(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self.spec["kernel"].split(".")[:3])


def _int(value: Any, where: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(str(value).replace("_", ""), 16)
    except ValueError:
        raise InputError(f"{where}: {value!r} is not a hex register value") from None


def load_dump(ref: Path, file: str) -> Dump:
    path = ref / file
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except FileNotFoundError:
        raise InputError(f"reference dump {path}: no such file") from None
    except ValueError as exc:
        raise InputError(f"reference dump {path}: not valid JSON ({exc})") from None
    table = load_table()
    regs = {}
    for name, value in data.get("registers", {}).items():
        reg = table.get(name)
        regs[reg.name if reg else name.upper()] = _int(value, f"{file}: {name}")
    meta = {k: data.get(k, "") for k in ("cpu", "source", "kind")}
    return Dump(file, meta, regs, hashlib.sha256(raw).hexdigest())


def _note_source(b: Build, d: Dump, used_for: str) -> None:
    entry = b.sources.setdefault(d.file, {"upstream": d.meta["source"], "kind": d.meta["kind"], "sha256": d.sha256,
                                          "used_for": ""})
    entry["used_for"] = "; ".join(x for x in (entry["used_for"], used_for) if x)


def _set_field(b: Build, qualname: str, new: int, why: str) -> None:
    f = load_table().field(qualname)
    reg = f.register
    if reg not in b.registers:
        return
    old = f.extract(b.registers[reg])
    if old != new:
        b.registers[reg] = f.insert(b.registers[reg], new)
        b.changes[qualname] = f"{old} -> {new}: {why}"


def _set_register(b: Build, name: str, value: int, why: str, *, derive: bool) -> None:
    """Force a whole register (adding it when ``derive``: its value does not depend on the host)."""
    if name not in b.registers:
        if derive:
            b.registers[name] = value
            b.origin[name] = f"derived: {why}"
        return
    if b.registers[name] != value:
        b.changes[name] = f"0x{b.registers[name]:016x} -> 0x{value:016x}: {why}"
        b.registers[name] = value


def _kvm_registers() -> list[Register]:
    """The registers KVM reports for a vCPU on these kernels (the table minus the dropped ones)."""
    return [r for r in load_table().registers if r.name not in DROPPED]


# ---- assembling the registers from the dumps -------------------------------------------------

def assemble(b: Build, ref: Path) -> None:
    spec = b.spec
    base = load_dump(ref, spec["base"])
    _note_source(b, base, f"base: {spec['base_why']}")
    b.kind = base.meta["kind"]
    for name, value in base.registers.items():
        if name not in DROPPED:
            b.registers[name] = value
            b.origin[name] = spec["base"]
    if spec.get("unlisted_zero"):
        for reg in _kvm_registers():
            if reg.name not in b.registers:
                b.registers[reg.name] = 0
                b.origin[reg.name] = f"{spec['base']}: not written by QEMU's init function, so 0 in that model"
    for entry in spec.get("fields_from", []):
        src = load_dump(ref, entry["source"])
        _note_source(b, src, "fields: " + ", ".join(entry["fields"]))
        for qualname in entry["fields"]:
            reg_name, _, fname = qualname.partition(".")
            reg = load_table().register(reg_name)
            mask = U64 if fname == "*" else reg.field(fname).mask
            if reg.name not in src.registers:
                raise InputError(f"sample {b.name}: {entry['source']} has no {reg.name} for {qualname}")
            old = b.registers.get(reg.name, 0)
            b.registers[reg.name] = (old & ~mask) | (src.registers[reg.name] & mask)
            b.origin.setdefault(reg.name, entry["source"])
            b.fields[qualname] = f"{entry['source']}: {entry['why']}"
    for entry in spec.get("fill", []):
        src = load_dump(ref, entry["source"])
        _note_source(b, src, "fill: " + ", ".join(entry["registers"]))
        for name in entry["registers"]:
            if name in b.registers:
                raise InputError(f"sample {b.name}: fill of {name}, which the base already has")
            if name not in src.registers:
                raise InputError(f"sample {b.name}: {entry['source']} has no {name} to fill")
            b.registers[name] = src.registers[name]
            b.origin[name] = f"filled from {entry['source']}: {entry['why']}"
    for name in spec.get("absent", {}).get("registers", []):
        if name != "*" and b.registers.pop(name, None) is not None:  # the base's value is not the host's
            b.origin.pop(name, None)
    raz = spec.get("raz")
    if raz:
        for name in raz["registers"]:
            _set_register(b, name, 0, raz["why"], derive=True)


# ---- KVM's sanitisation ------------------------------------------------------------------------

def _field_rule(b: Build, rule: dict[str, Any]) -> None:
    if "kernels" in rule and b.series not in rule["kernels"]:
        return
    if "kinds" in rule and b.kind not in rule["kinds"]:
        return
    if "if_unaffected" in rule and rule["if_unaffected"] not in b.spec.get("unaffected", []):
        return
    op, qualname = rule["op"], rule["field"]
    why = f"{rule['why']} [{rule['source']}]"
    if op == "must_be_zero":
        reg_name, _, fname = qualname.partition(".")
        reg = load_table().register(reg_name)
        fields = reg.fields if fname == "*" else (reg.field(fname),)
        for f in fields:
            if f.name not in rule.get("except", []) and reg.name in b.registers and f.extract(b.registers[reg.name]):
                raise InputError(f"sample {b.name}: {f.qualname} is {f.extract(b.registers[reg.name])}, "
                                 f"but KVM's value then depends on what a dump cannot show ({rule['why']})")
        return
    f = load_table().field(qualname)
    if f.register not in b.registers:
        return
    cur = f.extract(b.registers[f.register])
    if op == "set":
        new = rule["value"]
    elif op == "cap":
        new = min(cur, rule["value"])
    elif op == "pmu":
        new = 0 if cur == 0xF else min(cur, rule["value"])
    elif op == "perfmon":  # pmuver_to_perfmon(): PMUv3 (1) is PerfMon 3, later versions share numbers
        pmuver = load_table().field("ID_AA64DFR0_EL1.PMUVer")
        limit = pmuver.extract(b.registers.get(pmuver.register, 0))
        new = 3 if limit == 1 else limit
    else:
        raise InputError(f"kvm-sanitise.toml: rule for {qualname}: unknown op {op!r}")
    _set_field(b, qualname, new, why)


def _clidr(ctr: int) -> int:
    """KVM's fabricated CLIDR_EL1 for a VM whose CTR_EL0 is ``ctr`` (no MTE)."""
    table = load_table()
    idc, dic = table.field("CTR_EL0.IDC").extract(ctr), table.field("CTR_EL0.DIC").extract(ctr)
    unified, data, inst, separate = 4, 2, 1, 3
    if idc:
        loc = 1 if dic else 2
        clidr = unified << 3 * (loc - 1)
    else:
        loc = 1
        clidr = (1 << 27) | (1 << 21) | data
    if not dic:
        clidr = (clidr & ~0x7) | (separate if clidr & 0x7 == data else inst)
    return clidr | (loc << 24)


def sanitise(b: Build, rules: dict[str, Any]) -> None:
    table = load_table()
    general = rules["general"]
    if b.kind in RAW_KINDS and "CTR_EL0" in b.registers and "CLIDR_EL1" in b.registers:
        clidr = table.register("CLIDR_EL1")
        raw = b.registers["CLIDR_EL1"]
        loc, louis, louu = (clidr.field(n).extract(raw) for n in ("LoC", "LoUIS", "LoUU"))
        if loc == 0 or (louis == 0 and louu == 0):
            _set_field(b, "CTR_EL0.IDC", 1, general["effective_idc_why"])
    for name, value in list(b.registers.items()):
        reg = table.get(name)
        if reg is None or reg.kvm in ("impl-id", "clidr", "absent"):
            continue
        keep = covered = 0
        for f in reg.fields:
            covered |= f.mask
            if f.policy is not None:
                keep |= f.mask
            elif f.extract(value):
                b.changes[f.qualname] = f"{f.extract(value)} -> 0: {general['no_ftr_entry']}"
        if value & ~covered & ~reg.res1:
            b.changes[f"{name} bits 0x{value & ~covered & ~reg.res1:016x}"] = f"-> 0: {general['no_ftr_entry']}"
        b.registers[name] = (value & keep) | reg.res1
    for name in general["kvm_raz"]:
        _set_register(b, name, 0, general["kvm_raz_why"], derive=True)
    for rule in rules["rule"]:
        _field_rule(b, rule)
    pfr0 = b.registers.get("ID_AA64PFR0_EL1")
    if pfr0 is not None and not has_aarch32_el0(b.registers):
        for reg in table.registers:
            if reg.aarch32:
                kept = [table.field(q) for q in general["aarch32_raz_keep"] if q.startswith(reg.name + ".")]
                value = 0
                for f in kept:
                    value = f.insert(value, f.extract(b.registers.get(reg.name, 0)))
                _set_register(b, reg.name, value, general["aarch32_raz_why"], derive=True)
    if pfr0 is not None and not table.field("ID_AA64PFR0_EL1.SVE").extract(pfr0):
        _set_register(b, "ID_AA64ZFR0_EL1", 0, "the host has no SVE, so KVM offers no SVE vCPU feature and "
                      "ZFR0 reads 0 [linux-notes §6, §8]", derive=True)
    if "CTR_EL0" in b.registers and b.version() >= tuple(int(x) for x in general["clidr_since"].split(".")):
        fabricated = _clidr(b.registers["CTR_EL0"])
        if b.registers.get("CLIDR_EL1") != fabricated:
            if "CLIDR_EL1" in b.registers:
                b.changes["CLIDR_EL1"] = (f"0x{b.registers['CLIDR_EL1']:016x} -> 0x{fabricated:016x}: "
                                          f"{general['clidr_why']}")
            else:
                b.origin["CLIDR_EL1"] = f"derived from CTR_EL0: {general['clidr_why']}"
            b.registers["CLIDR_EL1"] = fabricated


def offered_features(regs: dict[str, int]) -> list[str]:
    """vCPU features KVM offers on a host with these (sanitised) registers."""
    table = load_table()

    def fld(q: str) -> int:
        f = table.field(q)
        return f.extract(regs.get(f.register, 0))

    out = ["psci-0.2"]
    if fld("ID_AA64DFR0_EL1.PMUVer") not in (0, 0xF):
        out.append("pmu-v3")
    if fld("ID_AA64PFR0_EL1.SVE"):
        out.append("sve")
    address = any(fld(q) for q in ("ID_AA64ISAR1_EL1.APA", "ID_AA64ISAR1_EL1.API", "ID_AA64ISAR2_EL1.APA3"))
    generic = any(fld(q) for q in ("ID_AA64ISAR1_EL1.GPA", "ID_AA64ISAR1_EL1.GPI", "ID_AA64ISAR2_EL1.GPA3"))
    if address and generic:
        out += ["ptrauth-address", "ptrauth-generic"]
    return out


# ---- the snapshot --------------------------------------------------------------------------------

def _spelled(ref: Path) -> str:
    """The dumps directory as provenance names it: inside the repository when it is."""
    return inputs.relative(ref) if ref.resolve().is_relative_to(ROOT) else str(ref)


def convert(name: str, spec: dict[str, Any], ref: Path, rules: dict[str, Any], masks: dict[str, Any]) -> str:
    """The sample's JSON text."""
    b = Build(spec.get("name", name), spec)
    assemble(b, ref)
    if spec.get("rules", True):
        sanitise(b, rules)
    features = spec.get("vcpu_features") or offered_features(b.registers)
    features_why = spec.get("vcpu_features_why") or (
        "what the dump's vCPU had" if "vcpu_features" in spec else rules["general"]["features_why"])
    absent_spec = spec.get("absent", {})
    absent = {}
    for reg in _kvm_registers():
        if reg.name not in b.registers:
            declared = reg.name in absent_spec.get("registers", []) or "*" in absent_spec.get("registers", [])
            absent[reg.name] = absent_spec["why"] if declared else "no source dumped it"
    kernel_masks = masks["kernels"].get(b.series)
    snap: dict[str, Any] = {
        "format": 1,
        "host": b.name,
        "kernel": spec["kernel"],
        "source": "converted",
        "vcpu_features": features,
        "registers": {n: f"0x{v:016x}" for n, v in b.registers.items()},
    }
    if kernel_masks is not None:
        aarch32_el0 = "ID_AA64PFR0_EL1" not in b.registers or has_aarch32_el0(b.registers)
        out_masks = {}
        for n in b.registers:
            entry = kernel_masks["registers"].get(n)
            if entry is not None:
                aa32_raz = not aarch32_el0 and load_table().register(n).aarch32
                out_masks[n] = kernel_masks["aarch32_without_el0"] if aa32_raz else entry["mask"]
        snap["writable_masks"] = out_masks
        masks_note = (f"arm_cpu_filter/table/data/kvm-masks.toml [{b.series}]: {kernel_masks['measured']} "
                      f"(kernel {kernel_masks['kernel']})")
    else:
        masks_note = (f"none: Linux {b.series} has no KVM_ARM_GET_REG_WRITABLE_MASKS (< 6.7), "
                      "so nothing is writable")
    snap["capabilities"] = {
        "writable_impl_id_regs": bool(spec.get("writable_impl_id_regs", False)),
        "writable_masks": kernel_masks is not None,
    }
    snap["provenance"] = {
        "converted_by": f"tools/samples/convert.py from {_spelled(ref)} "
                        "(tools/samples/samples.toml, tools/samples/kvm-sanitise.toml)",
        "kernel": f"pretends Linux {spec['kernel']}: KVM rules and writable masks of the {b.series} series",
        "sources": b.sources,
        "registers": dict(sorted(b.origin.items())),
        "fields_from": b.fields,
        "sanitised": dict(sorted(b.changes.items())),
        "absent": absent,
        "dropped": {n: DROPPED[n] for n in sorted(DROPPED)},
        "assumptions": {
            "unaffected": spec.get("unaffected", []),
            "gic": "a GICv3 CPU interface (KVM then shows ID_AA64PFR0_EL1.GIC = 1)",
            "mte": "VMs do not enable KVM_CAP_ARM_MTE",
        } if spec.get("rules", True) else {},
        "vcpu_features": features_why,
        "writable_masks": masks_note,
        "capabilities": ("KVM_CAP_ARM_WRITABLE_IMP_ID_REGS (239, Linux 6.15+) enabled: MIDR/REVIDR/AIDR writable"
                         if spec.get("writable_impl_id_regs") else
                         "writable_impl_id_regs false: MIDR/REVIDR/AIDR must equal the host's"),
    }
    return dumps(HostSnapshot.from_dict(snap, f"sample {b.name}"))


def load_inputs(samples: Path, rules: Path, masks: Path) -> tuple[dict, dict, dict]:
    def toml(p: Path) -> dict:
        try:
            return tomllib.loads(p.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{p}: {exc}") from None

    return toml(samples)["samples"], toml(rules), toml(masks)


def build_all(ref: Path, samples: Path = HERE / "samples.toml", rules: Path = HERE / "kvm-sanitise.toml",
              masks: Path = MASKS) -> dict[str, str]:
    """{file name: JSON text} of every sample."""
    specs, rule_data, mask_data = load_inputs(samples, rules, masks)
    out = {}
    for key, spec in specs.items():
        name = spec.get("name", key)
        out[f"{name}.json"] = convert(name, spec, ref, rule_data, mask_data)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference", type=Path, nargs="?", default=REFERENCE,
                    help="the reference host dumps (default: the committed tools/inputs/hosts)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="verify the files in --out instead of writing them")
    args = ap.parse_args(argv)
    try:
        files = build_all(args.reference)
    except InputError as exc:
        print(f"convert: {exc}", file=sys.stderr)
        return 2
    if args.check:
        present = {p.name for p in args.out.glob("*.json")}
        stale = sorted(n for n, text in files.items() if n not in present or (args.out / n).read_text() != text)
        extra = sorted(present - set(files))
        if stale or extra:
            print(f"convert: samples out of date: {', '.join(stale + extra)} (rerun tools/samples/convert.py)",
                  file=sys.stderr)
            return 1
        print(f"convert: {len(files)} samples up to date")
        return 0
    for n, text in files.items():
        atomic_write(args.out / n, text)
    print(f"convert: wrote {len(files)} samples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
