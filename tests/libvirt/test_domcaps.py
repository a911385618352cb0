"""Domain capabilities documents: libvirt-valid (installed libvirt >= 10.9 schema), valid
against the extension grammar, and saying exactly what the engine says."""

from __future__ import annotations

import json
import subprocess
import sys
from copy import deepcopy

import pytest
from lxml import etree

from arm_cpu_filter.engine import check, supported
from arm_cpu_filter.libvirt import NS, domain_capabilities, schema
from arm_cpu_filter.libvirt.caps import MODES, blocker_name, catalog_definitions, cpu_caps
from arm_cpu_filter.libvirt.domcaps import document, tostring
from arm_cpu_filter.models import realize
from arm_cpu_filter.snapshot import CpuDefinition
from arm_cpu_filter.testing.bench.reference import MAX_612
from tests.conftest import make_host
from tests.libvirt.conftest import LAB_HOSTS, assert_valid, lab_host

A = f"{{{NS}}}"


def max_host(**kw):
    return make_host({k: v for k, (v, _) in MAX_612.items()}, {k: m for k, (_, m) in MAX_612.items()}, **kw)


def small_models(host):
    """Two definitions built here: the host itself, and one asking AES=3 (more than 'pmull')."""
    regs = dict(host.registers)
    regs["ID_AA64ISAR0_EL1"] = (regs["ID_AA64ISAR0_EL1"] & ~0xF0) | 0x30
    return {"same": host.as_definition(), "wide": CpuDefinition(regs, host.vcpu_features)}


def custom(root):
    return next(m for m in root.iter("mode") if m.get("name") == "custom")


def test_small_catalog_exact_document():
    host = max_host(host="max-612")
    root = document(cpu_caps(host, small_models(host), detail=True))
    assert_valid(root)
    assert [m.get("name") for m in root.iter("mode")] == list(MODES)
    hm = next(m for m in root.iter("mode") if m.get("name") == "host-model")
    assert (hm.get("supported"), hm.findtext("model"), hm.find("model").get("fallback")) == ("yes", "same", "forbid")
    assert hm.findall("feature") == []  # the host's own definition: nothing to add or remove
    aes = hm.find(f"{A}property[@name='feat_AES']")
    assert dict(aes.attrib) == {"name": "feat_AES", "type": "enum", "value": "pmull", "model": "pmull",
                                "writable": "yes", "supports": "off,aes,pmull"}
    c = custom(root)
    assert [(m.text, m.get("usable"), m.get("vendor")) for m in c.findall("model")] == [
        ("same", "yes", "unknown"), ("wide", "no", "unknown")]  # the lab's max CPU has implementer 0
    (blockers,) = c.findall("blockers")
    assert blockers.get("model") == "wide" and [f.get("name") for f in blockers] == ["feat_AES"]
    (b,) = c.findall(f"{A}blocker")
    assert dict(b.attrib) == {"model": "wide", "name": "feat_AES", "register": "ID_AA64ISAR0_EL1", "field": "AES",
                              "requested": "3", "host": "pmull", "supports": "off,aes,pmull",
                              "reason": b.get("reason")}
    fix = c.find(f"{A}fix")
    assert (fix.get("model"), fix.get("possible"), fix.get("spec")) == ("wide", "yes", "wide,feat_AES=pmull")
    assert [(s.get("name"), s.get("value")) for s in fix] == [("feat_AES", "pmull")]
    # libvirt's order inside custom: each model, then its blockers, then ours
    assert [etree.QName(e).localname for e in c] == ["model", "model", "blockers", "blocker", "fix"]


def test_no_usable_model_means_host_model_unsupported_and_still_valid():
    host = max_host()
    root = document(cpu_caps(host, {"wide": small_models(host)["wide"]}, detail=True))
    assert_valid(root)
    hm = next(m for m in root.iter("mode") if m.get("name") == "host-model")
    assert hm.get("supported") == "no" and hm.find("model") is None
    assert len(hm.findall(f"{A}property")) == len(supported(host))


def test_vendor_from_midr_else_declared():
    host = max_host()
    d = host.as_definition()
    midr = dict(d.registers, MIDR_EL1=0x4E0F0000)
    caps = cpu_caps(host, {"n": CpuDefinition(midr, d.vcpu_features), "k": d}, vendors={"k": "KVM", "n": "x"})
    assert [(m.name, m.vendor) for m in caps.models] == [("n", "NVIDIA"), ("k", "KVM")]


