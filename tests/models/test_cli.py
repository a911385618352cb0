"""The models/show/expand subcommands, through the real CLI entry point."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from arm_cpu_filter.cli import main
from arm_cpu_filter.snapshot import loads_definition


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_models_json_lists_every_model_with_parent_and_version(capsys):
    rc, out, _ = run(capsys, "models", "--format", "json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rc == 0 and rows["grace-v1"]["parent"] == "neoverse-v2-v1" and rows["grace-v1"]["version"] == 1
    assert rows["kvm-base-v1"]["parent"] is None and rows["graviton3-v1"]["vendor"] == "Amazon"
    assert {"name", "parent", "version", "vendor", "description"} <= set(rows["altra-v1"])


def test_models_text_is_a_tree(capsys):
    rc, out, _ = run(capsys, "models")
    lines = out.splitlines()
    assert rc == 0 and lines[0].startswith("kvm-base-v1")
    grace = next(line for line in lines if line.lstrip().startswith("grace-v1"))
    v2 = next(line for line in lines if line.lstrip().startswith("neoverse-v2-v1"))
    assert len(grace) - len(grace.lstrip()) == len(v2) - len(v2.lstrip()) + 2


def test_show_names_the_setter(capsys):
    rc, out, _ = run(capsys, "show", "graviton3-v1", "--format", "json")
    rows = {r["property"]: r for r in json.loads(out)["properties"]}
    assert rc == 0 and rows["feat_SM4"]["set_by"] == "graviton3-v1" and rows["feat_LRCPC"]["set_by"] == "armv8.4-a-v1"
    rc, out, _ = run(capsys, "show", "graviton3-v1")
    assert "feat_SM4" in out and "chain: kvm-base-v1 -> armv8.0-a-v1" in out


def test_expand_json_is_a_definition_check_accepts(capsys, tmp_path):
    rc, out, _ = run(capsys, "expand", "neoverse-n1-v1,feat_DP=off")
    d = loads_definition(out)
    assert rc == 0 and d.name == "neoverse-n1-v1,feat_DP=off" and "pmu-v3" in d.vcpu_features
    path = tmp_path / "def.json"
    path.write_text(out)
    lab = "tests/fixtures/lab/7.3/neoverse-n1.json"
    assert main(["check", "--definition", str(path), "--host", lab]) == 0
    assert main(["check", "neoverse-v1-v1", "--host", lab]) == 1


def test_expand_qemu_and_libvirt(capsys):
    rc, out, _ = run(capsys, "expand", "graviton3-v1,pauth=off", "--format", "qemu")
    parts = out.strip().split(",")
    assert rc == 0 and parts[:4] == ["host", "sve=on", "pauth=off", "pmu=on"]
    assert "SYSREG_ID_AA64ISAR0_EL1_SM3=1" in parts and "SYSREG_CTR_EL0_DIC=1" in parts
    assert not [p for p in parts if p.startswith(("SYSREG_MIDR", "SYSREG_ID_AA64ISAR1_EL1_APA", "SYSREG_CLIDR"))]
    rc, out, _ = run(capsys, "expand", "graviton3-v1", "--format", "libvirt")
    cpu = ET.fromstring(out)
    assert rc == 0 and cpu.tag == "cpu" and cpu.get("mode") == "custom" and cpu.findtext("model") == "graviton3-v1"


def test_expand_errors_are_one_line_exit_2(capsys):
    rc, out, err = run(capsys, "expand", "graviton3-v1,feat_AES=fast")
    assert rc == 2 and out == "" and err.count("\n") == 1 and "feat_AES" in err


def test_check_prints_only_the_fix_not_the_users_overrides(capsys):
    rc, out, _ = run(capsys, "check", "graviton2-v1,hw_prop_DIC=on", "--host", "altra-7.3", "--format", "json")
    assert rc == 1 and json.loads(out)["fix"] == {"hw_prop_DIC": "off"}


def test_check_unknown_model_names_the_model(capsys):
    rc, out, err = run(capsys, "check", "nosuch-v1", "--host", "graviton3")
    assert rc == 2 and out == ""
    assert err == "arm-cpu-filter check: error: unknown CPU model 'nosuch-v1' (see 'arm-cpu-filter models')\n"


def test_compare_reports_a_bad_override_as_such(capsys):
    rc, out, err = run(capsys, "compare", "graviton3-v1,feat_AES=bogus", "graviton3")
    assert rc == 2 and out == ""
    assert err == ("arm-cpu-filter compare: error: CPU model graviton3-v1: property feat_AES: "
                   "invalid value 'bogus' (valid: off, aes, pmull)\n")


def test_compare_unknown_name_says_what_was_expected(capsys):
    rc, out, err = run(capsys, "compare", "nosuch", "graviton3")
    assert rc == 2 and out == ""
    assert err.startswith("arm-cpu-filter compare: error: 'nosuch' is not a file, a CPU model "
                          "(see 'arm-cpu-filter models') or a sample host (a64fx, altra, ")


def test_compare_a_model_with_a_sample_host(capsys):
    rc, out, _ = run(capsys, "compare", "graviton3-v1", "graviton3", "--format", "json")
    assert rc == 0 and json.loads(out)["result"] == "subset"


def test_flavor_prints_the_extra_specs_and_the_trait(capsys):
    rc, out, _ = run(capsys, "flavor", "graviton3-v1,feat_AES=aes")
    assert rc == 0
    assert out.splitlines() == ["arm_cpu:model=graviton3-v1", "arm_cpu:feat_AES=aes",
                                "trait:CUSTOM_ARM_CPU_MODEL_GRAVITON3_V1=required"]
    rc, out, _ = run(capsys, "flavor", "grace-v1", "--json")
    assert rc == 0
    assert json.loads(out) == {"arm_cpu:model": "grace-v1", "trait:CUSTOM_ARM_CPU_MODEL_GRACE_V1": "required"}
    rc, again, _ = run(capsys, "flavor", "grace-v1", "--format", "json")
    assert again == out


def test_flavor_errors_are_one_line_exit_2(capsys):
    for spec, word in [("gravitn3-v1", "gravitn3-v1"), ("grace-v1,feat_AES=fast", "fast"),
                       ("grace-v1,feat_AESX=on", "feat_AESX")]:
        rc, out, err = run(capsys, "flavor", spec)
        assert rc == 2 and out == "" and err.count("\n") == 1 and word in err, (spec, err)
