"""libvirt adapter: domain capabilities XML (``virsh domcapabilities`` style) for a host
snapshot and the named models, merged with a live libvirt's if asked; guest ``<cpu>`` XML;
hardened XML reading (``xmlsafe``).

What libvirt's format has no element for (per-property values, accepted values, fixes) goes
into elements of the ``NS`` namespace, described by ``schemas/domaincaps-arm-cpu-filter.rng``.
"""

from __future__ import annotations

#: arm-cpu-filter's XML namespace for domain capabilities extensions (an identifier, not a URL
#: anything fetches).  Version 1.0: changes that break readers get a new URI.
NS = "http://arm-cpu-filter.openstack.org/xmlns/domcaps/1.0"
PREFIX = "acf"


def domain_capabilities(host, models=None, *, extensions: bool = True, libvirt_xml: str | bytes | None = None,
                        what: str = "libvirt domain capabilities", detail: bool = False,
                        abstract: bool = False) -> str:
    """The domain capabilities document of ``host`` (a HostSnapshot) for ``models`` (name ->
    CpuDefinition; default: the catalog), merged into ``libvirt_xml`` when given.  ``detail``
    and ``abstract`` as in ``caps.cpu_caps``."""
    from arm_cpu_filter.libvirt.caps import cpu_caps
    from arm_cpu_filter.libvirt.domcaps import document, merge, tostring

    caps = cpu_caps(host, models, detail=detail, abstract=abstract)
    root = document(caps, extensions) if libvirt_xml is None else merge(libvirt_xml, caps, extensions, what)
    return tostring(root)
