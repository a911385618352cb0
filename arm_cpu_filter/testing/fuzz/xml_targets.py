"""Fuzz targets for the XML inputs: guest ``<cpu>`` XML (``libvirt.guest.guest_cpu_spec``, then
realized), a libvirt's domain capabilities merged with ours (``libvirt.domcaps.merge``: what
``domcapabilities --connect URI`` / ``--merge FILE`` do with libvirt's document) and the libvirt
domain XML the agent reads (``agent.domains.parse_domain``).  Seeds are real documents: libvirt's
own output (``seeds/``, libvirt's test driver when libvirt-python is there) and ours."""

from __future__ import annotations

import dataclasses
import random
from copy import deepcopy
from pathlib import Path
from typing import Any

from arm_cpu_filter.testing.fuzz import Target
from arm_cpu_filter.testing.fuzz.mutate import HUGE, number, text

SEEDS = Path(__file__).with_name("seeds")
XINCLUDE = "http://www.w3.org/2001/XInclude"
XML_TOKENS = (b"<", b">", b"</", b"/>", b"&", b"&amp;", b"&#0;", b"&#x10FFFF;", b"&lol;", b"<!--", b"-->",
              b"<![CDATA[", b"]]>", b"<?xml version='1.0'?>", b"<?pi x?>", b"<!DOCTYPE d [<!ENTITY e 'x'>]>",
              b"<!ENTITY e SYSTEM 'file:///etc/hostname'>", b'xmlns="urn:x"', b"xmlns:a='urn:a'", b"a:",
              b"<xi:include xmlns:xi='http://www.w3.org/2001/XInclude' href='file:///etc/hostname' parse='text'/>",
              b"'", b'"', b"=", b" ", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"<cpu>", b"<model>", b"<feature ",
              b"mode='custom'", b"name='", b"policy='", b"<domainCapabilities>", b"</cpu>")
GUEST_WORDS = ("cpu", "model", "feature", "domain", "vendor", "topology", "mode", "match", "policy", "name",
               "fallback", "check", "custom", "host-passthrough", "host-model", "maximum", "exact", "minimum",
               "strict", "require", "force", "disable", "forbid", "optional", "allow")
DOMCAPS_WORDS = ("domainCapabilities", "domain", "arch", "aarch64", "x86_64", "cpu", "mode", "name", "supported",
                 "yes", "no", "host-passthrough", "maximum", "host-model", "custom", "model", "usable", "vendor",
                 "unknown", "blockers", "feature", "enum", "value", "os", "devices", "features", "deprecated")
DOMAIN_WORDS = ("domain", "name", "uuid", "metadata", "cpu", "mode", "instance", "host-passthrough", "custom",
                "host-model", "6f1c4e3a-93a5-4d0b-8a52-5b0f7a1d2c33", "http://openstack.org/xmlns/libvirt/nova/1.1",
                "http://openstack.org/xmlns/libvirt/nova/2.0")

NOVA_DOMAIN = """<domain type='kvm'>
  <name>instance-0000002a</name>
  <uuid>6f1c4e3a-93a5-4d0b-8a52-5b0f7a1d2c33</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="29.0.0"/>
      <nova:name>vm1</nova:name>
      <nova:flavor name="m1.small"><nova:memory>2048</nova:memory><nova:vcpus>1</nova:vcpus></nova:flavor>
    </nova:instance>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='aarch64' machine='virt'>hvm</type></os>
  <features><acpi/><gic version='3'/></features>
  {cpu}
  <devices><console type='pty'/></devices>
</domain>"""


def _xml_compatible(s: str) -> bool:
    return all(c in "\t\n\r" or " " <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c > "\uffff" for c in s)


def _safe_text(rng: random.Random, words: tuple[str, ...]) -> str:
    """Strange text lxml accepts through its API (the byte mutations bring in the rest)."""
    s = text(rng, words)
    return s if _xml_compatible(s) else rng.choice(words)


