"""The catalog: required models, file validation, and invariants every realization keeps."""

from __future__ import annotations

import pytest

from arm_cpu_filter.errors import InputError, UnknownNameError
from arm_cpu_filter.models import catalog, chain, load_catalog, realize, resolve
from arm_cpu_filter.models.realization import _KVM_ZERO_KINDS
from arm_cpu_filter.snapshot import has_aarch32_el0
from arm_cpu_filter.table import load_table

REQUIRED = [
    "kvm-base-v1", "armv8.0-a-v1", "armv8.1-a-v1", "armv8.2-a-v1", "armv8.3-a-v1", "armv8.4-a-v1",
    "armv8.5-a-v1", "armv8.6-a-v1", "armv9.0-a-v1", "armv9.1-a-v1", "armv9.2-a-v1",
    "neoverse-n1-v1", "neoverse-n2-v1", "neoverse-v1-v1", "neoverse-v2-v1", "cortex-a57-v1", "cortex-a72-v1",
    "cortex-a76-v1", "a64fx-v1", "graviton2-v1", "graviton3-v1", "graviton4-v1", "altra-v1", "grace-v1",
]
MODELS = sorted(catalog())


def test_required_models_exist_with_expected_chains():
    assert set(REQUIRED) <= set(MODELS)
    assert [m.name for m in chain("grace-v1")] == [
        "kvm-base-v1", "armv8.0-a-v1", "armv8.1-a-v1", "armv8.2-a-v1", "armv8.3-a-v1", "armv8.4-a-v1",
        "armv8.5-a-v1", "armv9.0-a-v1", "neoverse-v2-v1", "grace-v1"]
    assert catalog()["graviton3-v1"].parent == "neoverse-v1-v1"
    assert catalog()["kvm-base-v1"].parent is None
    assert catalog()["grace-v1"].version == 1 and catalog()["grace-v1"].family == "grace"


@pytest.mark.parametrize("name", MODELS)
def test_every_value_has_provenance(name):
    m = catalog()[name]
    assert m.description and m.vendor
    for s in m.settings:
        assert m.source_text(s.name), f"{name}: {s.name} has no provenance"


@pytest.mark.parametrize("name", MODELS)
def test_realization_invariants(name):
    d = realize(name)
    table = load_table()
    assert "DCZID_EL0" not in d.registers and "MPIDR_EL1" not in d.registers
    aarch32 = {r.name for r in table.registers if r.aarch32}
    if has_aarch32_el0(d.registers):
        assert aarch32 <= set(d.registers)
        # KVM refuses ID_DFR0_EL1.CopDbg < 6 on hosts with AArch32 EL0
        assert table.field("ID_DFR0_EL1.CopDbg").extract(d.registers["ID_DFR0_EL1"]) >= 6
    else:
        assert not aarch32 & set(d.registers)
    for reg in table.registers:
        if reg.name in d.registers and reg.kvm in _KVM_ZERO_KINDS:
            for f in reg.fields:
                if f.policy is None:
                    assert f.extract(d.registers[reg.name]) == 0, f"{name}: {f.qualname} can only be 0 under KVM"
    assert "psci-0.2" in d.vcpu_features
    sve = table.field("ID_AA64PFR0_EL1.SVE").extract(d.registers["ID_AA64PFR0_EL1"])
    assert ("sve" in d.vcpu_features) == bool(sve)
    assert d.name == name and d.provenance["chain"][-1] == name


def test_clidr_is_what_kvm_fabricates_for_the_model_ctr():
    # values KVM 6.12/7.3 reported on the lab hosts with the same CTR_EL0
    assert realize("cortex-a72-v1").registers["CLIDR_EL1"] == 0x09200003  # IDC=0
    assert realize("neoverse-n1-v1").registers["CLIDR_EL1"] == 0x02000021  # IDC=1, DIC=0
    assert realize("graviton2-v1").registers["CLIDR_EL1"] == 0x01000004  # IDC=1, DIC=1
    assert realize("neoverse-n1-v1,hw_prop_IDC=off").registers["CLIDR_EL1"] == 0x09200003
    assert realize("neoverse-n1-v1,hw_prop_LoC=3").registers["CLIDR_EL1"] == 0x03000021


