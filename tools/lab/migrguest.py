"""Runs INSIDE an emulated lab host (python3.11-minimal): migration jobs of /lab/input.json.

Shipped as ``/lab/guest.py`` by ``tools.lab.migrate`` (the base initramfs's ``/init`` runs that
file), next to the arm64 QEMU of ``tools.lab.vmm``. Job kinds:

* ``facts``: what the migration engine needs from this host+kernel, read with raw ioctls
  (stdlib only): KVM_GET_REG_LIST per vCPU feature set, IPA size, SVE vector
  lengths (KVM_REG_ARM64_SVE_VLS before finalize), PMCR_EL0.N and whether it can be lowered,
  the page size;
* ``save``: start ``qemu-system-aarch64 -accel kvm -cpu <cpu> -S`` (paused, no firmware), QMP
  on stdio, ``migrate`` to ``file:/out/<stream>.mig``;
* ``exec``: run a command and report its time and output (cost experiments);
* ``load``: start QEMU with ``-incoming defer`` and ``migrate-incoming`` from
  ``/lab/streams/<stream>.mig``; records whether the state loaded and QEMU's error text;
* ``migrate``: the project's ``engine.migrate`` verdict on given restores (snapshots in the job,
  ``-cpu`` strings mapped by ``/lab/vmcpu.py``), timed cold and warm (the one job that imports
  the project, shipped in /lab).

One ``ACFLAB-RESULT <json>`` line per job on the console; the saved streams leave the guest as a
tar on the virtio serial port named ``out`` (the host side is a plain file), or base64 on the
console when the kernel has no built-in virtio console.
"""

from __future__ import annotations

import array
import binascii
import errno
import fcntl
import glob
import json
import os
import select
import struct
import subprocess
import time
import zlib

QEMU = "/usr/bin/qemu-system-aarch64"
STREAMS_IN = "/lab/streams"
STREAMS_OUT = "/out"

# ---- raw KVM ioctls (include/uapi/linux/kvm.h, arch/arm64/include/uapi/asm/kvm.h) ----
KVM_CREATE_VM, KVM_CHECK_EXTENSION, KVM_CREATE_VCPU = 0xAE01, 0xAE03, 0xAE41
KVM_GET_ONE_REG, KVM_SET_ONE_REG = 0x4010AEAB, 0x4010AEAC
KVM_ARM_VCPU_INIT, KVM_ARM_PREFERRED_TARGET = 0x4020AEAE, 0x8020AEAF
KVM_GET_REG_LIST, KVM_ARM_VCPU_FINALIZE = 0xC008AEB0, 0x4004AEC2
CAP_ARM_PMU_V3, CAP_ARM_VM_IPA_SIZE, CAP_ARM_SVE = 126, 165, 170
CAP_ARM_PTRAUTH_ADDRESS, CAP_ARM_PTRAUTH_GENERIC = 171, 172
VCPU_PSCI_0_2, VCPU_PMU_V3, VCPU_SVE, VCPU_PTRAUTH_A, VCPU_PTRAUTH_G = 2, 3, 4, 5, 6
SVE_VLS = 0x606000000015FFFF  # KVM_REG_ARM64 | KVM_REG_SIZE_U512 | KVM_REG_ARM64_SVE | 0xffff
PMCR_EL0 = 0x6030000000130000 | 3 << 14 | 3 << 11 | 9 << 7 | 12 << 3 | 0


def emit(kind: str, obj: object) -> None:
    print(f"ACFLAB-{kind} " + json.dumps(obj, separators=(",", ":")), flush=True)


def get_reg(vcpu: int, reg_id: int, words: int = 1) -> list[int]:
    buf = array.array("Q", [0] * words)
    fcntl.ioctl(vcpu, KVM_GET_ONE_REG, struct.pack("<QQ", reg_id, buf.buffer_info()[0]))
    return list(buf)


def set_reg(vcpu: int, reg_id: int, words: list[int]) -> None:
    buf = array.array("Q", words)
    fcntl.ioctl(vcpu, KVM_SET_ONE_REG, struct.pack("<QQ", reg_id, buf.buffer_info()[0]))


