"""Build (once, cached) an arm64 QEMU userland that runs as the VMM inside the emulated hosts.

Usage (repository root): ``python3 -m tools.lab.vmm [--refresh]`` (also fetches the extra
kernels, ``EXTRA_KERNELS``, once)

The migration experiments (``tools.lab.migrate``) start a real ``qemu-system-aarch64 -accel kvm``
inside each emulated host. That QEMU is Debian's arm64 ``qemu-system-arm`` from
bookworm-backports (10.0.x), resolved with its whole ``--no-install-recommends`` dependency
closure through the same PRIVATE apt state recipe as ``tools.lab.build`` (own lists, no dpkg
--add-architecture, archive URIs read from this machine's apt sources), unpacked with ``dpkg-deb
-x`` and pruned to the QEMU binary plus the shared libraries it links (the DT_NEEDED closure):
no firmware, docs, locales, maintainer tools. The result is an uncompressed newc cpio that is
concatenated onto the lab's base initramfs (the cloud kernels have virtio-blk only as a module,
so a disk image would need module loading; the initramfs needs nothing).

Artefacts live in ``${ARM_CPU_FILTER_MIGRLAB_CACHE:-<repo>/.cache/migrlab}``; ``vmm.json`` there
records the package versions, sizes and build time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import time
from pathlib import Path

from . import build, cpio

SUITES = ("bookworm", "bookworm-backports")
TARGET_SUITE = "bookworm-backports"  # qemu-system-arm 10.0.x needs its -common/-data from there too
PACKAGE = "qemu-system-arm"
BINARY = "usr/bin/qemu-system-aarch64"
LIB_DIRS = ("lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib", "usr/lib")
LOADER = "lib/ld-linux-aarch64.so.1"


def cache_dir() -> Path:
    return Path(os.environ.get("ARM_CPU_FILTER_MIGRLAB_CACHE") or build.REPO / ".cache" / "migrlab")


def recipe() -> str:
    """Digest of what the VMM cpio is built from: a change rebuilds it."""
    text = json.dumps([SUITES, TARGET_SUITE, PACKAGE, BINARY, LIB_DIRS, LOADER])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def private_apt(cache: Path) -> build.PrivateApt:
    main_uri, sec_uri = build.archive_uris()
    lines = [f"deb [arch=arm64 signed-by={build.KEYRING}] {main_uri} {s} main" for s in SUITES]
    if sec_uri:
        lines.append(f"deb [arch=arm64 signed-by={build.KEYRING}] {sec_uri} bookworm-security main")
    return build.PrivateApt(cache / "apt-arm64", "arm64", lines)


def closure(apt: build.PrivateApt) -> list[str]:
    """``name=version`` of every package apt would install on an empty arm64 system."""
    out = build.run(
        ["apt-get", *apt.opts, "--print-uris", "-qq", "-t", TARGET_SUITE,
         "install", "--no-install-recommends", PACKAGE]
    )  # fmt: skip
    pins = []
    for line in out.splitlines():
        filename = line.split()[1]
        name, version, _arch = filename.removesuffix(".deb").split("_")
        pins.append(f"{name}={version.replace('%3a', ':')}")
    if not pins:
        raise SystemExit(f"apt resolved no packages for {PACKAGE}")
    return pins


def needed(elf: bytes) -> list[str]:
    """DT_NEEDED names of a little-endian ELF64 file (no binutils needed on the host)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return []
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return []

    def file_offset(vaddr: int) -> int:
        for v, off, size in loads:
            if v <= vaddr < v + size:
                return off + vaddr - v
        raise ValueError(f"address {vaddr:#x} outside every PT_LOAD")

    entries = [struct.unpack_from("<qQ", elf, dynamic[0] + i) for i in range(0, dynamic[1], 16)]
    strtab = file_offset(next(v for tag, v in entries if tag == 5))  # DT_STRTAB
    names = []
    for tag, value in entries:
        if tag == 1:  # DT_NEEDED
            start = strtab + value
            names.append(elf[start : elf.index(b"\0", start)].decode())
    return names


def find_lib(root: Path, name: str) -> Path:
    for d in LIB_DIRS:
        if (root / d / name).exists():
            return Path(d) / name
    raise SystemExit(f"{name} (needed by {BINARY}) is in no unpacked package")


def keep_set(root: Path) -> list[Path]:
    """The binary, the loader and every library reachable through DT_NEEDED (symlinks kept too)."""
    keep: list[Path] = [Path(BINARY), Path(LOADER)]
    todo = [Path(BINARY)]
    seen: set[str] = set()
    while todo:
        data = (root / todo.pop()).resolve().read_bytes()
        for name in needed(data):
            if name in seen:
                continue
            seen.add(name)
            rel = find_lib(root, name)
            keep.append(rel)
            target = (root / rel).resolve().relative_to(root.resolve())
            keep.append(target)
            todo.append(target)
    return sorted(set(keep))


