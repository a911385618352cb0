"""HostSnapshot format 1: load, validate, save, fingerprint; bad input names the culprit."""

from __future__ import annotations

import json

import pytest

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.snapshot import HostSnapshot, dumps, loads, loads_definition

GOOD = {
    "format": 1, "host": "compute-17", "kernel": "6.12.95", "source": "kvm",
    "vcpu_features": ["psci-0.2", "pmu-v3", "sve", "ptrauth-address", "ptrauth-generic"],
    "registers": {"ID_AA64ISAR0_EL1": "0x1221111110212120", "MIDR_EL1": "0x00000000000f0510"},
    "writable_masks": {"ID_AA64ISAR0_EL1": "0xfffffffffffffff0"},
    "capabilities": {"writable_impl_id_regs": True},
}


def test_round_trip_and_fingerprint_ignores_host_name():
    snap = HostSnapshot.from_dict(GOOD)
    again = loads(dumps(snap))
    assert again.to_dict() == snap.to_dict()
    assert again.fingerprint == snap.fingerprint
    renamed = HostSnapshot.from_dict({**GOOD, "host": "compute-18", "source": "file"})
    assert renamed.fingerprint == snap.fingerprint
    changed = HostSnapshot.from_dict({**GOOD, "registers": {**GOOD["registers"], "MIDR_EL1": "0x1"}})
    assert changed.fingerprint != snap.fingerprint
    assert snap.kernel_version == (6, 12, 95) and snap.writable_impl_id_regs


def test_unknown_keys_ignored_unknown_registers_kept_short_names_canonical():
    snap = HostSnapshot.from_dict({**GOOD, "future_key": 1, "registers": {"ID_AA64ISAR0": "0x1", "S3_0_C0_C7_7": "0x2"}})
    assert dict(snap.registers) == {"ID_AA64ISAR0_EL1": 1, "S3_0_C0_C7_7": 2}


def test_no_masks_key_means_old_kernel():
    d = {k: v for k, v in GOOD.items() if k != "writable_masks"}
    assert HostSnapshot.from_dict(d).writable_masks is None


def test_snapshot_used_as_definition():
    snap = HostSnapshot.from_dict(GOOD)
    d = loads_definition(dumps(snap))
    assert dict(d.registers) == dict(snap.registers) and d.vcpu_features == snap.vcpu_features
    assert d.fingerprint == snap.as_definition().fingerprint


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(format=3), "unsupported format 3 (this version reads formats 1 and 2)"),
        (lambda d: d.update(format=2), "format 2 needs the key 'kvm'"),
        (lambda d: d.pop("kernel"), "missing key 'kernel'"),
        (lambda d: d.update(kernel="banana"), "kernel 'banana' is not a Linux version"),
        (lambda d: d["registers"].update(ID_AA64ISAR0_EL1="0x1" + "0" * 16), "wider than 64 bits"),
        (lambda d: d["registers"].update(ID_AA64ISAR0_EL1=12.5), "ID_AA64ISAR0_EL1: expected a hex string"),
        (lambda d: d["registers"].update(ID_AA64ISAR0_EL1="zz"), "ID_AA64ISAR0_EL1: expected a hex string"),
        (lambda d: d.update(registers=[1, 2]), "registers: expected an object"),
        (lambda d: d.update(vcpu_features=["sme"]), "unknown vCPU feature 'sme'"),
        (lambda d: d.update(capabilities={"writable_impl_id_regs": "yes"}), "capabilities must be an object"),
        (lambda d: d["registers"].update({"bad name!": "0x0"}), "'bad name!' is not a register name"),
    ],
)
def test_bad_snapshots_name_the_culprit(mutate, message):
    d = json.loads(json.dumps(GOOD))
    mutate(d)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HostSnapshot.from_dict(d)


def test_not_json():
    with pytest.raises(InputError, match="not valid JSON"):
        loads("{nope")
    with pytest.raises(InputError, match="expected a JSON object"):
        loads("[1]")
