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


#: an unprivileged user and the group /dev/kvm is handed to for the "nonroot" job (no
#: /etc/group in the guest: numbers are what matter to the kernel)
AGENT_UID, KVM_GID = 1000, 36


def timing(job: dict) -> dict:
    """The issue's two speed figures, measured inside the emulated host: a whole snapshot read
    (the ioctls of the agent), and the engine's check of a definition against asking KVM by
    trial (scratch VM + vCPU + writes + read-backs) for the same definition."""
    from arm_cpu_filter.engine import accepts
    from arm_cpu_filter.engine.check import clear_caches
    from arm_cpu_filter.kvm import probe_definition, read_snapshot
    from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot

    reads = []
    for _ in range(job.get("reads", 5)):
        t = time.perf_counter()
        snap = read_snapshot(host=job["host"])
        reads.append(round((time.perf_counter() - t) * 1e3, 2))
    out: dict = {"snapshot_read_ms": reads, "definitions": {}}
    impl_id = bool(snap["capabilities"]["writable_impl_id_regs"])
    for d in job["definitions"].values():  # load the table and rules once, as a long-lived process has
        accepts(CpuDefinition.from_dict(d), HostSnapshot.from_dict(snap))
    for name, d in job["definitions"].items():
        definition = CpuDefinition.from_dict(d)
        colds = []
        for _ in range(3):  # median of 3 first checks, as for the trial: one sample is at the mercy of the scheduler
            host = HostSnapshot.from_dict(snap)
            clear_caches()  # the first check on a host never seen: the definition's registers against the host's
            t = time.perf_counter()
            verdict = accepts(definition, host)
            colds.append((time.perf_counter() - t) * 1e6)
        cold_us = sorted(colds)[1]
        t = time.perf_counter()
        if accepts(definition, host) != verdict:  # the second check compiles the host and packs the definition
            raise AssertionError(f"{name}: the compiled host disagrees with the first check")
        second_us = (time.perf_counter() - t) * 1e6
        n = 200
        t = time.perf_counter()
        for _ in range(n):
            accepts(definition, host)
        warm_us = (time.perf_counter() - t) / n * 1e6
        regs = {r: int(v, 16) for r, v in d["registers"].items()}
        trials = [probe_definition(regs, features=d["vcpu_features"], enable_impl_id_regs=impl_id) for _ in range(3)]
        out["definitions"][name] = {
            "engine_usable": verdict,
            "engine_cold_us": round(cold_us, 1),
            "engine_second_us": round(second_us, 1),
            "engine_warm_us": round(warm_us, 1),
            "kvm_realizable": trials[0]["realizable"],
            "trial_ms": sorted(t["ms"] for t in trials)[1],  # median of 3 (no statistics module here)
        }
    return out


def as_user(groups: list[int], host: str) -> dict:
    """Read a snapshot in a child running as AGENT_UID with supplementary `groups`."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root for good, then do what the agent does with /dev/kvm
        os.close(r)
        try:
            from arm_cpu_filter.kvm import read_snapshot

            os.setgroups(groups)
            os.setgid(AGENT_UID)
            os.setuid(AGENT_UID)
            snap = read_snapshot(host=host)
            out = {"uid": os.getuid(), "groups": os.getgroups(), "registers": snap["registers"],
                   "writable_masks": snap.get("writable_masks")}  # fmt: skip
        except Exception as e:  # reported to the parent, which compares with what it expects
            out = {"uid": os.getuid(), "error": f"{type(e).__name__}: {e}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def nonroot(job: dict) -> dict:
    """The agent's least privilege: /dev/kvm as root:kvm 0660 (what udev sets up on Debian);
    an unprivileged user reads the same snapshot when in that group, and gets the documented
    error when not."""
    os.chown("/dev/kvm", 0, KVM_GID)
    os.chmod("/dev/kvm", 0o660)
    return {"kvm_group": as_user([KVM_GID], job["host"]), "no_group": as_user([], job["host"])}


def run_job(job: dict, bases: dict[str, dict[str, int]]) -> dict:
    from arm_cpu_filter.kvm import device, probe_definition, read_snapshot

    kind = job["kind"]
    if kind == "timing":
        return timing(job)
    if kind == "nonroot":
        return nonroot(job)
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
