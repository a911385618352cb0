"""Fixtures for the libvirt adapter tests: real host snapshots (the lab's, taken by the
project's KVM reader inside emulated arm64 hosts), libvirt's installed schemas, and a real
libvirt daemon (QEMU session driver) started for the test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from arm_cpu_filter.libvirt import schema
from arm_cpu_filter.snapshot.files import load_snapshot

LAB = Path(__file__).resolve().parents[1] / "fixtures" / "lab"
LAB_HOSTS = sorted(LAB.glob("*/*.json"))


def lab_host(kernel: str, name: str):
    return load_snapshot(LAB / kernel / f"{name}.json")


@pytest.fixture(scope="session", autouse=True)
def installed_libvirt_schema_knows_blockers():
    """The tests validate against libvirt's *installed* schema, which must be >= 10.9."""
    rng = schema.libvirt_schema_dir() / "domaincaps.rng"
    assert rng.is_file(), f"{rng} missing: run tools/bootstrap.sh (installs libvirt from backports)"
    assert "blockers" in rng.read_text(), f"{rng} predates libvirt 10.9 (<blockers>): run tools/bootstrap.sh"


def assert_valid(root) -> None:
    """Valid against the extension grammar, and without our namespace against libvirt's schema."""
    assert schema.errors(schema.extension_schema(), root) == []
    assert schema.errors(schema.libvirt_schema("domaincaps"), schema.strip_extensions(root)) == []


def _libvirtd() -> str:
    path = shutil.which("libvirtd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    assert path, "libvirtd is not installed: run tools/bootstrap.sh"
    return path


@pytest.fixture(scope="session")
def session_uri():
    """A private libvirtd (QEMU session driver) for the test session: unprivileged (as
    'nobody' when the tests run as root: a root libvirtd is always the system instance), own
    XDG directories, own socket; stopped at the end."""
    base = Path(tempfile.mkdtemp(prefix="acf-libvirtd-"))
    cmd = [_libvirtd(), "--timeout", "600"]
    if os.geteuid() == 0:
        shutil.chown(base, "nobody", "nogroup")
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base), "LC_ALL": "C",
           **{f"XDG_{k}_HOME": str(base / k.lower()) for k in ("CONFIG", "CACHE", "DATA")},
           "XDG_RUNTIME_DIR": str(base / "run")}
    sock = base / "run" / "libvirt" / "libvirt-sock"
    log = open(base.with_suffix(".log"), "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=base)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"libvirtd did not start: {base.with_suffix('.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"qemu:///session?socket={sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)
        base.with_suffix(".log").unlink(missing_ok=True)
