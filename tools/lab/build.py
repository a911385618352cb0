"""Build (once, cached) everything the real-KVM lab boots: kernels, initramfs, QEMU 10.

Usage (repository root): ``python3 -m tools.lab.build [--refresh]``

Artefacts live in ``${ARM_CPU_FILTER_LAB_CACHE:-<repo>/.cache/lab}`` and ``manifest.json`` there
records the exact package versions. arm64 .debs come from a PRIVATE apt state (no dpkg
--add-architecture, no edit of /etc/apt) whose archive URIs are read at run time from this
machine's own apt sources. Nothing arm64 runs on the host: packages are only unpacked.
Host QEMU 7.2 is the distribution's ``qemu-system-arm`` (installed if missing, needs root);
QEMU 10 is the bookworm-backports build, unpacked (not installed) into the cache.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import cpio

REPO = Path(__file__).resolve().parents[2]
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

#: kernel label -> (suite of the cloud-flavour metapackage, expected upstream prefix)
KERNELS = {"6.12": "bookworm-backports", "7.3": "trixie-backports"}
#: kernels measured once (fetched as ``tools.lab.vmm.EXTRA_KERNELS``) whose fixtures and probe corpus
#: are committed: the recorded replays check them offline, the live lab (CI) boots only KERNELS
RECORDED_KERNELS = ("6.1",)
GUEST_SUITES = ("bookworm", "bookworm-backports", "trixie-backports")
USERLAND = ("busybox-static", "python3.11-minimal", "libpython3.11-minimal", "libc6", "zlib1g", "libexpat1")
#: python3.11-minimal lacks json and dataclasses (the register table needs both), tomllib and
#: shutil (the engine's data files and tempfile need them, for the in-guest engine timing); only
#: these pure-Python modules are taken from libpython3.11-stdlib, not the whole package.
STDLIB_EXTRAS = ("json", "dataclasses.py", "tomllib", "shutil.py")
QEMU10_PACKAGES = ("qemu-system-arm", "qemu-system-common", "qemu-system-data")

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "ACFLAB-BOOT $(cut -d' ' -f1 /proc/uptime) $(uname -r)"
dmesg | grep -E 'kvm \\[[0-9]+\\]: .*initialized' | sed 's/^/ACFLAB-KVM /'
[ -f /lab/guest.py ] && python3 -S /lab/guest.py
echo "ACFLAB-END $(cut -d' ' -f1 /proc/uptime)"
poweroff -f
"""


def recipe() -> str:
    """Digest of what the cached artefacts are built from: a change rebuilds the cache."""
    text = json.dumps([KERNELS, GUEST_SUITES, USERLAND, STDLIB_EXTRAS, QEMU10_PACKAGES, INIT])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("ARM_CPU_FILTER_LAB_CACHE") or REPO / ".cache" / "lab")


def log(msg: str) -> None:
    print(f"[lab-build] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: object) -> str:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout  # type: ignore[call-overload]


def archive_uris() -> tuple[str, str]:
    """(main, security) archive URIs taken from this machine's apt sources (never hard-coded)."""
    text = ""
    for path in ["/etc/apt/sources.list", *glob.glob("/etc/apt/sources.list.d/*")]:
        try:
            text += Path(path).read_text() + "\n"
        except OSError:
            continue
    main = re.findall(r"https?://\S+/debian(?=\s|$)", text, re.M)
    sec = re.findall(r"https?://\S+/debian-security(?=\s|$)", text, re.M)
    if not main:
        raise SystemExit("no Debian archive URI found in /etc/apt sources; set up apt first")
    return main[0], (sec[0] if sec else "")


class PrivateApt:
    """apt-get/apt-cache over a private state dir: own lists, sources and cache; no root needed."""

    def __init__(self, root: Path, arch: str, lines: list[str]) -> None:
        self.root = root
        for sub in ("lists/partial", "cache/archives/partial", "etc"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "etc/sources.list").write_text("\n".join(lines) + "\n")
        self.opts = [
            f"-oDir::State::lists={root}/lists",
            f"-oDir::Etc::sourcelist={root}/etc/sources.list",
            "-oDir::Etc::sourceparts=-",
            f"-oDir::Cache={root}/cache",
            f"-oAPT::Architecture={arch}",
            f"-oAPT::Architectures::={arch}",
            "-oDebug::NoLocking=1",
            "-oDir::State::status=/dev/null",
            "-oAPT::Sandbox::User=root",
        ]

    def update(self) -> None:
        run(["apt-get", *self.opts, "-qq", "update"])

    def depends(self, pkg: str) -> list[str]:
        out = run(["apt-cache", *self.opts, "depends", pkg])
        return re.findall(r"^\s+\|?Depends: (\S+)", out, re.M)

    def download(self, pkgs: list[str], dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        run(["apt-get", *self.opts, "-qq", "download", *pkgs], cwd=dest)


def deb_field(deb: Path, field: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), field]).strip()


