"""Fuzzing of every input surface (``arm-cpu-filter fuzz``): each target feeds generated input into
the real entry point the product uses and sorts every case into ``ok``, ``refused`` (the documented
error, by class) or a bug (any other exception, a case slower than the per-case limit, memory growth).

Inputs come from hypothesis, starting from real seeds (bundled sample snapshots, catalog model
files, real libvirt documents) and mutated structurally and at byte level, plus free-form text.
Modules: ``mutate`` (mutations), ``runner`` (hypothesis driving, limits, report), one module per
family of targets.  Needs hypothesis (``pip install 'arm-cpu-filter[fuzz]'``).
"""

from __future__ import annotations

import importlib
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arm_cpu_filter.errors import ArmCpuFilterError

#: target name -> "module:class" (imported only when the target runs).
TARGETS = {
    "snapshot": "arm_cpu_filter.testing.fuzz.json_targets:SnapshotTarget",
    "definition": "arm_cpu_filter.testing.fuzz.json_targets:DefinitionTarget",
    "model-file": "arm_cpu_filter.testing.fuzz.model_targets:ModelFileTarget",
    "model-spec": "arm_cpu_filter.testing.fuzz.model_targets:ModelSpecTarget",
    "extra-specs": "arm_cpu_filter.testing.fuzz.nova_targets:ExtraSpecsTarget",
    "guest-xml": "arm_cpu_filter.testing.fuzz.xml_targets:GuestXmlTarget",
    "domcaps-merge": "arm_cpu_filter.testing.fuzz.xml_targets:DomcapsMergeTarget",
    "domain-xml": "arm_cpu_filter.testing.fuzz.xml_targets:DomainXmlTarget",
}

#: How a case is made from a seed; hypothesis draws one per case (repeats weigh the draw).
KINDS = ("seed", "structural", "structural", "structural", "bytes", "bytes", "mixed", "mixed", "freeform")


class FuzzSetupError(ArmCpuFilterError):
    """The fuzzer cannot run (hypothesis missing, unknown target)."""


class Target:
    """One input surface.  Subclasses give the seeds, the structural mutation, the encoding into
    what the entry point takes, and ``run`` (None: the input worked; a string: the entry point
    refused it without raising, e.g. a scheduler request that fails closed)."""

    name = ""
    description = ""
    #: modules the target needs (an optional extra); missing ones skip the target with a note
    needs: tuple[str, ...] = ()
    #: the documented errors: raising one of these is a refusal, anything else is a bug
    documented: tuple[type[BaseException], ...] = (ArmCpuFilterError,)
    #: byte-level tokens of the input format (inserted by byte mutations and free-form text)
    tokens: Sequence[bytes] = ()

    def open(self) -> None:
        """Prepare (temporary files, warm caches); called once before the cases."""

    def close(self) -> None:
        """Undo ``open``."""

    def seeds(self) -> Sequence[Any]:
        raise NotImplementedError

    def structural(self, seed: Any, rng: random.Random) -> Any:
        """A structurally mutated copy of ``seed`` (never changes ``seed``)."""
        raise NotImplementedError

    def encode(self, value: Any, rng: random.Random) -> Any:
        """``value`` as the entry point takes it (bytes by default)."""
        raise NotImplementedError

    def from_bytes(self, data: bytes) -> Any:
        """Byte-level input as the entry point takes it (identity for byte-level entry points)."""
        return data

    def case(self, seed: Any, kind: str, rng: random.Random) -> Any:
        from arm_cpu_filter.testing.fuzz.mutate import freeform, mutate_bytes

        if kind == "seed":
            return self.encode(seed, rng)
        if kind == "structural":
            return self.encode(self.structural(seed, rng), rng)
        if kind == "bytes":
            return self.from_bytes(mutate_bytes(self.to_bytes(self.encode(seed, rng)), rng, self.tokens))
        if kind == "mixed":
            data = self.to_bytes(self.encode(self.structural(seed, rng), rng))
            return self.from_bytes(mutate_bytes(data, rng, self.tokens, rng.randint(1, 3)))
        return self.from_bytes(freeform(rng, self.tokens))

    def to_bytes(self, value: Any) -> bytes:
        return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")

    def run(self, case: Any) -> str | None:
        raise NotImplementedError


def scratch_dir(prefix: str) -> Path:
    """A private temporary directory, in RAM (``/dev/shm``) when the system has one: the file
    targets write a file per case, and on a busy disk that write costs more than the case."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None))


def load_target(name: str) -> Target:
    """A fresh instance of target ``name``; FuzzSetupError for an unknown name."""
    spec = TARGETS.get(name)
    if spec is None:
        raise FuzzSetupError(f"unknown fuzz target {name!r} (targets: {', '.join(TARGETS)})")
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)()
