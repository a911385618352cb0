"""Guest <cpu mode='custom'> XML: valid in a domain (libvirt's installed domain.rng), accepted
by a real libvirt (test driver defineXML), and read back into the same CPU definition."""

from __future__ import annotations

import pytest
from lxml import etree

from arm_cpu_filter.errors import InputError, UnknownNameError
from arm_cpu_filter.libvirt import schema
from arm_cpu_filter.libvirt.guest import guest_cpu_spec, guest_cpu_xml
from arm_cpu_filter.models import catalog, realize
from arm_cpu_filter.snapshot import CpuDefinition
from tests.libvirt.conftest import lab_host

DOMAIN = """<domain type='kvm'><name>{name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
<os><type arch='aarch64' machine='virt'>hvm</type></os>{cpu}</domain>"""

SPECS = [
    "neoverse-v1-v1,pauth=off",
    "neoverse-n1-v1,feat_AES=aes,hw_prop_DIC=off",
    "armv9.0-a-v1,sve=off,feat_CSV2=1.0",
    "cortex-a72-v1,SYSREG_ID_AA64ISAR0_EL1_AES=1",
]


def domain(cpu_xml: str, name: str = "g") -> etree._Element:
    return etree.fromstring(DOMAIN.format(name=name, cpu=cpu_xml).encode())


def test_exact_element():
    spec = "neoverse-n1-v1,feat_AES=aes,hw_prop_DIC=off,feat_CSV2=1.0"
    assert guest_cpu_xml("neoverse-n1-v1", realize(spec)) == (
        '<cpu mode="custom" match="exact">\n'
        '  <model fallback="forbid">neoverse-n1-v1</model>\n'
        '  <feature policy="require" name="feat_AES.aes"/>\n'
        '  <feature policy="disable" name="hw_prop_DIC"/>\n'
        '  <feature policy="require" name="feat_CSV2.1.0"/>\n'
        '</cpu>\n')


@pytest.mark.parametrize("spec", [*catalog(), *SPECS])
def test_valid_in_libvirt_domain_schema_and_round_trips(spec):
    name = spec.split(",")[0]
    definition = realize(spec)
    xml = guest_cpu_xml(name, definition)
    assert schema.errors(schema.libvirt_schema("domain"), domain(xml)) == []
    back = guest_cpu_spec(xml)
    assert back.split(",")[0] == name
    assert realize(back).fingerprint == definition.fingerprint
    # without provenance the overrides are recomputed from the registers: same CPU
    bare = CpuDefinition(definition.registers, definition.vcpu_features)
    assert realize(guest_cpu_spec(guest_cpu_xml(name, bare))).fingerprint == definition.fingerprint


def test_real_libvirt_accepts_the_domain():
    import libvirt

    conn = libvirt.open("test:///default")
    try:
        xml = guest_cpu_xml("neoverse-v1-v1", realize(SPECS[0]))
        dom = conn.defineXML(DOMAIN.format(name="acf-guest", cpu=xml))
        stored = etree.fromstring(dom.XMLDesc(0).encode()).find("cpu")
        assert guest_cpu_spec(etree.tostring(stored)) == SPECS[0]
        dom.undefine()
    finally:
        conn.close()


def test_any_definition_expressible_as_model_plus_overrides_round_trips():
    """A host-passthrough CPU (the lab's neoverse-n1) is neoverse-n1-v1 with overrides."""
    host = lab_host("6.12", "neoverse-n1").as_definition()
    spec = guest_cpu_spec(guest_cpu_xml("neoverse-n1-v1", host))
    assert spec.startswith("neoverse-n1-v1,") and realize(spec).fingerprint == host.fingerprint


def test_definition_that_is_not_the_model_is_refused():
    d = realize("neoverse-n1-v1")
    odd = CpuDefinition({**d.registers, "ID_UNKNOWN7_EL1": 1}, d.vcpu_features)
    with pytest.raises(InputError, match="^the definition is not model neoverse-n1-v1 with property overrides"):
        guest_cpu_xml("neoverse-n1-v1", odd)
    with pytest.raises(UnknownNameError, match="unknown CPU model 'nope-v1'"):
        guest_cpu_xml("nope-v1", d)


@pytest.mark.parametrize("xml, message", [
    ("<cpu mode='host-passthrough'/>", "CPU mode 'host-passthrough' has no named model"),
    ("<cpu mode='custom'/>", "<cpu> has no <model>"),
    ("<domain><name>x</name></domain>", "no <cpu> element"),
    ("<cpu><model>m-v1</model><feature policy='disable' name='feat_AES.aes'/></cpu>",
     "feature 'feat_AES.aes': a valued feature cannot be disabled"),
    ("<cpu><model>m-v1</model><feature policy='optional' name='feat_AES'/></cpu>",
     "feature 'feat_AES': policy 'optional' has no fixed value"),
    ('<!DOCTYPE cpu [<!ENTITY e "x">]><cpu/>', "contains <!DOCTYPE"),
])
def test_spec_errors(xml, message):
    with pytest.raises(InputError, match=f"^guest CPU XML: {message}"):
        guest_cpu_spec(xml)


def test_spec_from_whole_domain():
    xml = guest_cpu_xml("neoverse-v1-v1", realize(SPECS[0]))
    assert guest_cpu_spec(DOMAIN.format(name="g", cpu=xml)) == SPECS[0]