def one(pattern: str) -> Path:
    hits = sorted(glob.glob(pattern))
    if len(hits) != 1:
        raise SystemExit(f"expected exactly one file for {pattern}, found {hits}")
    return Path(hits[0])


def fetch_kernel(apt: PrivateApt, label: str, suite: str, debs: Path, out: Path) -> dict:
    """Kernel Image + config of the cloud flavour in `suite` (7.x: Image in linux-binary-<abi>)."""
    image_pkg = os.environ.get(f"ARM_CPU_FILTER_LAB_KPKG_{label.replace('.', '_')}") or next(
        d for d in apt.depends(f"linux-image-cloud-arm64/{suite}") if d.startswith("linux-image-")
    )
    abi = image_pkg.removeprefix("linux-image-")
    if not abi.startswith(label + "."):
        raise SystemExit(f"{suite} now ships {image_pkg}, not a {label} kernel: set ARM_CPU_FILTER_LAB_KPKG_*")
    pkgs = [image_pkg]
    deps = apt.depends(image_pkg)
    pkgs += [d for d in deps if d.startswith(("linux-binary-", "linux-base-")) and d.endswith(abi)]
    kdebs = debs / label
    apt.download([f"{p}/{suite}" for p in pkgs], kdebs)
    tree = out / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    for deb in sorted(kdebs.glob("*.deb")):
        run(
            [
                "sh",
                "-c",
                f"dpkg-deb --fsys-tarfile '{deb}' | tar -x -C '{tree}' --wildcards './boot/*' "
                f"'./usr/lib/modules/*/vmlinuz' './usr/lib/modules/*/config' 2>/dev/null || true",
            ]
        )
    images = glob.glob(f"{tree}/boot/vmlinuz-*") + glob.glob(f"{tree}/usr/lib/modules/*/vmlinuz")
    configs = glob.glob(f"{tree}/boot/config-*") + glob.glob(f"{tree}/usr/lib/modules/*/config")
    if len(images) != 1 or len(configs) != 1:
        raise SystemExit(f"kernel {image_pkg}: found images {images} and configs {configs}")
    config = Path(configs[0]).read_text()
    for opt in ("CONFIG_KVM=y", "CONFIG_DEVTMPFS=y", "CONFIG_SERIAL_AMBA_PL011_CONSOLE=y"):
        if f"\n{opt}\n" not in config:
            raise SystemExit(f"kernel {image_pkg} lacks {opt}: the lab needs it built in")
    shutil.move(images[0], out / "Image")
    shutil.move(configs[0], out / "config")
    shutil.rmtree(tree)
    versions = {deb_field(d, "Package"): deb_field(d, "Version") for d in sorted(kdebs.glob("*.deb"))}
    return {
        "package": image_pkg,
        "version": versions[image_pkg],
        "release": abi,
        "suite": suite,
        "packages": versions,
        "image": str((out / "Image").relative_to(cache_dir())),
    }


def build_initramfs(debs: Path, stdlib_deb: Path, out: Path) -> None:
    """busybox + python3.11-minimal + libc, /init that runs /lab/guest.py; .pyc precompiled."""
    root = out.parent / "initrd-root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for deb in sorted(debs.glob("*.deb")):
        run(["dpkg-deb", "-x", str(deb), str(root)])
    extra = out.parent / "stdlib-root"
    shutil.rmtree(extra, ignore_errors=True)
    run(["dpkg-deb", "-x", str(stdlib_deb), str(extra)])
    for name in STDLIB_EXTRAS:
        src = extra / "usr/lib/python3.11" / name
        dst = root / "usr/lib/python3.11" / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    shutil.rmtree(extra)
    for junk in ("usr/lib/aarch64-linux-gnu/gconv", "usr/share/doc", "usr/share/man", "usr/share/lintian"):
        shutil.rmtree(root / junk, ignore_errors=True)
    for d in ("proc", "sys", "dev", "tmp", "lab"):
        (root / d).mkdir(exist_ok=True)
    (root / "usr/bin/python3").symlink_to("python3.11")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    # Same bytecode magic for every 3.11.x: compile here so the TCG guest does not (saves ~1 s/boot).
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "-j0",
            "--invalidation-mode",
            "unchecked-hash",
            str(root / "usr/lib/python3.11"),
        ],
        check=False,
    )
    cpio.write(str(out), cpio.tree_entries(str(root)))
    shutil.rmtree(root)


