"""Fuzz targets for the JSON inputs: host snapshot files and CPU definition files, read the way
``check --host FILE`` / ``check --definition FILE`` read them (``snapshot.files``), then used.

A file that loads must also be usable: it survives a write/read round trip with the same
fingerprint, the engine checks against it, and (every ``RENDER_EVERY``-th loaded snapshot, to keep
100,000 cases affordable) its domain capabilities document renders.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from arm_cpu_filter.testing.fuzz import Target, scratch_dir
from arm_cpu_filter.testing.fuzz.mutate import dump_json, mutate_json

TOKENS = (b"{", b"}", b"[", b"]", b":", b",", b'"', b"null", b"true", b"false", b"1e999", b"-0", b"NaN", b"-Infinity",
          b'"0x', b'"0xffffffffffffffff"', b'"0x10000000000000000"', b'"registers"', b'"writable_masks"',
          b'"vcpu_features"', b'"format"', b"1", b"2", b'"host"', b'"kernel"', b'"capabilities"', b"\\u0000", b"\\ud800",
          b'"ID_AA64PFR0_EL1"', b'"MIDR_EL1"', b'"sve"', b"[[[[[[[[", b"]]]]]]]]", b"{{{{", b"\xef\xbb\xbf")
KEYS = ("format", "host", "kernel", "source", "taken_at", "registers", "writable_masks", "vcpu_features",
        "capabilities", "writable_impl_id_regs", "provenance", "name")
KERNELS = ("6.12.95", "6.7", "6.6.0", "5.15.0-91-generic", "7.3.0-rc1", "6.15", "99999999999999999999.1", "6", "v6.12")
RENDER_EVERY = 16


def _words() -> tuple[str, ...]:
    from arm_cpu_filter.table import load_table, vcpu_features

    regs = [r.name for r in load_table().registers]
    return (*KEYS, *KERNELS, *regs, *(r.lower() for r in regs[:8]), "ID_AA64ZZZ_EL1", *vcpu_features())


class _JsonFileTarget(Target):
    """Generated JSON written to a file and read by the product's loader."""

    tokens = TOKENS

    def open(self) -> None:
        self._dir = scratch_dir("acf-fuzz-")
        self.path = self._dir / "input.json"
        self.words = _words()

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def structural(self, seed: dict, rng: random.Random) -> Any:
        return mutate_json(seed, rng, self.words)

    def encode(self, value: Any, rng: random.Random) -> bytes:
        return dump_json(value, rng)

    def write(self, data: bytes) -> Path:
        self.path.write_bytes(data)
        return self.path


def _round_trip(obj: Any, loads: Any) -> None:
    from arm_cpu_filter.snapshot import dumps

    again = loads(dumps(obj))
    if again.fingerprint != obj.fingerprint:
        raise AssertionError(f"write/read round trip changes the fingerprint of {obj.fingerprint[:12]}")


class SnapshotTarget(_JsonFileTarget):
    name = "snapshot"
    description = "HostSnapshot files (snapshot.files.load_snapshot) -> round trip, engine check, domain capabilities"

    def open(self) -> None:
        super().open()
        from arm_cpu_filter.models import realize

        self.definitions = [realize("kvm-base-v1"), realize("neoverse-n1-v1,sve=off")]
        self.loaded = 0

    def seeds(self) -> list[dict]:
        from arm_cpu_filter.samples import sample_hosts

        return [s.to_dict() for s in sample_hosts().values()]

    def run(self, case: bytes) -> None:
        from arm_cpu_filter.engine import check
        from arm_cpu_filter.snapshot import loads
        from arm_cpu_filter.snapshot.files import load_snapshot

        snap = load_snapshot(self.write(case))
        _round_trip(snap, loads)
        for definition in self.definitions:
            check(definition, snap)
        self.loaded += 1
        if self.loaded % RENDER_EVERY == 1:
            from arm_cpu_filter.libvirt import domain_capabilities

            domain_capabilities(snap, {"kvm-base-v1": self.definitions[0]})
        return None


class DefinitionTarget(_JsonFileTarget):
    name = "definition"
    description = "CPU definition files (snapshot.files.load_definition) -> round trip, engine check and fix"

    def open(self) -> None:
        super().open()
        from arm_cpu_filter.samples import sample_host

        self.hosts = [sample_host("graviton2"), sample_host("neoverse-v1")]

    def seeds(self) -> list[dict]:
        from arm_cpu_filter.models import catalog, realize
        from arm_cpu_filter.samples import sample_hosts

        models = [realize(name).to_dict() for name in catalog()]
        models.append(realize("graviton3-v1,feat_AES=aes,sve=off").to_dict())
        return models + [s.to_dict() for s in list(sample_hosts().values())[:4]]

    def run(self, case: bytes) -> None:
        from arm_cpu_filter.engine import check, fix
        from arm_cpu_filter.snapshot import loads_definition
        from arm_cpu_filter.snapshot.files import load_definition

        definition = load_definition(self.write(case))
        _round_trip(definition, loads_definition)
        for host in self.hosts:
            verdict = check(definition, host)
            if not verdict.usable:
                fix(definition, host, verdict)
        return None