def test_resolve_names_the_model_that_set_each_property():
    rows = {r["property"]: r for r in resolve("graviton3-v1")}
    assert rows["feat_SM3"]["set_by"] == "graviton3-v1" and rows["feat_SM3"]["value"] == "sm3"
    assert rows["feat_DIT"]["set_by"] == "armv8.4-a-v1"
    assert rows["feat_GIC"]["set_by"] == "kvm-base-v1"
    assert rows["cpu_partnum"] == {**rows["cpu_partnum"], "value": "0xd40", "set_by": "neoverse-v1-v1"}
    assert rows["cpu_revision"]["set_by"] == "graviton3-v1" and rows["cpu_revision"]["value"] == "0x1"
    assert rows["hw_prop_LoC"]["set_by"] == "kvm"
    assert rows["feat_SME"]["set_by"] == "default"
    assert rows["sve"]["value"] == "on" and "Firecracker" in rows["feat_AES"]["source"]
    assert rows["aarch32"] == {"property": "aarch32", "value": "on", "set_by": "default",
                               "source": "on iff the model has the fields"}
    assert {r["property"]: r["value"] for r in resolve("graviton4-v1")}["aarch32"] == "off"


def _write(tmp_path, name, body):
    (tmp_path / f"{name}.toml").write_text(body)


BASE = 'name = "root-v1"\nvendor = "x"\ndescription = "root"\n'


@pytest.mark.parametrize("body, error, text", [
    ('name = "a-v1"\nparent = "root-v1"\nvendor = "x"\ndescription = "d"\n[properties]\nfeat_AES = "aes"\n',
     InputError, "feat_AES has no [provenance]"),
    ('name = "a-v1"\nparent = "root-v1"\nvendor = "x"\ndescription = "d"\n[sources]\ns = "y"\n'
     '[properties]\nfeat_NOPE = "on"\n[provenance]\nfeat_NOPE = "s"\n', UnknownNameError, "feat_NOPE"),
    ('name = "a-v1"\nparent = "root-v1"\nvendor = "x"\ndescription = "d"\n[sources]\ns = "y"\n'
     '[properties]\nfeat_AES = "sha"\n[provenance]\nfeat_AES = "s"\n', InputError, "invalid value 'sha'"),
    ('name = "a-v1"\nparent = "nope-v1"\nvendor = "x"\ndescription = "d"\n', InputError, "unknown parent model 'nope-v1'"),
    ('name = "a-v1"\nparent = "root-v1"\nvendor = "x"\ndescription = "d"\n[sources]\ns = "y"\n'
     '[properties]\nfeat_AES = "aes"\n[provenance]\nfeat_AES = "t"\n', InputError, "unknown sources ['t']"),
    ('name = "a"\nvendor = "x"\ndescription = "d"\n', InputError, "version suffix"),
])
def test_bad_model_files_are_clear_errors(tmp_path, body, error, text):
    _write(tmp_path, "root-v1", BASE)
    _write(tmp_path, "a-v1", body)
    with pytest.raises(error) as exc:
        load_catalog(tmp_path)
    assert text in str(exc.value)


def test_parent_cycle_is_an_error(tmp_path):
    _write(tmp_path, "a-v1", 'name = "a-v1"\nparent = "b-v1"\nvendor = "x"\ndescription = "d"\n')
    _write(tmp_path, "b-v1", 'name = "b-v1"\nparent = "a-v1"\nvendor = "x"\ndescription = "d"\n')
    with pytest.raises(InputError, match="cycle"):
        load_catalog(tmp_path)
