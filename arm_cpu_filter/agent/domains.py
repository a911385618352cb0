"""Running libvirt domains that are Nova instances, with their CPU mode (libvirt-python).

Nova's libvirt driver names the domain UUID after the instance and adds an
``<instance>`` element in its metadata namespace (``http://openstack.org/xmlns/libvirt/nova/1.x``),
which is how Nova instances are told apart from other domains.
"""

from __future__ import annotations

from dataclasses import dataclass

from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.extras import require
from arm_cpu_filter.libvirt.xmlsafe import parse

NOVA_NS_PREFIX = "http://openstack.org/xmlns/libvirt/nova/1."
PASSTHROUGH = "host-passthrough"


@dataclass(frozen=True)
class Domain:
    name: str
    uuid: str
    #: the Nova instance uuid, None when the domain has no Nova metadata
    instance: str | None
    #: ``<cpu mode=...>`` (None when the domain has no <cpu> element)
    cpu_mode: str | None


def parse_domain(xml: str) -> Domain:
    """The parts of a domain the agent needs; ``InputError`` (hardened parser) for bad XML."""
    root = parse(xml, "libvirt domain XML")
    name = root.findtext("name") or "?"
    uuid = (root.findtext("uuid") or "").strip()
    metadata = root.find("metadata")
    nova = metadata is not None and any(
        isinstance(child.tag, str) and child.tag.startswith("{" + NOVA_NS_PREFIX) and child.tag.endswith("}instance")
        for child in metadata
    )
    cpu = root.find("cpu")
    mode = cpu.get("mode", "custom") if cpu is not None else None
    return Domain(name, uuid, uuid if nova and uuid else None, mode)


def list_domains(uri: str) -> list[Domain]:
    """Active domains of the libvirt connection ``uri`` (read-only connection)."""
    libvirt = require("libvirt", "listing libvirt domains")
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        raise ArmCpuFilterError(f"libvirt {uri}: {exc.get_error_message()}") from None
    try:
        out = []
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                out.append(parse_domain(dom.XMLDesc(0)))
            except libvirt.libvirtError:  # the domain went away while we listed
                continue
        return sorted(out, key=lambda d: d.name)
    except libvirt.libvirtError as exc:
        raise ArmCpuFilterError(f"libvirt {uri}: {exc.get_error_message()}") from None
    finally:
        conn.close()
