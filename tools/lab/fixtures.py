"""Phase A: take every lab host's snapshots through the real reader and save them as fixtures.

Usage (repository root): ``python3 -m tools.lab.fixtures [--kernel 6.12] [--check]``

Writes ``tests/fixtures/lab/<kernel>/<host>.json`` (full-feature HostSnapshot + provenance),
``tests/fixtures/lab/<kernel>/variants/<host>.<variant>.json`` (``nofeatures``: vCPU without
optional features; ``no-impl-id``: VM without KVM_CAP_ARM_WRITABLE_IMP_ID_REGS, 7.3 only) and
``tests/fixtures/lab/writable-masks.json`` (per kernel; the masks are host-independent).
``--kernel 6.1`` (an extra kernel, ``tools.lab.vmm``; recorded only, ``build.RECORDED_KERNELS``)
takes them on 6.1, which has no writable masks (Linux 6.7+).
``--check`` re-takes them and reports differences instead of writing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from arm_cpu_filter.table import load_table

from . import build, run, vmm

FIXTURES = build.REPO / "tests" / "fixtures" / "lab"
CAPS = (70, 93, 102, 126, 165, 170, 171, 172, 205, 230, 239)
#: kernels with KVM_CAP_ARM_WRITABLE_IMP_ID_REGS (6.15+): only there is "no-impl-id" another VM
IMPL_ID_KERNELS = ("7.3",)


def snapshot_jobs(host: run.Host, kernel: str) -> list[dict]:
    """The snapshot jobs of one boot: full, featureless and (7.3) without the impl-id cap."""
    jobs = [
        {"id": "caps", "kind": "caps", "caps": list(CAPS)},
        {"id": "full", "kind": "snapshot", "host": host.label},
        {"id": "nofeatures", "kind": "snapshot", "host": host.label, "features": []},
    ]
    if kernel in IMPL_ID_KERNELS:
        jobs.append({"id": "no-impl-id", "kind": "snapshot", "host": host.label, "impl_id": False})
    return jobs


def provenance(boot: run.Boot, manifest: dict) -> dict:
    q = manifest["qemu"][boot.host.qemu]
    k = manifest["kernels"][boot.kernel]
    return {
        "qemu": q["version"],
        "qemu_package": q["package"],
        "qemu_cpu": boot.host.cpu,
        "qemu_machine": "virt,virtualization=on,gic-version=3",
        "kernel_package": k["package"],
        "kernel_version": k["version"],
        "kvm_mode": boot.kvm_mode,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "read_by": "arm_cpu_filter.kvm.reader",
    }


def path_of(kernel: str, host: str, variant: str = "full") -> Path:
    if variant == "full":
        return FIXTURES / kernel / f"{host}.json"
    return FIXTURES / kernel / "variants" / f"{host}.{variant}.json"


def snapshots_of(boot: run.Boot, manifest: dict) -> dict[str, dict]:
    """variant -> snapshot dict with provenance, from a boot that ran `snapshot_jobs`."""
    out = {}
    for variant, res in boot.results.items():
        if "snapshot" in res:
            out[variant] = {**res["snapshot"], "provenance": provenance(boot, manifest)}
    return out


def strip(snapshot: dict) -> dict:
    """What must be reproducible: everything but the provenance."""
    return {k: v for k, v in snapshot.items() if k != "provenance"}


def masks_by_kernel(kernel: str, snaps: dict[str, dict]) -> dict:
    """The kernel's writable masks, checked to be the same on every host.

    The one host dependence seen: without AArch32 EL0 (ID_AA64PFR0_EL1.EL0 == 1) KVM reports
    mask 0 for the AArch32 ID registers (they are RAZ/WI there); recorded as such.
    """
    table = {r.name: r for r in load_table().registers}
    by_aa32: dict[bool, dict[str, str]] = {}
    for host, snap in snaps.items():
        aa32 = (int(snap["registers"]["ID_AA64PFR0_EL1"], 16) & 0xF) == 2
        masks = snap.get("writable_masks") or {}
        if by_aa32.setdefault(aa32, masks) != masks:
            raise RuntimeError(f"kernel {kernel}: {host} reports other writable masks than its peers")
    full = by_aa32.get(True) or by_aa32[False]
    if False in by_aa32:
        expect = {r: ("0x" + "0" * 16 if table[r].aarch32 else m) for r, m in full.items()}
        if True in by_aa32 and by_aa32[False] != expect:
            raise RuntimeError(f"kernel {kernel}: hosts without AArch32 EL0 differ beyond the AArch32 registers")
    any_snap = next(iter(snaps.values()))
    return {
        "kernel": any_snap["kernel"],
        "writable_masks": full,
        "without_aarch32_el0": "every AArch32 ID register (table aarch32=true) reports mask 0x0",
    }


def take(kernels: list[str], hosts: list[run.Host]) -> tuple[list[run.Boot], dict]:
    manifest = build.build()
    for kernel in kernels:
        manifest = vmm.with_extra_kernel(manifest, kernel)
    items = [(h, k, {"jobs": snapshot_jobs(h, k)}) for k in kernels for h in hosts]
    boots = run.boot_many(items)
    for b, (_, _, spec) in zip(boots, items, strict=True):
        b.check([j["id"] for j in spec["jobs"]])
    return boots, manifest


def write(boots: list[run.Boot], manifest: dict) -> None:
    masks_path = FIXTURES / "writable-masks.json"
    masks = json.loads(masks_path.read_text()) if masks_path.exists() else {}
    full: dict[str, dict[str, dict]] = {}
    for b in boots:
        for variant, snap in snapshots_of(b, manifest).items():
            path = path_of(b.kernel, b.host.label, variant)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(snap, indent=1) + "\n")
            if variant == "full":
                full.setdefault(b.kernel, {})[b.host.label] = snap
    for kernel, snaps in full.items():
        if not any(s.get("writable_masks") for s in snaps.values()):
            continue
        masks[kernel] = masks_by_kernel(kernel, snaps)
        masks[kernel]["kernel_package"] = manifest["kernels"][kernel]["package"]
    masks_path.write_text(json.dumps(dict(sorted(masks.items())), indent=1) + "\n")


def differences(boots: list[run.Boot], manifest: dict) -> list[str]:
    diffs = []
    for b in boots:
        for variant, snap in snapshots_of(b, manifest).items():
            path = path_of(b.kernel, b.host.label, variant)
            if not path.exists():
                diffs.append(f"{path}: missing")
            elif strip(json.loads(path.read_text())) != strip(snap):
                diffs.append(f"{path}: differs from a fresh read")
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description="Phase A: lab host snapshots as fixtures")
    ap.add_argument("--kernel", action="append", choices=sorted([*build.KERNELS, *vmm.EXTRA_KERNELS]))
    ap.add_argument("--host", action="append", choices=sorted(run.HOST_BY_LABEL))
    ap.add_argument("--check", action="store_true", help="compare with the committed fixtures, write nothing")
    args = ap.parse_args()
    hosts = [run.HOST_BY_LABEL[h] for h in args.host] if args.host else list(run.HOSTS)
    t0 = time.monotonic()
    boots, manifest = take(args.kernel or sorted(build.KERNELS), hosts)
    for b in boots:
        caps = b.results["caps"]["caps"]
        print(f"{b.kernel:5} {b.host.label:12} {b.kvm_mode or '?':5} boot {b.boot_s}s guest-end {b.guest_end_s}s "
              f"wall {b.wall_s}s caps {caps}")  # fmt: skip
    print(f"total {time.monotonic() - t0:.1f}s for {len(boots)} boots")
    if args.check:
        diffs = differences(boots, manifest)
        print("\n".join(diffs) or "fixtures reproduced exactly")
        sys.exit(1 if diffs else 0)
    write(boots, manifest)


if __name__ == "__main__":
    main()
