"""The host agent against a real libvirt (the in-process test driver, ``test:///FILE``):
records new host-passthrough Nova instances, skips other domains, writes a provider config
that Nova's own provider-config parser accepts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

libvirt = pytest.importorskip("libvirt")

from arm_cpu_filter.agent import run_once  # noqa: E402
from arm_cpu_filter.agent.domains import list_domains, parse_domain  # noqa: E402
from arm_cpu_filter.agent.provider_config import provider_config, trait_name  # noqa: E402
from arm_cpu_filter.engine.catalog import usable_models  # noqa: E402
from arm_cpu_filter.samples import sample_host  # noqa: E402
from arm_cpu_filter.store import open_store  # noqa: E402

VM_PT = "6f1c3a52-8d3e-4d8b-9a43-1c2f3e4d5a61"
VM_CUSTOM = "7a2d4b63-9e4f-4e9c-8b54-2d3f4e5a6b72"

NODE = f"""<node>
  <domain type='test'>
    <name>instance-00000001</name><uuid>{VM_PT}</uuid>
    <metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="34.0.0"/><nova:name>web-1</nova:name></nova:instance></metadata>
    <memory>1048576</memory><cpu mode='host-passthrough'/><os><type arch='aarch64'>hvm</type></os>
  </domain>
  <domain type='test'>
    <name>instance-00000002</name><uuid>{VM_CUSTOM}</uuid>
    <metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.2">
      <nova:name>db-1</nova:name></nova:instance></metadata>
    <memory>1048576</memory><cpu mode='custom'><model>cortex-a57</model></cpu>
    <os><type arch='aarch64'>hvm</type></os>
  </domain>
  <domain type='test'>
    <name>not-nova</name><uuid>11111111-2222-4333-8444-555555555555</uuid>
    <memory>1048576</memory><cpu mode='host-passthrough'/><os><type>hvm</type></os>
  </domain>
</node>
"""


@pytest.fixture
def libvirt_uri(tmp_path):
    path = tmp_path / "node.xml"
    path.write_text(NODE)
    return f"test://{path}"


def test_list_domains_from_real_libvirt(libvirt_uri):
    doms = {d.name: d for d in list_domains(libvirt_uri)}
    assert doms["instance-00000001"].instance == VM_PT
    assert doms["instance-00000001"].cpu_mode == "host-passthrough"
    assert doms["instance-00000002"].instance == VM_CUSTOM and doms["instance-00000002"].cpu_mode == "custom"
    assert doms["not-nova"].instance is None


def test_libvirt_errors_are_one_line():
    from arm_cpu_filter.errors import ArmCpuFilterError

    with pytest.raises(ArmCpuFilterError, match=r"^libvirt test:///nonexistent/node.xml: "):
        list_domains("test:///nonexistent/node.xml")


def test_round_records_new_passthrough_instances(tmp_path, libvirt_uri):
    store = open_store(f"file://{tmp_path}/store")
    g3 = sample_host("graviton3")
    yaml_path = tmp_path / "provider" / "arm-cpu-filter.yaml"
    report = run_once(store, g3, "compute-7", libvirt_uri, str(yaml_path))
    assert report.recorded == [VM_PT]
    assert report.skipped == {"instance-00000002": "CPU mode custom (the flavor defines its CPU)",
                              "not-nova": "not a Nova instance"}
    assert store.host("compute-7").fingerprint == g3.fingerprint
    rec = store.instance(VM_PT)
    assert rec.host == "compute-7"
    definition = store.definition(rec.fingerprint)
    assert definition.registers == g3.registers and definition.name == "compute-7"
    # next round: already known, nothing re-recorded
    again = run_once(store, g3, "compute-7", libvirt_uri, str(yaml_path))
    assert again.recorded == [] and again.known == [VM_PT]


def test_provider_config_is_accepted_by_nova(tmp_path, libvirt_uri):
    from nova.compute import provider_config as nova_pc

    store = open_store(f"file://{tmp_path}/store")
    snap = sample_host("graviton2-7.3")
    path = tmp_path / "arm-cpu-filter.yaml"
    report = run_once(store, snap, "g2-a", None, str(path))
    assert report.models == usable_models(snap)
    assert {"altra-v1", "graviton2-v1"} <= set(report.models)
    parsed = nova_pc._parse_provider_yaml(str(path))
    assert parsed["providers"][0]["identification"] == {"uuid": "$COMPUTE_NODE"}
    assert parsed["providers"][0]["traits"]["additional"] == sorted(trait_name(m) for m in report.models)
    assert "CUSTOM_ARM_CPU_MODEL_GRAVITON2_V1" in parsed["providers"][0]["traits"]["additional"]
    # and a host realizing no model still writes a valid file
    empty = tmp_path / "empty.yaml"
    empty.write_text(provider_config([], "g3-old"))
    assert nova_pc._parse_provider_yaml(str(empty))["providers"][0]["traits"]["additional"] == []


def test_parse_domain_rejects_garbage():
    from arm_cpu_filter.errors import ArmCpuFilterError

    with pytest.raises(ArmCpuFilterError, match="libvirt domain XML"):
        parse_domain("<domain>")


def test_agent_cli_once(tmp_path, libvirt_uri):
    url = f"file://{tmp_path}/store"
    out = subprocess.run(
        [sys.executable, "-m", "arm_cpu_filter", "agent", "--once", "--from-file", "graviton3", "--host", "c1",
         "--store-url", url, "--libvirt-uri", libvirt_uri, "--provider-config", str(tmp_path / "pc.yaml"),
         "--format", "json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["recorded"] == [VM_PT] and report["host"] == "c1"
    assert (tmp_path / "pc.yaml").exists()
    assert open_store(url).instance(VM_PT).host == "c1"


def test_agent_cli_without_kvm_says_so(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "arm_cpu_filter", "agent", "--once", "--host", "c1", "--no-libvirt",
         "--no-provider-config", "--store-url", f"file://{tmp_path}/store"],
        capture_output=True, text=True, timeout=120)
    if out.returncode == 0:
        pytest.skip("this machine has arm64 KVM")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "store" / "hosts").exists()  # nothing half-written
