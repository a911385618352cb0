"""Domain capabilities XML: arm-cpu-filter's CPU section in libvirt's format, on its own or
merged into the document a live libvirt reported.

Standalone document: ``<domain>kvm</domain><arch>aarch64</arch>`` and the four CPU modes in
libvirt's order.  With ``extensions`` (default) the extra data goes into the ``NS`` namespace
(grammar: ``schemas/domaincaps-arm-cpu-filter.rng``): the snapshot the document describes, an
``abstract`` mark on abstract models, and, when the caps carry the detail, per-property rows,
per-field blockers and fixes; without, the document is plain libvirt format.

Merging (``merge``): everything libvirt reported stays, except inside ``<cpu>``: libvirt's
``host-passthrough`` and ``maximum`` modes are kept (libvirt knows the emulator and
accelerator), ``host-model`` is ours (libvirt offers none on aarch64), and ``custom`` lists our
models first, then libvirt's own models that do not share a name with ours, as libvirt gave them.
"""

from __future__ import annotations

from lxml import etree

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.libvirt import NS, PREFIX
from arm_cpu_filter.libvirt.caps import MODES, CpuCaps, blocker_name
from arm_cpu_filter.libvirt.xmlsafe import parse

_E = etree.Element
_SUB = etree.SubElement


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _acf(name: str) -> str:
    return f"{{{NS}}}{name}"


def _host_model(cpu: etree._Element, caps: CpuCaps, extensions: bool) -> None:
    mode = _SUB(cpu, "mode", name="host-model", supported=_yes(caps.host_model is not None))
    if caps.host_model is not None:
        _SUB(mode, "model", fallback="forbid").text = caps.host_model
        vendor = caps.host_model_vendor
        if vendor and vendor != "unknown":
            _SUB(mode, "vendor").text = vendor
        for policy, name in caps.host_model_features:
            _SUB(mode, "feature", policy=policy, name=name)
    if not extensions:
        return
    host = caps.host
    _SUB(mode, _acf("host"), name=host.host, kernel=host.kernel, fingerprint=host.fingerprint)
    if not caps.detail:
        return
    for name, info in caps.properties.items():
        attrs = {"name": name, "type": info["type"], "value": info["value"]}
        if "model" in info:
            attrs["model"] = info["model"]
        attrs["writable"] = _yes(info["writable"])
        attrs["supports"] = ",".join(info["supported"])
        _SUB(mode, _acf("property"), attrs)


def _custom(cpu: etree._Element, caps: CpuCaps, extensions: bool) -> etree._Element:
    mode = _SUB(cpu, "mode", name="custom", supported=_yes(bool(caps.models)))
    for m in caps.models:
        model = _SUB(mode, "model", usable=_yes(m.usable), vendor=m.vendor)
        model.text = m.name
        if m.abstract and extensions:
            model.set(_acf("abstract"), "yes")
        if m.usable:
            continue
        names = m.blocker_names
        if names:
            blockers = _SUB(mode, "blockers", model=m.name)
            for name in names:
                _SUB(blockers, "feature", name=name)
        if not (extensions and caps.detail):
            continue
        for b in m.blockers:
            battrs = {"model": m.name, "name": blocker_name(b)}
            if b.register:
                battrs["register"] = b.register
            if b.field and b.register:
                battrs["field"] = b.field
            battrs.update(requested=b.requested, host=b.host)
            if b.supported:
                battrs["supports"] = ",".join(b.supported)
            battrs["reason"] = b.reason
            _SUB(mode, _acf("blocker"), battrs)
        if m.fix:
            fix = _SUB(mode, _acf("fix"), model=m.name, possible="yes", spec=m.fix_spec or "")
            for prop, value in m.fix.items():
                _SUB(fix, _acf("set"), name=prop, value=value)
        else:
            _SUB(mode, _acf("fix"), model=m.name, possible="no")
    return mode


def cpu_element(caps: CpuCaps, extensions: bool = True) -> etree._Element:
    """``<cpu>`` with the four modes in libvirt's order."""
    cpu = _E("cpu", nsmap={PREFIX: NS} if extensions else None)
    _SUB(cpu, "mode", name=MODES[0], supported="yes").append(_enum_el("hostPassthroughMigratable", ("off",)))
    _SUB(cpu, "mode", name=MODES[1], supported="yes").append(_enum_el("maximumMigratable", ("on", "off")))
    _host_model(cpu, caps, extensions)
    _custom(cpu, caps, extensions)
    return cpu


def _enum_el(name: str, values: tuple[str, ...]) -> etree._Element:
    enum = _E("enum", name=name)
    for v in values:
        _SUB(enum, "value").text = v
    return enum


def _root(extensions: bool) -> etree._Element:
    return _E("domainCapabilities", nsmap={PREFIX: NS} if extensions else None)


def document(caps: CpuCaps, extensions: bool = True) -> etree._Element:
    """A standalone domain capabilities document for the host."""
    root = _root(extensions)
    _SUB(root, "domain").text = "kvm"
    _SUB(root, "arch").text = "aarch64"
    root.append(cpu_element(caps, extensions))
    return root


def _mode(cpu: etree._Element | None, name: str) -> etree._Element | None:
    if cpu is None:
        return None
    return next((m for m in cpu.findall("mode") if m.get("name") == name), None)


def merge(libvirt_xml: str | bytes, caps: CpuCaps, extensions: bool = True,
          what: str = "libvirt domain capabilities") -> etree._Element:
    """libvirt's document with our CPU section merged in (see the module docstring)."""
    theirs = parse(libvirt_xml, what, remove_blank_text=True)
    if theirs.tag != "domainCapabilities":
        raise InputError(f"{what}: root element is <{theirs.tag}>, not <domainCapabilities>")
    arch = theirs.findtext("arch")
    if arch != "aarch64":
        raise InputError(f"{what}: arch is {arch!r}; ARM CPU models apply to aarch64 domains only")
    ours = cpu_element(caps, extensions)
    old = theirs.find("cpu")
    cpu = _E("cpu")
    for name in MODES[:2]:
        mode = _mode(old, name)
        cpu.append(mode if mode is not None else _mode(ours, name))
    cpu.append(_mode(ours, "host-model"))
    custom = _mode(ours, "custom")
    known = {m.text for m in custom.findall("model")}
    theirs_custom = _mode(old, "custom")
    if theirs_custom is not None:
        for el in list(theirs_custom):
            name = el.text if el.tag == "model" else el.get("model") if el.tag == "blockers" else None
            if name not in known:
                custom.append(el)
        if theirs_custom.get("supported") == "yes" or custom.find("model") is not None:
            custom.set("supported", "yes")
    cpu.append(custom)
    root = _root(extensions)
    root.attrib.update(theirs.attrib)
    children = [cpu if child is old else child for child in theirs]
    if old is None:  # libvirt's own place for <cpu>: right after <os> (else last)
        after = next((i for i, c in enumerate(children) if c.tag == "os"), len(children) - 1)
        children.insert(after + 1, cpu)
    root.extend(children)
    return root


def tostring(root: etree._Element) -> str:
    """Pretty-printed text, like ``virsh domcapabilities``."""
    if etree.QName(root).localname == "domainCapabilities":
        etree.cleanup_namespaces(root, top_nsmap={PREFIX: NS} if root.nsmap else None)
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode") + "\n"
