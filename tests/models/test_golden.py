"""A published model version never changes what the guest sees.

``golden/realized.json`` holds every published model's realized registers and vCPU features.
A model whose realization differs from its golden entry, or a published model that disappeared,
fails; a model not in the golden file yet (a new model or a new ``-vN``) passes and is added by
``python tools/models/golden.py`` (which never rewrites an existing entry).
"""

from __future__ import annotations

import json
from pathlib import Path

from arm_cpu_filter.models import catalog, load_catalog, realize_model

GOLDEN = Path(__file__).with_name("golden") / "realized.json"


def entry(definition) -> dict:
    return {"vcpu_features": sorted(definition.vcpu_features),
            "registers": {k: f"0x{v:016x}" for k, v in sorted(definition.registers.items())}}


def golden_problems(golden: dict, models: dict) -> list[str]:
    """Why the catalog breaks the golden file (empty: it does not)."""
    out = []
    for name, want in sorted(golden.items()):
        if name not in models:
            out.append(f"{name}: published model removed")
            continue
        got = entry(realize_model(name, models=models if models is not catalog() else None))
        if got != want:
            diff = sorted(k for k in want["registers"].keys() | got["registers"].keys()
                          if want["registers"].get(k) != got["registers"].get(k))
            feats = "" if got["vcpu_features"] == want["vcpu_features"] else " vcpu_features"
            out.append(f"{name}: realization changed ({', '.join(diff)}{feats}); publish a new -vN instead")
    return out


def test_published_models_realize_exactly_as_published():
    golden = json.loads(GOLDEN.read_text())
    assert golden_problems(golden, catalog()) == []
    assert len(golden) >= 25


def _copy_catalog(tmp_path) -> Path:
    src = Path(catalog()["kvm-base-v1"].path).parent
    for p in src.glob("*.toml"):
        (tmp_path / p.name).write_text(p.read_text())
    return tmp_path


def test_changing_a_published_model_fails_but_adding_versions_passes(tmp_path):
    golden = json.loads(GOLDEN.read_text())
    d = _copy_catalog(tmp_path)
    # a new -v2 (and a new model) next to the published v1: fine
    (d / "graviton3-v2.toml").write_text(
        'name = "graviton3-v2"\nparent = "graviton3-v1"\nvendor = "Amazon"\ndescription = "fixed"\n'
        '[sources]\ns = "test"\n[properties]\nfeat_SM3 = "off"\n[provenance]\nfeat_SM3 = "s"\n')
    assert golden_problems(golden, load_catalog(d)) == []
    # editing the published v1 in place: caught, naming the register
    v1 = d / "graviton3-v1.toml"
    v1.write_text(v1.read_text().replace('feat_SM3 = "sm3"', 'feat_SM3 = "off"'))
    problems = golden_problems(golden, load_catalog(d))
    assert problems and problems[0].startswith("graviton3-v1: realization changed (ID_AA64ISAR0_EL1)")
    # an edit in a parent changes every child: all are reported
    (d / "graviton3-v1.toml").write_text(v1.read_text().replace('feat_SM3 = "off"', 'feat_SM3 = "sm3"'))
    base = d / "armv8.1-a-v1.toml"
    base.write_text(base.read_text().replace('feat_LO = "lo"\n', 'feat_LO = "off"\n'))
    names = {p.split(":")[0] for p in golden_problems(golden, load_catalog(d))}
    assert {"armv8.1-a-v1", "grace-v1", "neoverse-n1-v1", "graviton3-v1"} <= names
    assert "armv8.0-a-v1" not in names and "cortex-a72-v1" not in names
    # removing a published model: caught
    (d / "kvm-base-v1.toml").unlink()
    (d / "armv8.0-a-v1.toml").write_text((d / "armv8.0-a-v1.toml").read_text().replace('parent = "kvm-base-v1"\n', ""))
    assert "kvm-base-v1: published model removed" in golden_problems(golden, load_catalog(d))
