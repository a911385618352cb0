"""The generators' committed inputs (tools/inputs): every file is listed with its origin and
sha256, the digests hold, and a missing input is an error naming the file, never a skip."""

from __future__ import annotations

import pytest

from tools import inputs


def test_every_committed_input_is_in_the_manifest_and_matches_its_digest():
    listed = inputs.manifest()
    present = {p.relative_to(inputs.HERE).as_posix() for p in inputs.HERE.rglob("*")
               if p.is_file() and p.suffix != ".pyc" and p.name not in ("SOURCES.toml", "__init__.py")}
    assert present == set(listed)
    wrong = {name: entry["sha256"] for name, entry in listed.items() if inputs.sha256(inputs.path(name)) != entry["sha256"]}
    assert wrong == {}
    assert all(entry["origin"] for entry in listed.values())
    assert len(listed) == 51  # 5 kernel files, 33 host dumps, 1 hwcap-derived input, the lab notes, 11 model references


def test_a_missing_input_names_the_file():
    with pytest.raises(inputs.MissingInput, match=r"committed input tools/inputs/hosts/nope\.json is missing"):
        inputs.path("hosts/nope.json")


def test_upstream_origin_is_kept():
    assert inputs.origin("linux/sysreg") == "torvalds/linux@5f44f603b0daeda535b6d307cd02ef9a24b3b8c5:arch/arm64/tools/sysreg"
    assert inputs.origin("hosts/graviton2.firecracker-fingerprint-6.18host.json").startswith("firecracker-microvm/firecracker")