def host_qemu72(cache: Path) -> dict:
    """The distribution's QEMU (7.2 on bookworm); installed with apt if missing."""
    if not shutil.which("qemu-system-aarch64"):
        if os.geteuid() != 0:
            raise SystemExit("qemu-system-aarch64 missing: apt-get install --no-install-recommends qemu-system-arm")
        log("installing qemu-system-arm (host QEMU 7.2)")
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "qemu-system-arm"], check=True, capture_output=True
        )
    version = run(["qemu-system-aarch64", "--version"]).splitlines()[0]
    pkg = run(["dpkg-query", "-W", "-f=${Version}", "qemu-system-arm"]).strip()
    return {"binary": "qemu-system-aarch64", "version": version, "package": f"qemu-system-arm={pkg}", "datadir": None}


def fetch_qemu10(cache: Path, main_uri: str) -> dict:
    """bookworm-backports QEMU 10 unpacked with dpkg-deb -x (not installed), run from the cache."""
    arch = run(["dpkg", "--print-architecture"]).strip()
    line = f"deb [arch={arch} signed-by={KEYRING}] {main_uri} bookworm-backports main"
    apt = PrivateApt(cache / "apt-host", arch, [line])
    apt.update()
    debs = cache / "debs" / "qemu10"
    shutil.rmtree(debs, ignore_errors=True)
    apt.download([f"{p}/bookworm-backports" for p in QEMU10_PACKAGES], debs)
    root = cache / "qemu10" / "root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for deb in sorted(debs.glob("*.deb")):
        run(["dpkg-deb", "-x", str(deb), str(root)])
    binary = root / "usr/bin/qemu-system-aarch64"
    missing = [ln for ln in run(["ldd", str(binary)]).splitlines() if "not found" in ln]
    if missing:
        raise SystemExit(f"QEMU 10 needs host libraries that are missing: {missing}")
    version = run([str(binary), "--version"]).splitlines()[0]
    pkg = deb_field(one(f"{debs}/qemu-system-arm_*.deb"), "Version")
    return {
        "binary": str(binary.relative_to(cache)),
        "version": version,
        "package": f"qemu-system-arm={pkg}",
        "datadir": str((root / "usr/share/qemu").relative_to(cache)),
    }


def build(refresh: bool = False) -> dict:
    """Build whatever is missing; returns the manifest (fast no-op when everything is cached)."""
    cache = cache_dir()
    manifest_path = cache / "manifest.json"
    if manifest_path.exists() and not refresh:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("recipe") == recipe() and all((cache / p).exists() for p in manifest["files"]):
            return manifest
    t0 = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    main_uri, sec_uri = archive_uris()
    lines = [f"deb [arch=arm64 signed-by={KEYRING}] {main_uri} {s} main" for s in GUEST_SUITES]
    if sec_uri:
        lines.append(f"deb [arch=arm64 signed-by={KEYRING}] {sec_uri} bookworm-security main")
    apt = PrivateApt(cache / "apt-arm64", "arm64", lines)
    log("apt-get update (private arm64 state)")
    apt.update()
    kernels = {}
    for label, suite in KERNELS.items():
        log(f"kernel {label} from {suite}")
        shutil.rmtree(cache / "debs" / label, ignore_errors=True)
        kernels[label] = fetch_kernel(apt, label, suite, cache / "debs", cache / "kernels" / label)
    log("userland .debs + initramfs")
    udebs = cache / "debs" / "userland"
    shutil.rmtree(udebs, ignore_errors=True)
    apt.download(list(USERLAND), udebs)
    sdebs = cache / "debs" / "stdlib"
    shutil.rmtree(sdebs, ignore_errors=True)
    apt.download(["libpython3.11-stdlib"], sdebs)
    stdlib_deb = one(f"{sdebs}/*.deb")
    build_initramfs(udebs, stdlib_deb, cache / "initrd.cpio.gz")
    userland = {deb_field(d, "Package"): deb_field(d, "Version") for d in sorted(udebs.glob("*.deb"))}
    userland[f"libpython3.11-stdlib ({', '.join(STDLIB_EXTRAS)} only)"] = deb_field(stdlib_deb, "Version")
    log("host QEMU 7.2 and QEMU 10")
    qemus = {"7.2": host_qemu72(cache), "10": fetch_qemu10(cache, main_uri)}
    manifest = {
        "recipe": recipe(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.monotonic() - t0, 1),
        "kernels": kernels,
        "userland": userland,
        "initramfs": "initrd.cpio.gz",
        "qemu": qemus,
        "files": [k["image"] for k in kernels.values()] + ["initrd.cpio.gz", qemus["10"]["binary"]],
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"done in {manifest['build_seconds']} s: {manifest_path}")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refresh", action="store_true", help="re-resolve and re-fetch everything")
    args = ap.parse_args()
    print(json.dumps(build(args.refresh), indent=2))


if __name__ == "__main__":
    main()