def mutate_tree(data: bytes, rng: random.Random, words: tuple[str, ...]) -> bytes:
    """``data`` (a trusted seed document) with 1-4 tree edits -- elements dropped, duplicated,
    moved, renamed, deeply nested; attributes and text changed, comments, CDATA, namespaces and
    XInclude added -- serialized in one of several encodings."""
    from lxml import etree

    root = etree.fromstring(data)
    for _ in range(rng.randint(1, 4)):
        els = [e for e in root.iter() if isinstance(e.tag, str)]
        el = rng.choice(els)
        parent = el.getparent()
        op = rng.randrange(12)
        try:
            if op == 0 and parent is not None:
                parent.remove(el)
            elif op == 1 and parent is not None:
                parent.insert(parent.index(el) + 1, deepcopy(el))
            elif op == 2:
                el.tag = rng.choice(words) if rng.random() < 0.7 else rng.choice(("x", "{urn:x}cpu", "a-b.c", "_"))
            elif op == 3:
                name = rng.choice(list(el.attrib) or ["name"]) if rng.random() < 0.6 else rng.choice(words)
                el.set(name, _safe_text(rng, words) if rng.random() < 0.7 else str(number(rng)))
            elif op == 4 and el.attrib:
                del el.attrib[rng.choice(list(el.attrib))]
            elif op == 5:
                el.text = _safe_text(rng, words) if rng.random() < 0.98 else "x" * HUGE
            elif op == 6:
                etree.SubElement(el, rng.choice(words), {rng.choice(words): rng.choice(words)}).text = rng.choice(words)
            elif op == 7:
                choice = rng.randrange(3)
                if choice == 0:
                    el.append(etree.Comment(" " + rng.choice(words) + " "))
                elif choice == 1:
                    el.append(etree.ProcessingInstruction("pi", rng.choice(words)))
                else:
                    el.text = etree.CDATA(rng.choice(words))
            elif op == 8 and parent is not None:
                wrapper = outer = etree.Element(rng.choice(words))
                for _ in range(rng.choice((1, 3, 300)) - 1):
                    wrapper = etree.SubElement(wrapper, rng.choice(words))
                parent.replace(el, outer)
                wrapper.append(el)
            elif op == 9 and parent is not None:
                target = rng.choice(els)
                if target is not el and el not in target.iterancestors():
                    target.append(el)
            elif op == 10:
                etree.SubElement(el, f"{{{XINCLUDE}}}include", href="file:///etc/hostname", parse="text")
            else:
                el.set(rng.choice(("mode", "name", "policy", "supported", "usable")), rng.choice(words))
        except ValueError:  # a name or value lxml refuses to build: skip the edit
            continue
    encoding = rng.choice(("UTF-8", "UTF-8", "UTF-8", "ASCII", "UTF-16", "ISO-8859-1"))
    return etree.tostring(root, encoding=encoding, xml_declaration=encoding != "UTF-8" or rng.random() < 0.3)


def _as_text(data: bytes, rng: random.Random) -> str:
    """Bytes as the text an API hands over: mostly valid Unicode, sometimes with lone surrogates."""
    return data.decode("utf-8", "surrogateescape" if rng.random() < 0.1 else "replace")


class _XmlTarget(Target):
    needs = ("lxml",)
    tokens = XML_TOKENS
    words: tuple[str, ...] = ()

    def structural(self, seed: bytes, rng: random.Random) -> bytes:
        return mutate_tree(seed, rng, self.words)

    def encode(self, value: bytes, rng: random.Random) -> bytes:
        return value