def reg_list(vcpu: int) -> list[int]:
    probe = bytearray(8)
    try:
        fcntl.ioctl(vcpu, KVM_GET_REG_LIST, probe, True)
    except OSError as e:
        if e.errno != errno.E2BIG:
            raise
    n = struct.unpack_from("<Q", probe)[0]
    buf = bytearray(struct.pack("<Q", n) + bytes(8 * n))
    fcntl.ioctl(vcpu, KVM_GET_REG_LIST, buf, True)
    return list(struct.unpack_from(f"<{n}Q", buf, 8))


def new_vcpu(kvm: int, features: int, finalize: bool = True) -> tuple[int, int]:
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    init = bytearray(32)
    fcntl.ioctl(vm, KVM_ARM_PREFERRED_TARGET, init, True)
    target = struct.unpack_from("<I", init)[0]
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    fcntl.ioctl(vcpu, KVM_ARM_VCPU_INIT, struct.pack("<8I", target, features, 0, 0, 0, 0, 0, 0))
    if finalize and features & (1 << VCPU_SVE):
        fcntl.ioctl(vcpu, KVM_ARM_VCPU_FINALIZE, struct.pack("<i", VCPU_SVE))
    return vm, vcpu


def facts() -> dict:
    kvm = os.open("/dev/kvm", os.O_RDWR)
    caps = {name: fcntl.ioctl(kvm, KVM_CHECK_EXTENSION, c) for name, c in (
        ("pmu_v3", CAP_ARM_PMU_V3), ("vm_ipa_size", CAP_ARM_VM_IPA_SIZE), ("sve", CAP_ARM_SVE),
        ("ptrauth_address", CAP_ARM_PTRAUTH_ADDRESS), ("ptrauth_generic", CAP_ARM_PTRAUTH_GENERIC))}  # fmt: skip
    feature_sets = {"psci": 1 << VCPU_PSCI_0_2}
    full = 1 << VCPU_PSCI_0_2
    if caps["pmu_v3"]:
        full |= 1 << VCPU_PMU_V3
        feature_sets["psci+pmu"] = full
    if caps["sve"]:
        full |= 1 << VCPU_SVE
    if caps["ptrauth_address"] and caps["ptrauth_generic"]:
        full |= 1 << VCPU_PTRAUTH_A | 1 << VCPU_PTRAUTH_G
    feature_sets["full"] = full
    out: dict = {"caps": caps, "page_size": os.sysconf("SC_PAGESIZE"), "reg_lists": {}}
    for name, bits in feature_sets.items():
        _vm, vcpu = new_vcpu(kvm, bits)
        out["reg_lists"][name] = [f"{r:016x}" for r in reg_list(vcpu)]
    if caps["sve"]:
        _vm, vcpu = new_vcpu(kvm, full, finalize=False)
        words = get_reg(vcpu, SVE_VLS, 8)
        vls = [128 * (q + 1) for q in range(512) if words[q // 64] >> (q % 64) & 1]
        out["sve_vector_lengths"] = vls
    if caps["pmu_v3"]:
        _vm, vcpu = new_vcpu(kvm, (1 << VCPU_PSCI_0_2) | (1 << VCPU_PMU_V3))
        pmcr = get_reg(vcpu, PMCR_EL0)[0]
        n = (pmcr >> 11) & 0x1F
        out["pmcr_el0"] = f"0x{pmcr:x}"
        out["pmcr_n"] = n
        if n:
            lowered = pmcr & ~(0x1F << 11) | (n - 1) << 11
            try:
                set_reg(vcpu, PMCR_EL0, [lowered])
                out["pmcr_lowered_readback_n"] = (get_reg(vcpu, PMCR_EL0)[0] >> 11) & 0x1F
            except OSError as e:
                out["pmcr_lowered_error"] = errno.errorcode.get(e.errno, str(e.errno))
    return out


# ---- QEMU driven over QMP on stdio ----
class Qemu:
    """One qemu-system-aarch64 process with QMP on its stdin/stdout; stderr kept for errors."""

    def __init__(self, cpu: str, extra: list[str]) -> None:
        self.cmd = [QEMU, "-accel", "kvm", "-machine", "virt,gic-version=3", "-cpu", cpu, "-m", "32M",
                    "-nodefaults", "-display", "none", "-S", "-qmp", "stdio", *extra]  # fmt: skip
        self.errfile = open("/tmp/qemu.err", "w+")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errfile)
        self.buf = b""
        self.greeting = self._read(timeout=60)

    def ready(self) -> bool:
        """Greeting seen and capabilities negotiated: QEMU answers only once the machine is built."""
        return self.greeting is not None and self.command("qmp_capabilities") is not None

    def _read(self, timeout: float) -> dict | None:
        """Next QMP message that is not an event; None on EOF or timeout."""
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                msg = json.loads(line)
                if "event" not in msg:
                    return msg
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buf += chunk

    def command(self, execute: str, timeout: float = 60, **arguments: object) -> dict | None:
        msg: dict = {"execute": execute}
        if arguments:
            msg["arguments"] = arguments
        try:
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return None
        return self._read(timeout)

    def wait_migration(self, timeout: float = 120) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.command("query-migrate")
            if r is None:
                return {"status": "qemu-exited"}
            status = r.get("return", {}).get("status")
            if status in ("completed", "failed", "cancelled"):
                return r["return"]
            time.sleep(0.02)
        return {"status": "timeout"}

    def stop(self) -> dict:
        t0 = time.monotonic()
        self.command("quit", timeout=10)
        t1 = time.monotonic()
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.errfile.seek(0)
        err = [ln for ln in self.errfile.read().splitlines() if ln.strip()]
        self.errfile.close()
        return {"rc": rc, "stderr": err[-12:], "quit_s": round(t1 - t0, 3), "exit_s": round(time.monotonic() - t1, 3)}


def save(job: dict) -> dict:
    os.makedirs(STREAMS_OUT, exist_ok=True)
    path = f"{STREAMS_OUT}/{job['stream']}.mig"
    t0 = time.monotonic()
    q = Qemu(job["cpu"], job.get("qemu_args", []))
    out: dict = {"start_s": round(time.monotonic() - t0, 3)}
    if not q.ready():
        out.update(ok=False, phase="start", **q.stop())
        return out
    out["init_s"] = round(time.monotonic() - t0 - out["start_s"], 3)
    t1 = time.monotonic()
    r = q.command("migrate", uri=f"file:{path}")
    res = q.wait_migration() if r is not None and "return" in r else {"status": "refused", "qmp": r}
    out["save_s"] = round(time.monotonic() - t1, 3)
    out["status"] = res.get("status")
    if "error-desc" in res:
        out["error"] = res["error-desc"]
    out.update(q.stop())
    out["ok"] = out["status"] == "completed" and os.path.exists(path)
    if os.path.exists(path):
        out["bytes"] = os.path.getsize(path)
    return out


def load(job: dict) -> dict:
    path = f"{STREAMS_IN}/{job['stream']}.mig"
    if not os.path.exists(path):  # saved earlier in this boot
        path = f"{STREAMS_OUT}/{job['stream']}.mig"
    t0 = time.monotonic()
    q = Qemu(job["cpu"], ["-incoming", "defer", *job.get("qemu_args", [])])
    out: dict = {"start_s": round(time.monotonic() - t0, 3)}
    if not q.ready():
        out.update(ok=False, phase="start", **q.stop())
        return out
    out["init_s"] = round(time.monotonic() - t0 - out["start_s"], 3)
    t1 = time.monotonic()
    r = q.command("migrate-incoming", uri=f"file:{path}", **{"exit-on-error": False})
    res = q.wait_migration() if r is not None and "return" in r else {"status": "refused", "qmp": r}
    out["load_s"] = round(time.monotonic() - t1, 3)
    out["status"] = res.get("status")
    if "qmp" in res:
        out["qmp"] = res["qmp"]
    if "error-desc" in res:
        out["error"] = res["error-desc"]
    if out["status"] == "completed":
        st = q.command("query-status")
        out["vm_status"] = (st or {}).get("return", {}).get("status")
    out.update(q.stop())
    out["ok"] = out["status"] == "completed"
    out["phase"] = "load"
    return out


def ship_streams() -> dict:
    """Write /out as a tar to the virtio serial port "out" (the host reads a plain file); kernels
    without a built-in virtio console (6.1 cloud) print them zlib'd and base64'd on the console."""
    if not os.path.isdir(STREAMS_OUT):
        return {"shipped": False}
    ports = [p for p in glob.glob("/sys/class/virtio-ports/*/name") if open(p).read().strip() == "out"]
    if ports:
        dev = "/dev/" + ports[0].split("/")[-2]
        rc = subprocess.run(["tar", "-cf", dev, "-C", STREAMS_OUT, "."]).returncode
        return {"shipped": rc == 0, "device": dev, "files": sorted(os.listdir(STREAMS_OUT))}
    for name in sorted(os.listdir(STREAMS_OUT)):
        with open(f"{STREAMS_OUT}/{name}", "rb") as f:
            text = binascii.b2a_base64(zlib.compress(f.read(), 6), newline=False).decode()
        for i in range(0, len(text), 1024):
            print(f"ACFLAB-STREAM {name} {text[i : i + 1024]}", flush=True)
    return {"shipped": True, "device": "console", "files": sorted(os.listdir(STREAMS_OUT))}


def execute(job: dict) -> dict:
    """Run one command (cost experiments, e.g. ``qemu-system-aarch64 --version``): time and output tail."""
    t0 = time.monotonic()
    p = subprocess.run(job["argv"], capture_output=True, text=True, timeout=job.get("timeout", 120))
    return {"rc": p.returncode, "s": round(time.monotonic() - t0, 3), "out": (p.stdout + p.stderr)[-2000:]}


def engine(job: dict) -> dict:
    """The engine's ``migrate()`` for each restore of the job, timed in this emulated host: the
    first call on a destination never seen (fresh snapshot objects, engine caches cleared) and
    warm (the same objects again, mean of ``repeat`` calls). Imports the project (shipped with
    ``vmcpu.py`` in /lab) only here: the other jobs stay stdlib-only."""
    from vmcpu import destination_vmm_of, vm_of

    from arm_cpu_filter.engine.check import clear_caches
    from arm_cpu_filter.engine.migrate import migrate
    from arm_cpu_filter.snapshot import HostSnapshot

    snaps = job["snapshots"]
    first = job["restores"][0]  # load the table and rules once, as a long-lived agent has
    migrate(vm_of(first["cpu"], HostSnapshot.from_dict(snaps[first["source"]])), HostSnapshot.from_dict(snaps[first["dest"]]))
    out = {}
    for r in job["restores"]:
        clear_caches()
        t0 = time.perf_counter()
        src, dest = HostSnapshot.from_dict(snaps[r["source"]]), HostSnapshot.from_dict(snaps[r["dest"]])
        vm = vm_of(r["cpu"], src)
        try:
            vmm = destination_vmm_of(r["dest_cpu"], dest)
        except ValueError as e:  # QEMU would not start that destination
            out[r["id"]] = {"refused": str(e)}
            continue
        t1 = time.perf_counter()
        result = migrate(vm, dest, vmm=vmm)
        cold = time.perf_counter() - t1
        n = job.get("repeat", 50)
        t2 = time.perf_counter()
        for _ in range(n):
            migrate(vm, dest, vmm=vmm)
        warm = (time.perf_counter() - t2) / n
        out[r["id"]] = {"ok": result.ok, "kinds": sorted({b.kind for b in result.blockers}),
                        "snapshots_ms": round((t1 - t0) * 1e3, 2), "cold_us": round(cold * 1e6, 1),
                        "warm_us": round(warm * 1e6, 1)}  # fmt: skip
    return {"verdicts": out}


KINDS = {"facts": lambda job: facts(), "save": save, "load": load, "exec": execute, "migrate": engine}


def main() -> None:
    t0 = time.monotonic()
    with open("/lab/input.json") as f:
        spec = json.load(f)
    emit("START", {"jobs": len(spec["jobs"])})
    for job in spec["jobs"]:
        t = time.monotonic()
        try:
            out = KINDS[job["kind"]](job)
        except Exception as e:  # reported per job: one bad job must not hide the others
            out = {"error": f"{type(e).__name__}: {e}", "ok": False}
        out["id"] = job["id"]
        out["job_s"] = round(time.monotonic() - t, 3)
        emit("RESULT", out)
    emit("SHIP", ship_streams())
    emit("DONE", {"s": round(time.monotonic() - t0, 3)})


if __name__ == "__main__":
    main()
