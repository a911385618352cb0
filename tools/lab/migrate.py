"""Real QEMU migrations between emulated lab hosts: save on one (host, kernel), restore on others.

Usage (repository root)::

    python3 -m tools.lab.migrate smoke [--host max] [--kernel 7.3]
    python3 -m tools.lab.migrate matrix [--host H ...] [--kernel K ...] [--out DIR]
    python3 -m tools.lab.migrate features [--host H ...] [--kernel K ...] [--out DIR]

Each boot is one emulated host (``tools.lab.run``'s QEMU command, 2 GiB, plus a virtio serial
port) with three concatenated initramfs parts: the lab's base image, the arm64 QEMU of
``tools.lab.vmm``, and an overlay with ``migrguest.py`` (as ``/lab/guest.py``), the jobs and the
streams to restore. Streams saved in a boot come back as a tar written to the serial port (on
6.1, whose virtio console is a module, base64 on the console).
A matrix is two rounds of boots: every source saves every VM CPU variant (and reports its
KVM facts), then every destination restores every stream, with ``-cpu host`` and with the
source's own ``-cpu`` string. Results go to ``<out>/results.json`` (streams in ``<out>/streams``).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import build, cpio, run, vmm

GUEST = Path(__file__).with_name("migrguest.py")
VMCPU = Path(__file__).with_name("vmcpu.py")
MEMORY_MB = "2048"

#: VM CPU variants every source saves (label -> QEMU -cpu string)
VARIANTS = {
    "host": "host",
    "sve-pauth-off": "host,sve=off,pauth=off",
    "pmu-off": "host,pmu=off",
    "sve128": "host,sve128=on",
}


@dataclass
class MigBoot:
    """What one emulated host's boot produced."""

    host: str
    kernel: str
    results: dict[str, dict] = field(default_factory=dict)
    streams: dict[str, bytes] = field(default_factory=dict)
    boot_s: float | None = None
    guest_s: float | None = None
    wall_s: float = 0.0
    returncode: int | None = None
    log: str = ""


def _overlay(work: Path, jobs: list[dict], streams: dict[str, bytes]) -> Path:
    """/lab/{guest.py, input.json, streams/*.mig}, and for the ``migrate`` job (the engine's
    verdicts and timing) the project's package and ``vmcpu.py``."""
    root = work / "overlay"
    run.add_package(root)
    lab = root / "lab"
    shutil.copy2(GUEST, lab / "guest.py")
    shutil.copy2(VMCPU, lab / "vmcpu.py")
    (lab / "input.json").write_text(json.dumps({"jobs": jobs}))
    (lab / "streams").mkdir()
    for name, data in sorted(streams.items()):
        (lab / "streams" / f"{name}.mig").write_bytes(data)
    out = work / "overlay.cpio.gz"
    cpio.write(str(out), cpio.tree_entries(str(root)))
    return out


def qemu_command(manifest: dict, host: run.Host, kernel: str, initrd: Path, port_file: Path) -> list[str]:
    """The lab's boot command with more memory (the VMM and its VM live in RAM) and a serial port out."""
    cmd = run.qemu_command(manifest, host, kernel, initrd)
    cmd[cmd.index("-m") + 1] = MEMORY_MB
    return cmd + [
        "-device", "virtio-serial-pci",
        "-chardev", f"file,id=out,path={port_file}",
        "-device", "virtserialport,chardev=out,name=out",
    ]  # fmt: skip