class GuestXmlTarget(_XmlTarget):
    name = "guest-xml"
    description = "guest <cpu mode='custom'> XML (libvirt.guest.guest_cpu_spec) -> realize"

    def open(self) -> None:
        from arm_cpu_filter.models import catalog
        from arm_cpu_filter.testing.fuzz.model_targets import vocabulary

        props, values = vocabulary()
        self.words = (*GUEST_WORDS, *catalog(), *props[:80], *values[:80])

    def seeds(self) -> list[bytes]:
        from arm_cpu_filter.libvirt.guest import guest_cpu_xml
        from arm_cpu_filter.models import parse_spec, realize

        specs = ("grace-v1", "graviton3-v1,feat_AES=aes,sve=off", "neoverse-n1-v1,hw_prop_DIC=off,feat_CSV2=1.0",
                 "graviton2-v1,pmu=off,SYSREG_ID_AA64ISAR0_EL1_RDM=0", "a64fx-v1")
        out = [guest_cpu_xml(parse_spec(s)[0], realize(s)).encode() for s in specs]
        out.append(NOVA_DOMAIN.format(cpu=out[1].decode()).encode())
        out.append(b"<cpu mode='custom' match='exact' check='none'><model fallback='allow'>cortex-a72-v1</model>"
                   b"<feature policy='optional' name='feat_AES'/><feature policy='forbid' name='sve'/></cpu>")
        return out

    def run(self, xml: bytes) -> None:
        from arm_cpu_filter.libvirt.guest import guest_cpu_spec
        from arm_cpu_filter.models import realize

        realize(guest_cpu_spec(xml))
        return None


class DomcapsMergeTarget(_XmlTarget):
    name = "domcaps-merge"
    description = "libvirt domain capabilities merged with ours (libvirt.domcaps.merge, as --connect/--merge)"
    words = DOMCAPS_WORDS

    def open(self) -> None:
        from arm_cpu_filter.libvirt.caps import cpu_caps
        from arm_cpu_filter.models import realize
        from arm_cpu_filter.samples import sample_host

        models = {n: realize(n) for n in ("neoverse-n1-v1", "graviton3-v1", "grace-v1")}
        caps = cpu_caps(sample_host("graviton2"), models)
        # The document is libvirt's; our CPU section only needs to be there, so keep it small.
        self.caps = dataclasses.replace(caps, properties=dict(list(caps.properties.items())[:6]))

    def seeds(self) -> list[bytes]:
        from arm_cpu_filter.libvirt.domcaps import document, tostring

        out = [p.read_bytes() for p in sorted(SEEDS.glob("*.xml"))]
        try:
            from arm_cpu_filter.libvirt.connect import get_domain_capabilities

            out.append(get_domain_capabilities("test:///default", virttype="test", machine="virt").encode())
        except Exception:  # libvirt-python missing or its test driver unavailable: fewer seeds
            pass
        out += [tostring(document(self.caps, ext)).encode() for ext in (True, False)]
        return out

    def case(self, seed: Any, kind: str, rng: random.Random) -> tuple[str, bool]:
        # --merge reads the file as text, libvirt-python returns text: the merge gets a str
        return _as_text(super().case(seed, kind, rng), rng), rng.random() < 0.75

    def run(self, case: tuple[str, bool]) -> None:
        from arm_cpu_filter.libvirt.domcaps import merge, tostring
        from arm_cpu_filter.libvirt.xmlsafe import parse

        xml, extensions = case
        out = tostring(merge(xml, self.caps, extensions, "libvirt domain capabilities"))
        parse(out, "merged domain capabilities")  # what we print must read back
        return None


class DomainXmlTarget(_XmlTarget):
    name = "domain-xml"
    description = "libvirt domain XML the agent reads for its instances (agent.domains.parse_domain)"
    words = (*DOMAIN_WORDS, *GUEST_WORDS)

    def seeds(self) -> list[bytes]:
        return [
            NOVA_DOMAIN.format(cpu="<cpu mode='host-passthrough' check='none'/>").encode(),
            NOVA_DOMAIN.format(cpu="<cpu mode='custom'><model>grace-v1</model></cpu>").encode(),
            NOVA_DOMAIN.format(cpu="").replace("1.1", "2.0").encode(),
            b"<domain type='qemu'><name>plain</name><uuid>0d5f3a40-0000-4000-8000-000000000001</uuid></domain>",
        ]

    def case(self, seed: Any, kind: str, rng: random.Random) -> str:
        return _as_text(super().case(seed, kind, rng), rng)  # libvirt-python's XMLDesc() returns text

    def run(self, xml: str) -> None:
        from arm_cpu_filter.agent.domains import parse_domain

        parse_domain(xml)
        return None
