#!/usr/bin/env python3
"""Generate arm_cpu_filter/table/data/registers.json, the ID-register table (layer 1).

Inputs are the kernel's own machine-readable register description
(``arch/arm64/tools/sysreg``: field layout, signedness, value names) and the reviewed
policy file ``tools/table/kernel-policy.toml`` (the kernel's safe-value policies from
``cpufeature.c`` and KVM's overrides from ``sys_regs.c``).  By default the sysreg file is the
committed copy ``tools/inputs/linux/sysreg`` (its upstream origin from ``tools/inputs/SOURCES.toml``);
both are arguments, so the table can be regenerated from a newer kernel::

    python3 tools/table/generate.py                  # from the committed inputs
    python3 tools/table/generate.py --sysreg PATH/TO/linux/arch/arm64/tools/sysreg \
        --sysreg-source "torvalds/linux@<commit>:arch/arm64/tools/sysreg"

``--check`` compares instead of writing (used by the test suite).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools import inputs  # noqa: E402

OUT = ROOT / "arm_cpu_filter" / "table" / "data" / "registers.json"
SYSREG = "linux/sysreg"

#: Fields whose "not implemented" realization default is not derivable from the
#: sysreg value names: the architecture defines no NI value for them.
DEFAULT_OVERRIDES = {
    ("ID_AA64PFR0_EL1", "EL0"): 1,  # AArch64 only; 0 is not a valid EL0 value
    ("ID_AA64PFR0_EL1", "EL1"): 1,
    ("ID_AA64DFR0_EL1", "DebugVer"): 6,  # Armv8 debug is the architectural minimum
    ("MIDR_EL1", "Architecture"): 0xF,  # "defined by the ID registers"
    ("CTR_EL0", "L1Ip"): 2,  # VIPT, the kernel's safe value
}


@dataclass
class SysregField:
    name: str
    msb: int
    lsb: int
    kind: str  # Field, Enum, UnsignedEnum, SignedEnum
    values: dict[int, str] = field(default_factory=dict)


@dataclass
class SysregBlock:
    name: str
    encoding: tuple[int, int, int, int, int]
    fields: list[SysregField] = field(default_factory=list)
    res1: int = 0


def _bits(spec: str) -> tuple[int, int]:
    if ":" in spec:
        msb, lsb = spec.split(":")
        return int(msb), int(lsb)
    return int(spec), int(spec)


def parse_sysreg(text: str) -> dict[str, SysregBlock]:
    """Parse the Sysreg blocks of the kernel's sysreg file (SysregFields are not needed
    for ID registers and are skipped)."""
    blocks: dict[str, SysregBlock] = {}
    current: SysregBlock | None = None
    enum: SysregField | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        head = words[0]
        if head == "Sysreg":
            name, *enc = words[1:]
            current = SysregBlock(name, tuple(int(x, 0) for x in enc))  # type: ignore[arg-type]
            blocks[name] = current
        elif head in ("EndSysreg", "EndSysregFields"):
            current = None
        elif current is None:
            continue
        elif head in ("UnsignedEnum", "SignedEnum", "Enum"):
            msb, lsb = _bits(words[1])
            enum = SysregField(words[2], msb, lsb, head)
            current.fields.append(enum)
        elif head == "EndEnum":
            enum = None
        elif head == "Field":
            msb, lsb = _bits(words[1])
            current.fields.append(SysregField(words[2], msb, lsb, "Field"))
        elif head == "Res1":
            msb, lsb = _bits(words[1])
            current.res1 |= ((1 << (msb - lsb + 1)) - 1) << lsb
        elif head in ("Res0", "Raz", "Unkn", "Fields", "Mapping", "Prefix", "EndPrefix"):
            continue
        elif enum is not None and re.fullmatch(r"0b[01]+", head):
            enum.values[int(head, 2)] = words[1]
        else:
            raise SystemExit(f"sysreg line {lineno}: cannot parse {raw!r}")
    return blocks


def _default(reg: str, f: dict) -> int:
    if (reg, f["name"]) in DEFAULT_OVERRIDES:
        return DEFAULT_OVERRIDES[(reg, f["name"])]
    names = {v: k for k, v in f["values"].items()}
    if "NI" in names:
        return int(names["NI"])
    if f["policy"] == "EXACT":
        return f["safe"]
    return 0


def build(sysreg_text: str, sysreg_source: str, policy_path: Path, sysreg_file: str | None = None) -> dict:
    blocks = parse_sysreg(sysreg_text)
    policy = tomllib.loads(policy_path.read_text())
    registers = []
    for name, spec in policy["registers"].items():
        pol = spec.get("policy", {})
        kvm_pol = spec.get("kvm_policy", {})
        signed_extra = set(spec.get("signed", []))
        if "fields" in spec:  # registers the sysreg file does not describe (MIDR, ...)
            encoding = tuple(spec["encoding"])
            raw_fields = [
                SysregField(f["name"], f["shift"] + f["width"] - 1, f["shift"], "Field") for f in spec["fields"]
            ]
            res1 = 0
        else:
            if name not in blocks:
                raise SystemExit(f"{name}: not in the sysreg file")
            block = blocks[name]
            encoding, raw_fields, res1 = block.encoding, list(block.fields), block.res1
        fields = []
        for sf in raw_fields:
            width = sf.msb - sf.lsb + 1
            kp = pol.get(sf.name)
            fields.append(
                {
                    "name": sf.name,
                    "shift": sf.lsb,
                    "width": width,
                    "signed": sf.kind == "SignedEnum" or sf.name in signed_extra,
                    "type": sf.kind,
                    "values": {str(k): v for k, v in sorted(sf.values.items())},
                    "policy": kvm_pol.get(sf.name, kp[0]) if kp else None,
                    "host_policy": kp[0] if kp else None,
                    "safe": kp[1] if kp else None,
                }
            )
        for ps in spec.get("pseudo", []):
            kp = pol[ps["name"]]
            fields.append(
                {
                    "name": ps["name"],
                    "shift": ps["shift"],
                    "width": ps["width"],
                    "signed": False,
                    "type": "Reserved",
                    "values": {},
                    "policy": kp[0],
                    "host_policy": kp[0],
                    "safe": kp[1],
                }
            )
        unknown = set(pol) - {f["name"] for f in fields}
        if unknown:
            raise SystemExit(f"{name}: policy for fields the sysreg file does not define: {sorted(unknown)}")
        for f in fields:
            f["default"] = _default(name, f)
            if f["type"] == "Reserved" and res1 >> f["shift"] & 1:
                f["default"] = 1
        fields.sort(key=lambda f: -f["shift"])
        registers.append(
            {
                "name": name,
                "encoding": list(encoding),
                "kvm": spec["kvm"],
                "aarch32": tuple(encoding[:3]) == (3, 0, 0) and 1 <= encoding[3] <= 3,
                "res1": f"0x{res1:016x}",
                "fields": fields,
            }
        )
    registers.sort(key=lambda r: tuple(r["encoding"]))
    # every system register the kernel names, by its architectural spelling: a migration's
    # register list names registers far beyond the ID registers (TCR2_EL1, PIR_EL1...)
    names = {"S{}_{}_C{}_C{}_{}".format(*b.encoding): b.name for b in sorted(blocks.values(), key=lambda b: b.encoding)}
    return {
        "comment": "Generated by tools/table/generate.py; do not edit by hand.",
        "inputs": {
            "sysreg": {
                **({"file": sysreg_file} if sysreg_file else {}),
                "source": sysreg_source,
                "sha256": hashlib.sha256(sysreg_text.encode()).hexdigest(),
            },
            "policy": {
                "file": "tools/table/kernel-policy.toml",
                "sha256": hashlib.sha256(policy_path.read_bytes()).hexdigest(),
                **policy["meta"],
            },
        },
        "registers": registers,
        "system_register_names": names,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sysreg", type=Path, help="the kernel's arch/arm64/tools/sysreg (default: the committed copy)")
    p.add_argument("--sysreg-source", help="where it came from, e.g. torvalds/linux@<commit>:arch/arm64/tools/sysreg "
                   "(default: the committed copy's origin)")
    p.add_argument("--policy", type=Path, default=Path(__file__).with_name("kernel-policy.toml"))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--check", action="store_true", help="fail if --out differs from what would be generated")
    args = p.parse_args(argv)
    if args.sysreg is None:
        if args.sysreg_source is not None:
            p.error("--sysreg-source describes --sysreg: give both or neither")
        sysreg, source, sysreg_file = inputs.path(SYSREG), inputs.origin(SYSREG), inputs.relative(inputs.path(SYSREG))
    elif args.sysreg_source is None:
        p.error("--sysreg needs --sysreg-source (where the file came from)")
    else:
        sysreg, source, sysreg_file = args.sysreg, args.sysreg_source, None
    text = json.dumps(build(sysreg.read_text(), source, args.policy, sysreg_file), indent=1) + "\n"
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is out of date: rerun tools/table/generate.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
