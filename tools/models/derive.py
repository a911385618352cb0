#!/usr/bin/env python3
"""Draft the ``[properties]`` deltas of a model file: the properties whose value differs
between a parent model's realization and a target register set (a reviewer's aid; the model
files are the reviewed data, this only shows how a draft was computed).

    python tools/models/derive.py PARENT TARGET.json [--source ID] [--only REG,...]

TARGET.json: {"registers": {"NAME": "0x..."}} (a HostSnapshot/definition or a reference dump).
Fields of registers absent from the target are left alone; gated (sve/pauth/pmu) fields too
when the target shows them all zero (a vCPU without the feature).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from arm_cpu_filter.models.realization import base  # noqa: E402
from arm_cpu_filter.properties import properties  # noqa: E402
from arm_cpu_filter.snapshot import has_aarch32_el0  # noqa: E402
from arm_cpu_filter.table import load_table  # noqa: E402

#: Never drafted from a target: CLIDR_EL1 is derived from CTR_EL0 at realization (as KVM does);
#: EL2/EL3 stay 0 in every model (kvm-base-v1 explains why).
SKIP = {"ID_AA64PFR0_EL1.EL2", "ID_AA64PFR0_EL1.EL3"}
SKIP_REGISTERS = {"CLIDR_EL1"}


def deltas(parent: str | None, target: dict[str, int], only: set[str] | None = None) -> dict[str, str]:
    table, props = load_table(), properties()
    regs = dict(base(parent).regs) if parent else {r.name: r.default for r in table.registers}
    out: dict[str, str] = {}
    aarch32 = has_aarch32_el0({**regs, **target})
    whole = {p.fields[0].register: p for p in props if p.fields[0].width == 64}
    for reg in table.registers:
        if reg.aarch32 and not aarch32:
            continue
        if reg.name in whole and reg.name in target and target[reg.name] != regs[reg.name]:
            out[whole[reg.name].name] = whole[reg.name].format((target[reg.name],))
        if reg.name not in target or (only and reg.name not in only) or reg.kvm == "absent":
            continue
        if reg.name in SKIP_REGISTERS:
            continue
        for f in reg.fields:
            prop = props.by_field.get(f.qualname)
            if f.type == "Reserved" or prop is None or prop.name in out or f.qualname in SKIP:
                continue
            want = tuple(fl.extract(target.get(fl.register, regs[fl.register])) for fl in prop.fields)
            have = prop.extract(regs)
            if want != have:
                out[prop.name] = prop.format(want)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("parent")
    ap.add_argument("target")
    ap.add_argument("--source", default="src")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    data = json.loads(Path(a.target).read_text())
    target = {load_table().register(k).name: int(v, 16) for k, v in data["registers"].items() if load_table().get(k)}
    d = deltas(None if a.parent == "-" else a.parent, target, set(a.only.split(",")) - {""} or None)
    print("[properties]")
    for k, v in d.items():
        print(f'{k} = "{v}"')
    print("\n[provenance]")
    for k in d:
        print(f'{k} = "{a.source}"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