def pack(root: Path, keep: list[Path], out: Path) -> int:
    """Uncompressed cpio of `keep` (with parent directories); returns its size in bytes."""
    dirs = sorted({str(p) for k in keep for p in k.parents if str(p) != "."})
    entries: list[cpio.Entry] = [(d, 0o040755, b"") for d in dirs]
    for rel in keep:
        path = root / rel
        if path.is_symlink():
            entries.append((str(rel), 0o120777, os.readlink(path).encode()))
        else:
            entries.append((str(rel), 0o100755, path.read_bytes()))
    cpio.write(str(out), entries, level=0)
    return out.stat().st_size


#: kernels the base lab does not build (label -> metapackage in SUITES / bookworm-security)
EXTRA_KERNELS = {"6.1": "linux-image-cloud-arm64"}


def extra_kernel(label: str) -> Path:
    """Image of a kernel the base lab does not build (6.1: bookworm), fetched into this cache once."""
    out = cache_dir() / "kernels" / label
    image = out / "Image"
    if image.exists():
        return image
    apt = private_apt(cache_dir())
    apt.update()
    pkg = next(d for d in apt.depends(EXTRA_KERNELS[label]) if d.startswith("linux-image-"))
    debs = cache_dir() / "debs-kernel" / label
    shutil.rmtree(debs, ignore_errors=True)
    apt.download([pkg], debs)
    tree = out / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    deb = build.one(f"{debs}/*.deb")
    build.run(["sh", "-c", f"dpkg-deb --fsys-tarfile '{deb}' | tar -x -C '{tree}' --wildcards './boot/*'"])
    config = build.one(f"{tree}/boot/config-*")
    if "\nCONFIG_KVM=y\n" not in config.read_text():
        raise SystemExit(f"{pkg} lacks CONFIG_KVM=y")
    shutil.move(config, out / "config")
    shutil.move(build.one(f"{tree}/boot/vmlinuz-*"), image)
    shutil.rmtree(tree)
    (out / "package").write_text(f"{pkg}={build.deb_field(deb, 'Version')}\n")
    return image


def with_extra_kernel(manifest: dict, label: str) -> dict:
    """The lab manifest, plus ``label`` when it is an extra kernel (fetched once; its image path is
    absolute, which ``cache / image`` keeps as it is)."""
    if label in manifest["kernels"]:
        return manifest
    image = extra_kernel(label)
    package = (image.parent / "package").read_text().strip()
    entry = {"image": str(image), "package": package.split("=")[0], "version": package.split("=", 1)[1]}
    return {**manifest, "kernels": {**manifest["kernels"], label: entry}}


def build_vmm(refresh: bool = False) -> dict:
    """Build the VMM cpio if missing or stale; returns its manifest."""
    cache = cache_dir()
    manifest_path = cache / "vmm.json"
    if manifest_path.exists() and not refresh:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("recipe") == recipe() and (cache / manifest["cpio"]).exists():
            return manifest
    t0 = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    apt = private_apt(cache)
    build.log("apt-get update (private arm64 state for the VMM)")
    apt.update()
    pins = closure(apt)
    debs = cache / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    build.log(f"downloading {len(pins)} packages")
    apt.download(pins, debs)
    t_fetch = time.monotonic() - t0
    root = cache / "root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    for deb in sorted(debs.glob("*.deb")):
        build.run(["dpkg-deb", "-x", str(deb), str(root)])
    unpacked = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    keep = keep_set(root)
    size = pack(root, keep, cache / "vmm.cpio")
    kept = sum((root / k).stat().st_size for k in keep if not (root / k).is_symlink())
    version = next(p.split("=", 1)[1] for p in pins if p.startswith(f"{PACKAGE}="))
    shutil.rmtree(root)
    manifest = {
        "recipe": recipe(),
        "package": f"{PACKAGE}={version}",
        "packages": pins,
        "debs_bytes": sum(d.stat().st_size for d in debs.glob("*.deb")),
        "unpacked_bytes": unpacked,
        "kept_files": [str(k) for k in keep],
        "kept_bytes": kept,
        "cpio": "vmm.cpio",
        "cpio_bytes": size,
        "fetch_seconds": round(t_fetch, 1),
        "build_seconds": round(time.monotonic() - t0, 1),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    build.log(f"VMM cpio {size / 1e6:.1f} MB in {manifest['build_seconds']} s: {cache / 'vmm.cpio'}")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refresh", action="store_true", help="re-resolve and re-fetch everything")
    args = ap.parse_args()
    m = build_vmm(args.refresh)
    for label in EXTRA_KERNELS:
        build.log(f"extra kernel {label}: {extra_kernel(label)}")
    print(json.dumps({k: v for k, v in m.items() if k not in ("packages", "kept_files")}, indent=2))
    print(f"{len(m['packages'])} packages, {len(m['kept_files'])} files kept")


if __name__ == "__main__":
    main()
