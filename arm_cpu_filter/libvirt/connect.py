"""Reading a live libvirt's domain capabilities through libvirt-python (``--connect URI``)."""

from __future__ import annotations

from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.extras import require


class LibvirtError(ArmCpuFilterError):
    """The libvirt connection or call failed."""


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt's default handler prints every error to stderr; ours are raised instead."""


def get_domain_capabilities(uri: str, *, arch: str = "aarch64", virttype: str | None = "kvm",
                            machine: str | None = None, emulator: str | None = None) -> str:
    """``virConnectGetDomainCapabilities`` on ``uri`` as XML text (the call needs a read-write connection)."""
    libvirt = require("libvirt", "--connect")
    libvirt.registerErrorHandler(_quiet, None)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"libvirt {uri}: cannot connect: {_message(exc)}") from None
    try:
        return conn.getDomainCapabilities(emulator, arch, machine, virttype, 0)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"libvirt {uri}: getDomainCapabilities: {_message(exc)}") from None
    finally:
        conn.close()


def _message(exc: Exception) -> str:
    text = getattr(exc, "get_error_message", lambda: None)() or str(exc)
    return " ".join(text.split())
