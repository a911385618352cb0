"""Outputs a user can read: fractional properties print as fractions in blocker rows, and a
value KVM could really show is a blocker (exit 1), not an error (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

from arm_cpu_filter.engine import check
from arm_cpu_filter.models import realize
from arm_cpu_filter.samples import sample_host


def run(*args):
    return subprocess.run([sys.executable, "-m", "arm_cpu_filter", *args], capture_output=True, text=True)


def test_fractional_blocker_row_prints_the_fraction():
    out = run("check", "neoverse-v1-v1,feat_CSV2=1.1", "--host", "graviton3")
    assert out.returncode == 1, out.stderr
    rows = {line.split()[1]: line.split()[:5] for line in out.stdout.splitlines()[3:] if line.startswith("ID_")}
    assert rows["CSV2_frac"] == ["ID_AA64PFR1_EL1", "CSV2_frac", "feat_CSV2", "1.1", "1.0"]
    assert rows["NV"] == ["ID_AA64MMFR2_EL1", "NV", "feat_NV", "0.0", "2.0"]
    (b,) = [b for b in check(realize("neoverse-v1-v1,feat_CSV2=1.1"), sample_host("graviton3")).blockers
            if b.field == "CSV2_frac"]
    assert (b.requested, b.host, b.supported) == ("1.1", "1.0", ("1.0",))


def test_fraction_lists_the_values_of_the_blocking_field_with_the_other_at_the_hosts():
    (b,) = [b for b in check(realize("altra-v1,feat_CSV2=2.0"), sample_host("graviton2")).blockers
            if b.property == "feat_CSV2"]
    assert (b.field, b.requested, b.host, b.supported) == ("CSV2", "2.0", "1.0", ("0.0", "1.0"))


def test_impossible_but_real_value_is_a_blocker_not_an_error():
    out = run("check", "grace-v1,feat_NMI=nmi", "--host", "graviton3", "--format", "json")
    assert out.returncode == 1, out.stderr
    (b,) = [b for b in json.loads(out.stdout)["blockers"] if b["property"] == "feat_NMI"]
    assert (b["register"], b["field"], b["requested"], b["host"], b["supported"]) == (
        "ID_AA64PFR1_EL1", "NMI", "nmi", "off", ["off"])
    out = run("check", "grace-v1,feat_NMI=5", "--host", "graviton3")  # 5 is no NMI value at all
    assert out.returncode == 2 and "5 is no value of ID_AA64PFR1_EL1.NMI" in out.stderr


def test_every_value_name_fields_shows_is_accepted_by_its_property():
    from arm_cpu_filter.properties import FRACTION, properties

    out = run("fields")
    assert out.returncode == 0, out.stderr
    checked = minor_checked = 0
    for line in out.stdout.splitlines()[2:]:
        cols = line.split()
        register, field, prop_name, values = cols[0], cols[1], cols[-2], cols[-1]
        if prop_name == "-" or "=" not in values:
            continue
        prop = properties().get(prop_name)
        position = [(f.register, f.name) for f in prop.fields].index((register, field))
        for item in values.split(","):
            raw, _, name = item.partition("=")
            if prop.kind == FRACTION and position == 1:  # a minor field's name: in MAJOR.NAME
                assert prop.parse(f"1.{name}") == (1, int(raw)), (prop_name, name)
                minor_checked += 1
                continue
            expected = (int(raw), 0) if prop.kind == FRACTION else (int(raw),)
            assert prop.parse(name) == expected, (prop_name, name)
            checked += 1
    assert checked > 900 and minor_checked >= 8
    # a minor name that carries its major (the architecture's <X>_<a>p<b>) stands alone
    assert properties().get("feat_CSV2").parse("CSV2_1p2") == (1, 2)
    assert properties().get("feat_MPAM").parse("1.MINOR_1") == (1, 1)
    assert properties().get("feat_FP").parse("FP16") == (1,) and properties().get("feat_AES").parse("NI") == (0,)
    assert properties().get("feat_RAS").parse("V1P1") == (2, 0)
    assert properties().get("hw_prop_VMIDBits").parse("8") == (8,)  # a number stays a raw number
    assert "0=8bit,2=16bit" in run("fields", "ID_AA64MMFR1_EL1").stdout


def test_expand_help_says_who_can_consume_the_output():
    out = run("expand", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "No released QEMU or libvirt takes these yet." in text
    assert 'libvirt 11.3 refuses <model>graviton2-v1</model> on aarch64 ("CPU model graviton2-v1 is not ' \
           'supported by hypervisor")' in text
    assert "in the RFC's syntax, for planning" in text


def test_qemu_form_carries_only_the_rfcs_options():
    out = run("expand", "graviton3-v1", "--format", "qemu")
    assert out.returncode == 0, out.stderr
    first, *options = out.stdout.strip().split(",")
    assert first == "host" and options[:3] == ["sve=on", "pauth=on", "pmu=on"]
    assert all(o.startswith("SYSREG_") and o.partition("=")[2].isdigit() for o in options[3:])


def test_supported_command_lists_clidr_and_composites():
    out = run("supported", "--host", "graviton3", "--all")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()[2:]}
    assert rows["sve"] == ["composite", "on", "off,on"] and rows["pmu"] == ["composite", "on", "off,on"]
    assert rows["hw_prop_LoC"] == ["number", "1", "0,1,2,3,4,5,6,7"]
    assert rows["feat_DoubleLock"] == ["enum", "off", "off"]
