"""Boot lab guests: one (QEMU, -cpu, kernel) per boot, many jobs per boot, two QEMUs at a time.

Usage (repository root): ``python3 -m tools.lab.run [--kernel 6.12] [--host neoverse-n1 ...]``
prints each host's full-feature snapshot (a quick smoke test of the lab).

Each boot gets the cached base initramfs plus an overlay cpio (concatenated; the kernel unpacks
both) holding the whole ``arm_cpu_filter`` package, ``guest.py`` and ``input.json``. Results come
back as ``ACFLAB-RESULT <json>`` lines on the serial console.
"""

from __future__ import annotations

import argparse
import json
import py_compile
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import build, cpio, vmm

PACKAGE = build.REPO / "arm_cpu_filter"
GUEST = Path(__file__).with_name("guest.py")
MAX_PARALLEL = 2  # CI has 2 cores; TCG is CPU-bound


@dataclass(frozen=True)
class Host:
    """An emulated ARM64 host: a QEMU CPU model on a given QEMU."""

    label: str
    qemu: str  # key of manifest["qemu"]
    cpu: str


HOSTS = (
    Host("max", "7.2", "max,pauth-impdef=on"),
    Host("neoverse-n1", "7.2", "neoverse-n1"),
    Host("cortex-a72", "7.2", "cortex-a72"),
    Host("cortex-a76", "7.2", "cortex-a76"),
    Host("a64fx", "7.2", "a64fx"),
    Host("cortex-a57", "7.2", "cortex-a57"),
    Host("neoverse-v1", "10", "neoverse-v1"),
    Host("neoverse-n2", "10", "neoverse-n2"),
    Host("cortex-a710", "10", "cortex-a710"),
)
HOST_BY_LABEL = {h.label: h for h in HOSTS}


@dataclass
class Boot:
    """What one guest boot produced."""

    host: Host
    kernel: str
    results: dict[str, dict] = field(default_factory=dict)
    boot_s: float | None = None  # guest uptime when /init started
    guest_end_s: float | None = None  # guest uptime after the last job
    wall_s: float = 0.0
    kvm_mode: str | None = None
    release: str | None = None
    returncode: int | None = None
    log: str = ""

    def check(self, ids: list[str]) -> None:
        """Every job answered without an exception, or raise with the console tail."""
        missing = [i for i in ids if i not in self.results]
        errors = {i: r["error"] for i, r in self.results.items() if "error" in r}
        if missing or errors:
            raise RuntimeError(
                f"{self.host.label}/{self.kernel}: {len(missing)} jobs unanswered, errors {list(errors.items())[:3]}; "
                f"rc={self.returncode}; console tail:\n{self.log[-3000:]}"
            )


def add_package(root: Path) -> None:
    """``root``/lab/arm_cpu_filter, bytecode precompiled for the 3.11 guest."""
    lab = root / "lab"
    shutil.copytree(PACKAGE, lab / "arm_cpu_filter", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for py in (lab / "arm_cpu_filter").rglob("*.py"):
        guest_path = "/" + str(py.relative_to(root))
        py_compile.compile(
            str(py),
            dfile=guest_path,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )


def _overlay(work: Path, spec: dict) -> Path:
    """/lab/{arm_cpu_filter, guest.py, input.json}."""
    root = work / "overlay"
    add_package(root)
    shutil.copy2(GUEST, root / "lab" / "guest.py")
    (root / "lab" / "input.json").write_text(json.dumps(spec, separators=(",", ":")))
    out = work / "overlay.cpio.gz"
    cpio.write(str(out), cpio.tree_entries(str(root)))
    return out


def qemu_command(manifest: dict, host: Host, kernel: str, initrd: Path) -> list[str]:
    cache = build.cache_dir()
    q = manifest["qemu"][host.qemu]
    binary = q["binary"] if "/" not in q["binary"] else str(cache / q["binary"])
    cmd = [binary]
    if q.get("datadir"):
        cmd += ["-L", str(cache / q["datadir"])]
    return cmd + [
        "-machine", "virt,virtualization=on,gic-version=3",
        "-cpu", host.cpu,
        "-smp", "1",
        "-m", "1024",
        "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(cache / manifest["kernels"][kernel]["image"]),
        "-initrd", str(initrd),
        "-append", "console=ttyAMA0 rdinit=/init loglevel=1",
    ]  # fmt: skip


def boot(host: Host, kernel: str, spec: dict, timeout: float = 300, manifest: dict | None = None) -> Boot:
    """Boot one guest that runs `spec["jobs"]`; bounded by `timeout` seconds of wall time."""
    manifest = vmm.with_extra_kernel(manifest or build.build(), kernel)
    result = Boot(host, kernel)
    with tempfile.TemporaryDirectory(prefix="acf-lab-") as tmp:
        work = Path(tmp)
        initrd = work / "initrd.cpio.gz"
        with open(initrd, "wb") as out:
            for part in (build.cache_dir() / manifest["initramfs"], _overlay(work, spec)):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                qemu_command(manifest, host, kernel, initrd),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
            result.returncode = proc.returncode
            result.log = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            result.returncode = None
            result.log = (e.stdout or b"").decode(errors="replace") + f"\n[timeout after {timeout} s]"
        result.wall_s = round(time.monotonic() - t0, 2)
    _parse(result)
    return result


def _parse(result: Boot) -> None:
    for line in result.log.splitlines():
        line = line.strip("\r")
        tag, _, rest = line.partition(" ")
        if tag == "ACFLAB-RESULT":
            try:
                obj = json.loads(rest)
            except ValueError:  # a garbled console line: its job shows up as unanswered in check()
                continue
            result.results[obj.pop("id")] = obj
        elif tag == "ACFLAB-BOOT":
            uptime, _, result.release = rest.partition(" ")
            result.boot_s = float(uptime)
        elif tag == "ACFLAB-END":
            result.guest_end_s = float(rest)
        elif tag == "ACFLAB-KVM":
            m = re.search(r"(\w+) mode initialized", rest)
            result.kvm_mode = m.group(1) if m else rest


def boot_many(items: list[tuple[Host, str, dict]], timeout: float = 300) -> list[Boot]:
    """Boot (host, kernel, spec) items, at most MAX_PARALLEL at once; results in input order."""
    manifest = build.build()
    workers = min(MAX_PARALLEL, len(items)) or 1
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda it: boot(it[0], it[1], it[2], timeout, manifest), items))


def main() -> None:
    ap = argparse.ArgumentParser(description="boot lab hosts and print their full-feature snapshots")
    ap.add_argument("--kernel", default="6.12", choices=sorted(build.KERNELS))
    ap.add_argument("--host", action="append", choices=sorted(HOST_BY_LABEL))
    args = ap.parse_args()
    hosts = [HOST_BY_LABEL[h] for h in args.host] if args.host else list(HOSTS)
    boots = boot_many([(h, args.kernel, {"jobs": [{"id": "snapshot", "kind": "snapshot", "host": h.label}]}) for h in hosts])
    for b in boots:
        b.check(["snapshot"])
        print(json.dumps({"host": b.host.label, "kvm_mode": b.kvm_mode, "boot_s": b.boot_s,
                          "wall_s": b.wall_s, "snapshot": b.results["snapshot"]["snapshot"]}))  # fmt: skip


if __name__ == "__main__":
    main()
