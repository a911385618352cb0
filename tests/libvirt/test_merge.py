"""--connect / --merge: our CPU section inside what a real libvirt reported, everything else
kept.  The daemon is a real libvirtd (QEMU session driver, QEMU TCG for aarch64)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from lxml import etree

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.libvirt import domain_capabilities
from arm_cpu_filter.libvirt.caps import catalog_definitions
from arm_cpu_filter.libvirt.connect import LibvirtError, get_domain_capabilities
from arm_cpu_filter.models import is_abstract
from tests.libvirt.conftest import LAB, assert_valid, lab_host


def modes(root):
    return {m.get("name"): m for m in root.find("cpu").findall("mode")}


def canon(el):
    return etree.tostring(el, method="c14n", exclusive=True)


def check_merged(theirs_xml: str, merged_xml: str) -> tuple[etree._Element, etree._Element]:
    parser = etree.XMLParser(remove_blank_text=True)
    theirs, merged = etree.fromstring(theirs_xml.encode(), parser), etree.fromstring(merged_xml.encode(), parser)
    assert_valid(merged)
    # everything outside <cpu> exactly as libvirt reported it, in libvirt's order
    assert [canon(c) for c in theirs if c.tag != "cpu"] == [canon(c) for c in merged if c.tag != "cpu"]
    assert [c.tag for c in theirs] == [c.tag for c in merged]
    mine, old = modes(merged), modes(theirs)
    assert list(mine) == ["host-passthrough", "maximum", "host-model", "custom"]
    for name in ("host-passthrough", "maximum"):
        assert canon(mine[name]) == canon(old[name])
    ours = [name for name, d in catalog_definitions()[0].items() if not is_abstract(d)]  # the default
    listed = [m.text for m in mine["custom"].findall("model")]
    libvirt_own = [m.text for m in old["custom"].findall("model")]
    assert listed == ours + [n for n in libvirt_own if n not in ours]
    return theirs, merged


def test_qemu_session_daemon(session_uri):
    theirs = get_domain_capabilities(session_uri, virttype="qemu", machine="virt")
    host = lab_host("6.12", "neoverse-n1")
    merged = domain_capabilities(host, libvirt_xml=theirs)
    old, new = check_merged(theirs, merged)
    assert new.findtext("path").endswith("qemu-system-aarch64") and new.findtext("domain") == "qemu"
    assert modes(old)["host-model"].get("supported") == "no"  # libvirt has none on aarch64 ...
    assert modes(new)["host-model"].findtext("model") == "neoverse-n1-v1"  # ... we do
    cortex = modes(new)["custom"].find("model[.='cortex-a57']")  # QEMU's own model, as libvirt said
    assert (cortex.get("usable"), cortex.get("vendor")) == ("unknown", "unknown")


def test_cli_connect_and_merge_give_the_same_document(session_uri, tmp_path):
    host = tmp_path / "host.json"
    host.write_text(json.dumps(lab_host("7.3", "neoverse-v1").to_dict()))
    args = ["--host", str(host)]
    out = subprocess.run([sys.executable, "-m", "arm_cpu_filter", "domcapabilities", *args, "--connect", session_uri,
                          "--virttype", "qemu", "--machine", "virt"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    saved = tmp_path / "caps.xml"
    saved.write_text(get_domain_capabilities(session_uri, virttype="qemu", machine="virt"))
    merged = subprocess.run([sys.executable, "-m", "arm_cpu_filter", "domcapabilities", *args, "--merge", str(saved)],
                            capture_output=True, text=True)
    assert merged.returncode == 0 and merged.stdout == out.stdout
    check_merged(saved.read_text(), out.stdout)


def test_test_driver():
    """libvirt's in-process test driver (no daemon): every mode unsupported, ours fill in."""
    theirs = get_domain_capabilities("test:///default", virttype="test", machine="virt")
    old, new = check_merged(theirs, domain_capabilities(lab_host("7.3", "cortex-a72"), libvirt_xml=theirs))
    assert modes(old)["custom"].get("supported") == "no" and modes(new)["custom"].get("supported") == "yes"
    assert modes(new)["host-model"].findtext("model") == "cortex-a72-v1"


def test_libvirt_errors_are_one_line():
    with pytest.raises(LibvirtError, match=r"^libvirt bogus:///x: cannot connect: "):
        get_domain_capabilities("bogus:///x")
    out = subprocess.run([sys.executable, "-m", "arm_cpu_filter", "domcapabilities", "--host",
                          str(LAB / "6.12" / "max.json"), "--connect", "bogus:///x"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("arm-cpu-filter domcapabilities: error: libvirt bogus:///x: cannot connect: ")


@pytest.mark.parametrize("doc, message", [
    ("<capabilities/>", "root element is <capabilities>, not <domainCapabilities>"),
    ("<domainCapabilities><domain>kvm</domain><arch>x86_64</arch></domainCapabilities>",
     "arch is 'x86_64'; ARM CPU models apply to aarch64 domains only"),
    ('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><domainCapabilities/>', "contains <!DOCTYPE"),
])
def test_bad_libvirt_documents(doc, message):
    with pytest.raises(InputError, match=f"^caps.xml: {message}"):
        domain_capabilities(lab_host("6.12", "max"), libvirt_xml=doc, what="caps.xml")


def test_merge_without_cpu_section_puts_ours_after_os():
    doc = "<domainCapabilities><domain>kvm</domain><arch>aarch64</arch><os supported='yes'><enum name='firmware'/>" \
          "</os><devices/></domainCapabilities>"
    root = etree.fromstring(domain_capabilities(lab_host("6.12", "max"), libvirt_xml=doc).encode())
    assert [c.tag for c in root] == ["domain", "arch", "os", "cpu", "devices"]
    assert_valid(root)
