"""Regressions for the bugs the fuzz targets found: each input once escaped as an uncaught
exception (or was parsed by an unhardened parser) and is now refused with the documented
InputError naming the culprit."""

from __future__ import annotations

import json
import re

import pytest

from arm_cpu_filter.agent.domains import Domain, parse_domain
from arm_cpu_filter.cli import main
from arm_cpu_filter.errors import InputError
from arm_cpu_filter.libvirt import domain_capabilities, xmlsafe
from arm_cpu_filter.models import load_catalog, realize
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.scheduler.fleet import Fleet
from arm_cpu_filter.scheduler.request import resolve
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.store.files import FileStore

NOT_A_NUMBER = "is not a usable number (leading zeros or too many digits)"


# -- property values Python's int() refuses (ValueError escaped: CLI traceback, Nova API 500,
#    scheduler "internal error") ----------------------------------------------------------------
@pytest.mark.parametrize("value, shown", [("01", "'01'"), ("0007", "'0007'"),
                                          ("1" * 5000, f"'{'1' * 24}'... (5000 characters)")])
def test_property_number_python_cannot_convert(value, shown):
    with pytest.raises(InputError) as err:
        realize(f"grace-v1,feat_AES={value}")
    assert str(err.value) == f"CPU model grace-v1: property feat_AES: {shown} {NOT_A_NUMBER}"


def test_property_number_on_the_command_line(capsys):
    assert main(["expand", "grace-v1,hw_prop_DIC=01"]) == 2
    assert capsys.readouterr().err == (f"arm-cpu-filter expand: error: CPU model grace-v1: property hw_prop_DIC: '01' "
                                       f"{NOT_A_NUMBER}\n")


def test_property_number_in_a_flavor_fails_closed_with_the_reason(tmp_path):
    request = resolve(Fleet(FileStore(tmp_path)), {"arm_cpu:model": "grace-v1", "arm_cpu:feat_AES": "1" * 5000})
    assert request.definition is None
    assert request.problem.startswith("CPU model grace-v1,feat_AES=1111")
    assert request.problem.endswith(f"CPU model grace-v1: property feat_AES: '{'1' * 24}'... (5000 characters) "
                                    f"{NOT_A_NUMBER}")


def test_property_number_rejected_by_novas_validator():
    pytest.importorskip("nova")
    from nova import exception
    from nova.api.validation.extra_specs import validators

    message = f"Validation failed; arm_cpu:feat_AES=01: property feat_AES: '01' {NOT_A_NUMBER}"
    with pytest.raises(exception.ValidationError, match=f"^{re.escape(message)}$"):
        validators.validate("arm_cpu:feat_AES", "01")


# -- model files whose tables are not tables (AttributeError / TypeError escaped) ---------------
@pytest.mark.parametrize("extra, message", [
    ('properties = "feat_AES"', "[properties] must be a table"),
    ("sources = 16", "[sources] must be a table"),
    ('provenance = "trm"', "[provenance] must be a table"),
    ("parent = 5", "'parent' must be a model name (a string)"),
    ("parent = {name = 'kvm-base-v1'}", "'parent' must be a model name (a string)"),
])
def test_model_file_sections_of_the_wrong_type(tmp_path, extra, message):
    (tmp_path / "x-v1.toml").write_text(f'name = "x-v1"\nvendor = "X"\ndescription = "test"\n{extra}\n')
    with pytest.raises(InputError) as err:
        load_catalog(tmp_path)
    assert str(err.value) == f"model file x-v1.toml: {message}"


# -- XML text with lone surrogates (UnicodeEncodeError escaped from xmlsafe.parse) --------------
def test_xml_text_with_lone_surrogates():
    with pytest.raises(InputError) as err:
        xmlsafe.parse("<d>\udc80</d>", "t.xml")
    assert str(err.value) == "t.xml: not valid Unicode text (surrogates not allowed at character 3)"
    with pytest.raises(InputError, match=r"^caps: not valid Unicode text \(surrogates not allowed at character 20\)$"):
        domain_capabilities(sample_host("graviton2"), {"grace-v1": realize("grace-v1")},
                            libvirt_xml="<domainCapabilities>\ud800</domainCapabilities>", what="caps")


def test_xinclude_of_either_namespace_is_refused():
    for ns in ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"):
        doc = f"<d xmlns:xi='{ns}'><e><xi:include href='file:///etc/hostname' parse='text'/></e></d>"
        with pytest.raises(InputError, match=r"^d.xml: contains an XInclude element; XInclude is refused$"):
            xmlsafe.parse(doc, "d.xml")
    assert xmlsafe.parse("<d xmlns:x='urn:include'><x:include/></d>").tag == "d"  # other namespaces are fine


# -- the agent's domain XML went through the stdlib parser, which expands internal entities ------
def test_agent_domain_xml_goes_through_the_hardened_parser():
    with pytest.raises(InputError, match=r"^libvirt domain XML: contains <!DOCTYPE; DTDs and entity declarations"):
        parse_domain('<!DOCTYPE d [<!ENTITY n "x">]><domain><name>&n;</name></domain>')
    with pytest.raises(InputError, match=r"^libvirt domain XML: not well-formed XML \("):
        parse_domain("<domain>")
    domain = parse_domain("<domain><name>a</name><uuid>u-1</uuid><metadata><!-- by nova --><?pi x?>"
                          "<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'/></metadata>"
                          "<cpu mode='host-passthrough'/></domain>")
    assert domain == Domain("a", "u-1", "u-1", "host-passthrough")


# -- a snapshot's host or kernel with control characters loaded, then broke every XML output -----
@pytest.mark.parametrize("key, value", [("host", "bad\x01name"), ("host", "x\ud800"), ("kernel", "6.12.95\n"),
                                        ("kernel", "6.12\x00")])
def test_snapshot_names_with_control_characters(key, value, tmp_path, capsys):
    data = {**sample_host("graviton2").to_dict(), key: value}
    with pytest.raises(InputError) as err:
        HostSnapshot.from_dict(data)
    assert str(err.value) == f"snapshot: {key!r} contains control or other non-printable characters: {value!r}"
    path = tmp_path / "host.json"
    path.write_text(json.dumps(data))
    assert main(["domcapabilities", "--host", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"arm-cpu-filter domcapabilities: error: snapshot {path}: {key!r} contains")


def test_property_values_take_ascii_digits_only() -> None:
    """Python's int() reads Arabic-Indic digits; a CPU property value must not."""
    from arm_cpu_filter.errors import InputError
    from arm_cpu_filter.models import realize

    with pytest.raises(InputError, match="feat_AES"):
        realize("neoverse-n1-v1,feat_AES=\u0663")


def test_model_files_are_size_limited(tmp_path) -> None:
    from arm_cpu_filter.errors import InputError
    from arm_cpu_filter.models import load_catalog

    (tmp_path / "huge-v1.toml").write_text('name = "huge-v1"\n' + "# padding\n" * 2_000_000)
    with pytest.raises(InputError, match="model file .*huge-v1.toml"):
        load_catalog(tmp_path)