def boot(host: run.Host, kernel: str, jobs: list[dict], streams: dict[str, bytes], timeout: float = 1200) -> MigBoot:
    """Boot `host` on `kernel`, run `jobs` with `streams` available; bounded by `timeout` s."""
    manifest = vmm.with_extra_kernel(build.build(), kernel)
    vmm_cpio = vmm.cache_dir() / vmm.build_vmm()["cpio"]
    result = MigBoot(host.label, kernel)
    with tempfile.TemporaryDirectory(prefix="acf-migr-") as tmp:
        work = Path(tmp)
        initrd = work / "initrd.cpio.gz"
        with open(initrd, "wb") as out:
            for part in (build.cache_dir() / manifest["initramfs"], vmm_cpio, _overlay(work, jobs, streams)):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        port_file = work / "port.tar"
        t0 = time.monotonic()
        cmd = qemu_command(manifest, host, kernel, initrd, port_file)
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
            result.returncode = proc.returncode
            result.log = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            result.log = (e.stdout or b"").decode(errors="replace") + f"\n[timeout after {timeout} s]"
        result.wall_s = round(time.monotonic() - t0, 2)
        if port_file.exists() and port_file.stat().st_size:
            with tarfile.open(fileobj=io.BytesIO(port_file.read_bytes())) as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.name.endswith(".mig"):
                        name = Path(member.name).name.removesuffix(".mig")
                        result.streams[name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    _parse(result)
    return result


def _parse(result: MigBoot) -> None:
    console_streams: dict[str, list[str]] = {}
    for line in result.log.splitlines():
        tag, _, rest = line.strip("\r").partition(" ")
        if tag == "ACFLAB-STREAM":  # kernels without a built-in virtio console
            name, _, chunk = rest.partition(" ")
            console_streams.setdefault(name.removesuffix(".mig"), []).append(chunk)
        elif tag == "ACFLAB-RESULT":
            try:
                obj = json.loads(rest)
            except ValueError:
                continue
            result.results[obj.pop("id")] = obj
        elif tag == "ACFLAB-BOOT":
            result.boot_s = float(rest.partition(" ")[0])
        elif tag == "ACFLAB-DONE":
            result.guest_s = json.loads(rest)["s"]
    for name, chunks in console_streams.items():
        result.streams.setdefault(name, zlib.decompress(base64.b64decode("".join(chunks))))


def stream_name(host: str, kernel: str, variant: str) -> str:
    return f"{host}@{kernel}@{variant}"


def source_jobs(host: str, kernel: str, variants: dict[str, str]) -> list[dict]:
    jobs: list[dict] = [{"id": "facts", "kind": "facts"}]
    for label, cpu in variants.items():
        jobs.append({"id": f"save:{label}", "kind": "save", "cpu": cpu, "stream": stream_name(host, kernel, label)})
    return jobs


def destination_jobs(streams: dict[str, str]) -> list[dict]:
    """Restore each stream (name -> source -cpu string) with -cpu host and with the source's string."""
    jobs = []
    for name, cpu in sorted(streams.items()):
        for dest_cpu in dict.fromkeys(["host", cpu]):
            jobs.append({"id": f"load:{name}:{dest_cpu}", "kind": "load", "cpu": dest_cpu, "stream": name})
    return jobs


def boot_all(items: list[tuple[run.Host, str, list[dict], dict[str, bytes]]]) -> list[MigBoot]:
    with ThreadPoolExecutor(min(run.MAX_PARALLEL, len(items)) or 1) as pool:
        return list(pool.map(lambda it: boot(*it), items))


def _summary(b: MigBoot) -> dict:
    return {"host": b.host, "kernel": b.kernel, "rc": b.returncode, "boot_s": b.boot_s, "guest_s": b.guest_s,
            "wall_s": b.wall_s, "jobs": len(b.results)}  # fmt: skip


def smoke(host: run.Host, kernel: str) -> dict:
    """Save each variant and restore it on the same host in one boot (streams read from /out)."""
    jobs = source_jobs(host.label, kernel, VARIANTS)
    for label, cpu in VARIANTS.items():
        name = stream_name(host.label, kernel, label)
        jobs.append({"id": f"load:{name}:{cpu}", "kind": "load", "cpu": cpu, "stream": name})
    b = boot(host, kernel, jobs, {})
    return {"boot": _summary(b), "results": b.results, "streams": {k: len(v) for k, v in b.streams.items()},
            "log_tail": b.log[-2500:] if not b.results else ""}  # fmt: skip


def features(hosts: list[run.Host], kernels: list[str], out: Path) -> dict:
    """One boot per (host, kernel): save every variant, restore every stream with every variant's
    -cpu string (the VM's vCPU features against the destination's, kernel and CPU unchanged)."""
    items = []
    for h, k in [(h, k) for h in hosts for k in kernels]:
        jobs = source_jobs(h.label, k, VARIANTS)
        for label in VARIANTS:
            name = stream_name(h.label, k, label)
            jobs += [{"id": f"load:{name}:{cpu}", "kind": "load", "cpu": cpu, "stream": name} for cpu in VARIANTS.values()]
        items.append((h, k, jobs, {}))
    t0 = time.monotonic()
    boots = boot_all(items)
    (out / "streams").mkdir(parents=True, exist_ok=True)
    for b in boots:
        for name, data in b.streams.items():
            (out / "streams" / f"{name}.mig").write_bytes(data)
    report = {
        "rounds_s": {"save+restore": round(time.monotonic() - t0, 1)},
        "sources": [{**_summary(b), "results": {k: v for k, v in b.results.items() if not k.startswith("load:")},
                     "stream_bytes": {k: len(v) for k, v in b.streams.items()}} for b in boots],
        "destinations": [{**_summary(b), "results": {k: v for k, v in b.results.items() if k.startswith("load:")}}
                         for b in boots],
        "logs_tail": {f"{b.host}@{b.kernel}": b.log[-2000:] for b in boots if b.returncode != 0},
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def matrix(hosts: list[run.Host], kernels: list[str], out: Path) -> dict:
    pairs = [(h, k) for h in hosts for k in kernels]
    t0 = time.monotonic()
    sources = boot_all([(h, k, source_jobs(h.label, k, VARIANTS), {}) for h, k in pairs])
    streams: dict[str, bytes] = {}
    cpus: dict[str, str] = {}
    for b in sources:
        for name, data in b.streams.items():
            streams[name] = data
            cpus[name] = VARIANTS[name.rsplit("@", 1)[1]]
    (out / "streams").mkdir(parents=True, exist_ok=True)
    for name, data in streams.items():
        (out / "streams" / f"{name}.mig").write_bytes(data)
    t1 = time.monotonic()
    dests = boot_all([(h, k, destination_jobs(cpus), streams) for h, k in pairs])
    report = {
        "rounds_s": {"save": round(t1 - t0, 1), "restore": round(time.monotonic() - t1, 1)},
        "sources": [{**_summary(b), "results": b.results, "stream_bytes": {k: len(v) for k, v in b.streams.items()}}
                    for b in sources],
        "destinations": [{**_summary(b), "results": b.results} for b in dests],
        "logs_tail": {f"{b.host}@{b.kernel}": b.log[-2000:] for b in sources + dests if b.returncode != 0},
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("smoke", "matrix", "features"))
    ap.add_argument("--host", action="append", choices=sorted(run.HOST_BY_LABEL))
    ap.add_argument("--kernel", action="append", choices=sorted([*build.KERNELS, *vmm.EXTRA_KERNELS]))
    ap.add_argument("--out", type=Path, default=vmm.cache_dir() / "matrix")
    args = ap.parse_args()
    hosts = [run.HOST_BY_LABEL[h] for h in (args.host or ["max"])]
    kernels = args.kernel or ["7.3"]
    if args.mode == "smoke":
        print(json.dumps(smoke(hosts[0], kernels[0]), indent=1))
    else:
        report = (matrix if args.mode == "matrix" else features)(hosts, kernels, args.out)
        print(json.dumps(report["rounds_s"]), args.out / "results.json")


if __name__ == "__main__":
    main()