@pytest.fixture(scope="module")
def catalog():
    return catalog_definitions()


@pytest.mark.parametrize("path", LAB_HOSTS, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_catalog_on_every_lab_host_matches_the_engine(path, catalog):
    from arm_cpu_filter.snapshot.files import load_snapshot

    host = load_snapshot(path)
    models, vendors = catalog
    root = etree.fromstring(domain_capabilities(host, detail=True, abstract=True).encode())
    assert_valid(root)
    plain = etree.fromstring(domain_capabilities(host, extensions=False, abstract=True).encode())
    assert schema.errors(schema.libvirt_schema(), plain) == []
    assert etree.tostring(schema.strip_extensions(root)) == etree.tostring(plain)
    assert [m.get("name") for m in root.iter("mode")] == list(MODES)
    c = custom(root)
    assert [m.text for m in c.findall("model")] == list(models)
    for el in c.findall("model"):
        verdict = check(models[el.text], host)
        assert el.get("usable") == ("yes" if verdict.usable else "no")
        blockers = c.find(f"blockers[@model='{el.text}']")
        if verdict.usable:
            assert blockers is None and c.find(f"{A}fix[@model='{el.text}']") is None
            continue
        assert [f.get("name") for f in blockers] == list(dict.fromkeys(map(blocker_name, verdict.blockers)))
        assert len(c.findall(f"{A}blocker[@model='{el.text}']")) == len(verdict.blockers)
        fix = c.find(f"{A}fix[@model='{el.text}']")
        if fix.get("possible") == "yes":  # the advertised fix really makes the model usable
            assert check(realize(fix.get("spec")), host).usable, fix.get("spec")
    hm = next(m for m in root.iter("mode") if m.get("name") == "host-model")
    usable = [m.text for m in c.findall("model") if m.get("usable") == "yes"]
    assert (hm.get("supported") == "yes") == bool(usable)
    if usable:
        assert hm.findtext("model") in usable
    props = {p.get("name"): p for p in hm.findall(f"{A}property")}
    for name, info in supported(host).items():
        assert props[name].get("value") == info["value"]
        assert props[name].get("supports") == ",".join(info["supported"])


@pytest.mark.parametrize("kernel, host, model", [
    ("6.12", "neoverse-n1", "neoverse-n1-v1"),
    ("7.3", "neoverse-n1", "neoverse-n1-v1"),  # cortex-a76-v1 is usable too, but further from the host
    ("7.3", "cortex-a72", "cortex-a72-v1"),  # cortex-a57-v1 is usable too
    ("6.12", "a64fx", "a64fx-v1"),
])
def test_host_model_is_the_closest_usable_catalog_model(kernel, host, model):
    caps = cpu_caps(lab_host(kernel, host), detail=True)
    assert caps.host_model == model
    root = document(caps)
    hm = next(m for m in root.iter("mode") if m.get("name") == "host-model")
    assert hm.findtext("vendor") == {"a64fx-v1": "Fujitsu"}.get(model, "ARM")
    # 'require' exactly the features the host has and the model lacks
    definition = realize(model)
    for f in hm.findall("feature"):
        prop = hm.find(f"{A}property[@name='{f.get('name')}']")
        assert (f.get("policy"), prop.get("model")) in {("require", "off"), ("disable", prop.get("model"))}
        assert prop.get("model") == caps.properties[f.get("name")]["model"]
    assert check(definition, caps.host).usable


def _mutated(root, how):
    doc = deepcopy(root)
    cpu = doc.find("cpu")
    if how == "mode order":
        modes = cpu.findall("mode")
        cpu.remove(modes[0])
        cpu.append(modes[0])
    elif how == "blockers before model":
        c = custom(doc)
        b = c.find("blockers")
        c.remove(b)
        c.insert(0, b)
    elif how == "unknown usable":
        custom(doc).find("model").set("usable", "maybe")
    return doc


@pytest.mark.parametrize("how", ["mode order", "blockers before model", "unknown usable"])
def test_both_schemas_reject_broken_documents(how):
    host = max_host()
    root = _mutated(document(cpu_caps(host, small_models(host), detail=True)), how)
    assert schema.errors(schema.extension_schema(), root)
    assert schema.errors(schema.libvirt_schema(), schema.strip_extensions(root))


@pytest.mark.parametrize("attr, value", [("supports", ""), ("type", "colour"), ("writable", "maybe")])
def test_extension_grammar_checks_our_elements(attr, value):
    host = max_host()
    root = document(cpu_caps(host, small_models(host), detail=True))
    root.find(f".//{A}property[@name='feat_AES']").set(attr, value)
    assert schema.errors(schema.extension_schema(), root)
    assert schema.errors(schema.libvirt_schema(), schema.strip_extensions(root)) == []


def test_plain_libvirt_schema_rejects_our_namespace():
    """Without stripping, libvirt's schema refuses the extension: the two checks are distinct."""
    host = max_host()
    root = document(cpu_caps(host, small_models(host), detail=True))
    assert schema.errors(schema.libvirt_schema(), root)


def run(*args):
    return subprocess.run([sys.executable, "-m", "arm_cpu_filter", *args], capture_output=True, text=True)


def test_cli_xml_and_json(tmp_path):
    path = tmp_path / "host.json"
    host = lab_host("6.12", "neoverse-n1")
    path.write_text(json.dumps(host.to_dict()))
    out = run("domcapabilities", "--host", str(path), "--properties", "--abstract")
    assert out.returncode == 0, out.stderr
    assert out.stdout == tostring(document(cpu_caps(host, detail=True, abstract=True)))
    out = run("domcapabilities", "--host", str(path), "--format", "json", "--properties", "--abstract")
    data = json.loads(out.stdout)
    assert list(data) == ["host", *MODES]
    assert data["host"] == {"name": "neoverse-n1", "kernel": host.kernel, "fingerprint": host.fingerprint}
    assert data["host-model"]["model"] == "neoverse-n1-v1" and data["host-model"]["vendor"] == "ARM"
    assert data["host-model"]["properties"]["feat_AES"] == {**supported(host)["feat_AES"], "model": "off"}
    assert {"policy": "require", "name": "feat_AES"} in data["host-model"]["features"]
    models = {m["name"]: m for m in data["custom"]["models"]}
    assert list(models) == list(catalog_definitions()[0])
    assert models["neoverse-n1-v1"] == {"name": "neoverse-n1-v1", "vendor": "ARM", "usable": True}
    blocked = models["neoverse-v1-v1"]
    assert blocked["usable"] is False and blocked["fix"] is None  # 6.12: MIDR is not writable
    assert {"register": "", "field": "sve", "property": "vcpu_features", "requested": "sve", "host": "absent",
            "supported": ["pmu-v3", "psci-0.2"], "reason": "the VM uses the vCPU feature sve, which this host's "
            "KVM does not offer"} in blocked["blockers"]
    # 7.3 (writable implementation ID registers): the lab's neoverse-v1 lacks pointer auth only
    v1 = lab_host("7.3", "neoverse-v1")
    path.write_text(json.dumps(v1.to_dict()))
    data = json.loads(run("domcapabilities", "--host", str(path), "--format", "json", "--properties").stdout)
    assert data["host-model"]["supported"] is False and data["host-model"]["model"] is None
    models = {m["name"]: m for m in data["custom"]["models"]}
    assert models["neoverse-v1-v1"]["fix"] == {"pauth": "off"}
    assert check(realize("neoverse-v1-v1,pauth=off"), v1).usable
    xml = run("domcapabilities", "--host", str(path), "--properties").stdout
    assert '<acf:fix model="neoverse-v1-v1" possible="yes" spec="neoverse-v1-v1,pauth=off">' in xml
    path.write_text(json.dumps(host.to_dict()))
    plain = run("domcapabilities", "--host", str(path), "--no-extensions")
    assert NS not in plain.stdout and "<blockers model=" in plain.stdout


@pytest.mark.parametrize("args, message", [
    (["--host", "absent.json"], "snapshot absent.json: no such file"),
    (["--host", "x.json", "--connect", "test:///default", "--format", "json"], "--format json describes the CPU"),
])
def test_cli_errors_one_line(args, message):
    out = run("domcapabilities", *args)
    assert out.returncode == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_bench_reports_the_whole_catalog():
    from arm_cpu_filter.testing.bench.libvirt import bench_all

    figures = bench_all(quick=True)
    assert figures["domcaps_models"] == len(catalog_definitions()[0])
    assert figures["domcaps_ms"] > 0 and figures["domcaps_cold_ms"] > 0  # figures, not timed assertions


def test_bootstrap_hook_is_idempotent():
    """Once libvirt >= 10.9 is installed, the hook does nothing (and says nothing)."""
    from pathlib import Path

    hook = Path(__file__).resolve().parents[2] / "tools" / "bootstrap.d" / "libvirt.sh"
    out = subprocess.run(["bash", str(hook)], capture_output=True, text=True)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


CPU_MODELS = ["a64fx-v1", "altra-v1", "cortex-a57-v1", "cortex-a72-v1", "cortex-a76-v1", "grace-v1", "graviton2-v1",
              "graviton3-v1", "graviton4-v1", "kunpeng-920-v1", "neoverse-n1-v1", "neoverse-n2-v1", "neoverse-v1-v1",
              "neoverse-v2-v1"]
ABSTRACT_MODELS = ["armv8.0-a-v1", "armv8.1-a-v1", "armv8.2-a-v1", "armv8.3-a-v1", "armv8.4-a-v1", "armv8.5-a-v1",
                   "armv8.6-a-v1", "armv9.0-a-v1", "armv9.1-a-v1", "armv9.2-a-v1", "kvm-base-v1"]


@pytest.mark.parametrize("sample, max_bytes, max_elements", [("graviton3", 12_000, 260), ("altra", 18_000, 420)])
def test_default_document_is_compact_like_libvirts(sample, max_bytes, max_elements):
    """By default: the catalog's CPU models with verdicts and <blockers>, no per-property rows
    (165 KB / 1473 elements on graviton3 before, 9.9 KB / 240 after; altra 211 KB -> 15 KB)."""
    from arm_cpu_filter.samples import sample_host

    text = run("domcapabilities", "--host", sample).stdout
    root = etree.fromstring(text.encode())
    assert_valid(root)
    assert len(text.encode()) < max_bytes and sum(1 for _ in root.iter()) < max_elements
    assert "supports=" not in text and root.find(f".//{A}property") is None
    assert root.find(f".//{A}blocker") is None and root.find(f".//{A}fix") is None
    c = custom(root)
    assert [m.text for m in c.findall("model")] == CPU_MODELS
    host = sample_host(sample)
    for el in c.findall("model"):  # every verdict and blocker list is still the engine's
        verdict = check(realize(el.text), host)
        assert el.get("usable") == ("yes" if verdict.usable else "no")
        blockers = c.find(f"blockers[@model='{el.text}']")
        names = [] if blockers is None else [f.get("name") for f in blockers]
        assert names == list(dict.fromkeys(map(blocker_name, verdict.blockers)))
    detailed = run("domcapabilities", "--host", sample, "--properties").stdout
    assert len(detailed) > 5 * len(text) and 'supports="' in detailed


def test_abstract_models_only_when_asked_and_marked():
    out = run("domcapabilities", "--host", "altra", "--abstract")
    root = etree.fromstring(out.stdout.encode())
    assert_valid(root)
    models = custom(root).findall("model")
    assert sorted(m.text for m in models) == sorted(CPU_MODELS + ABSTRACT_MODELS)
    assert sorted(m.text for m in models if m.get(f"{A}abstract") == "yes") == ABSTRACT_MODELS
    data = json.loads(run("domcapabilities", "--host", "altra", "--format", "json").stdout)
    assert [m["name"] for m in data["custom"]["models"]] == CPU_MODELS
    assert "properties" not in data["host-model"]
    n1 = next(m for m in data["custom"]["models"] if m["name"] == "neoverse-n1-v1")
    assert n1 == {"name": "neoverse-n1-v1", "vendor": "ARM", "usable": False,
                  "blockers": ["cpu_variant", "REVIDR_EL1", "feat_IESB", "feat_EVT"]}
    data = json.loads(run("domcapabilities", "--host", "altra", "--format", "json", "--abstract").stdout)
    assert [m["name"] for m in data["custom"]["models"] if m.get("abstract")] == ABSTRACT_MODELS


def test_one_spelling_per_vendor():
    """libvirt's spelling wins over a model file's ('Arm' -> 'ARM'), so no vendor shows twice."""
    caps = cpu_caps(lab_host("7.3", "neoverse-n1"), abstract=True)
    vendors = {m.name: m.vendor for m in caps.models}
    assert vendors["armv8.0-a-v1"] == vendors["neoverse-n1-v1"] == "ARM"
    assert vendors["kvm-base-v1"] == "KVM" and vendors["a64fx-v1"] == "Fujitsu"
    assert len({v.lower() for v in vendors.values()}) == len(set(vendors.values()))
