"""The command line: exit statuses, JSON shapes, one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from arm_cpu_filter.testing.bench.reference import MAX_612


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arm_cpu_filter", *args], capture_output=True, text=True)


@pytest.fixture
def files(tmp_path):
    snap = {
        "format": 1, "host": "max-612", "kernel": "6.12.95",
        "vcpu_features": ["psci-0.2", "pmu-v3", "sve", "ptrauth-address", "ptrauth-generic"],
        "registers": {k: f"0x{v:016x}" for k, (v, _) in MAX_612.items()},
        "writable_masks": {k: f"0x{m:016x}" for k, (_, m) in MAX_612.items()},
    }
    host = tmp_path / "host.json"
    host.write_text(json.dumps(snap))
    narrower = json.loads(json.dumps(snap))
    narrower["host"] = "narrow"
    narrower["registers"]["ID_AA64ISAR0_EL1"] = "0x1221111110212110"  # AES pmull -> aes
    wider = json.loads(json.dumps(snap))
    wider["registers"]["ID_AA64ISAR0_EL1"] = "0x1221111110212130"  # AES 3: more than the host
    (tmp_path / "narrow.json").write_text(json.dumps(narrower))
    (tmp_path / "wide.json").write_text(json.dumps(wider))
    return tmp_path


def test_check_usable_exit_0(files):
    out = run("check", "--definition", str(files / "narrow.json"), "--host", str(files / "host.json"), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"usable": True, "blockers": []}


def test_check_not_usable_exit_1_with_blockers(files):
    out = run("check", "--definition", str(files / "wide.json"), "--host", str(files / "host.json"), "--format", "json")
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["usable"] is False
    (b,) = result["blockers"]
    assert (b["register"], b["field"], b["property"], b["requested"], b["host"], b["supported"]) == (
        "ID_AA64ISAR0_EL1", "AES", "feat_AES", "3", "pmull", ["off", "aes", "pmull"])
    assert result["fix"] == {"feat_AES": "pmull"}
    text = run("check", "--definition", str(files / "wide.json"), "--host", str(files / "host.json"))
    assert "NOT usable" in text.stdout and "fix: feat_AES=pmull" in text.stdout


@pytest.mark.parametrize(
    "content, message",
    [
        ("{nope", "not valid JSON"),
        ('{"format": 7, "registers": {}}', "unsupported format 7"),
        ('{"format": 1, "registers": {"ID_AA64ISAR0_EL1": "0x11112222333344445"}}', "wider than 64 bits"),
        ('{"format": 1, "registers": {"ID_AA64ISAR0_EL1": true}}', "ID_AA64ISAR0_EL1: expected a hex string"),
    ],
)
def test_bad_definition_exit_2_one_line(files, content, message):
    bad = files / "bad.json"
    bad.write_text(content)
    out = run("check", "--definition", str(bad), "--host", str(files / "host.json"))
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_missing_file_and_unknown_names_exit_2(files):
    out = run("check", "--definition", str(files / "absent.json"), "--host", str(files / "host.json"))
    assert out.returncode == 2 and "no such file" in out.stderr
    out = run("decode", "ID_AA64BOGUS_EL1=0x1")
    assert out.returncode == 2 and "not an ID register" in out.stderr
    out = run("fields", "NOPE_EL1")
    assert out.returncode == 2 and "unknown ID register 'NOPE_EL1'" in out.stderr


def test_decode_names_values():
    out = run("decode", "ID_AA64ISAR0_EL1=0x0000100010211120", "--format", "json")
    assert out.returncode == 0
    rows = {r["field"]: r for r in json.loads(out.stdout)}
    assert rows["AES"]["value"] == "pmull" and rows["AES"]["name"] == "PMULL"
    assert rows["SHA2"]["value"] == "sha256" and rows["SM4"]["value"] == "off"


def test_supported_compare_baseline(files):
    out = run("supported", "--host", str(files / "host.json"), "--format", "json")
    sup = json.loads(out.stdout)
    assert sup["feat_AES"]["supported"] == ["off", "aes", "pmull"] and sup["feat_AES"]["value"] == "pmull"
    assert sup["feat_FP"]["writable"] is False
    out = run("compare", str(files / "host.json"), str(files / "narrow.json"), "--format", "json")
    assert json.loads(out.stdout)["result"] == "superset"
    assert json.loads(out.stdout)["responsible_properties"] == ["feat_AES"]
    out = run("baseline", str(files / "host.json"), str(files / "narrow.json"), "-o", str(files / "base.json"))
    assert out.returncode == 0, out.stderr
    base = json.loads((files / "base.json").read_text())
    assert base["registers"]["ID_AA64ISAR0_EL1"] == "0x1221111110212110"
    # commentary goes to stderr, so stdout (empty with -o) never mixes with the JSON
    assert out.stdout == "" and "max-612 gives up: feat_AES: pmull -> aes" in out.stderr


def test_every_subcommand_has_help():
    from arm_cpu_filter.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        out = run(name, "--help")
        assert out.returncode == 0 and "usage: arm-cpu-filter " + name in out.stdout


def test_snapshot_off_arm64_is_a_clear_error_and_from_file_rewrites(files):
    import platform

    out = run("snapshot")
    if platform.machine() != "aarch64":
        assert out.returncode == 2 and "not aarch64" in out.stderr and "--from-file" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    out = run("snapshot", "--from-file", str(files / "host.json"), "-o", str(files / "copy.json"))
    assert out.returncode == 0, out.stderr
    copy, original = (json.loads((files / n).read_text()) for n in ("copy.json", "host.json"))
    assert copy["registers"] == original["registers"]
