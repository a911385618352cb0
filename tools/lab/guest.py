"""Runs INSIDE the arm64 lab guest (python3.11-minimal + json): do the jobs of /lab/input.json.

One ``ACFLAB-RESULT <json>`` line per job on the serial console. Probe results are compact:
only registers KVM refused or read back differently are listed ("bad"); every other written
register was accepted and read back as written. Input definitions are shared "bases" plus a
per-job patch, so thousands of mutations stay small.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, "/lab")


def emit(kind: str, obj: object) -> None:
    print(f"ACFLAB-{kind} " + json.dumps(obj, separators=(",", ":")), flush=True)


def definition(job: dict, bases: dict[str, dict[str, int]]) -> dict[str, int]:
    regs = dict(bases[job["base"]]) if "base" in job else {}
    regs.update({name: int(v, 16) for name, v in job.get("set", {}).items()})
    for name in job.get("drop", ()):
        regs.pop(name, None)
    return regs


def run_job(job: dict, bases: dict[str, dict[str, int]]) -> dict:
    from arm_cpu_filter.kvm import device, probe_definition, read_snapshot

    kind = job["kind"]
    if kind == "snapshot":
        snap = read_snapshot(host=job["host"], features=job.get("features"), enable_impl_id_regs=job.get("impl_id"))
        return {"snapshot": snap}
    if kind == "caps":
        fd = device.open_kvm()
        try:
            return {"caps": {str(c): device.check_extension(fd, c) for c in job["caps"]}}
        finally:
            os.close(fd)
    regs = definition(job, bases)
    res = probe_definition(regs, features=job["features"], enable_impl_id_regs=job.get("impl_id", False))
    bad = {
        name: [e["rc"], e["readback"]]
        for name, e in res["registers"].items()
        if e["rc"] != 0 or e["readback"] != f"0x{regs[name]:016x}"
    }
    return {
        "init": res["vcpu_init"],
        "accepted": res["accepted"],
        "realizable": res["realizable"],
        "ms": res["ms"],
        "bad": bad,
    }


def main() -> None:
    t0 = time.monotonic()
    with open("/lab/input.json") as f:
        spec = json.load(f)
    bases = {name: {r: int(v, 16) for r, v in regs.items()} for name, regs in spec.get("bases", {}).items()}
    emit("START", {"jobs": len(spec["jobs"]), "load_s": round(time.monotonic() - t0, 3)})
    for job in spec["jobs"]:
        try:
            out = run_job(job, bases)
        except Exception as e:  # reported per job: one bad job must not hide the others
            out = {"error": f"{type(e).__name__}: {e}"}
        out["id"] = job["id"]
        emit("RESULT", out)
    emit("DONE", {"s": round(time.monotonic() - t0, 3)})


if __name__ == "__main__":
    main()
