"""Fuzz target for flavor extra specs: each ``arm_cpu:`` spec through Nova's own validator
registry (what the compute API runs when a flavor is created; ``ValidationError`` is its
documented refusal), then the whole set through the scheduler's request resolution
(``scheduler.request.resolve``, which must never raise: a bad request fails closed) and the
fleet's admission over a real file store holding the sample hosts."""

from __future__ import annotations

import random
import re
import shutil
import time
import uuid as uuidlib
from typing import Any

from arm_cpu_filter.testing.fuzz import Target, scratch_dir
from arm_cpu_filter.testing.fuzz.mutate import freeform, mutate_bytes, mutate_json, text

SEEDS = (
    {},
    {"hw:cpu_policy": "dedicated"},
    {"arm_cpu:mode": "host-passthrough"},
    {"arm_cpu:model": "grace-v1"},
    {"arm_cpu:model": "graviton3-v1", "arm_cpu:mode": "custom", "arm_cpu:feat_AES": "aes", "arm_cpu:sve": "off"},
    {"arm_cpu:model": "neoverse-n1-v1", "arm_cpu:hw_prop_DIC": "off", "hw:mem_page_size": "large"},
    {"arm_cpu:model": "a64fx-v1", "arm_cpu:SYSREG_ID_AA64ISAR0_EL1_RDM": "0"},
    {"arm_cpu:model": "graviton2-v1", "arm_cpu:feat_CSV2": "1.0", "arm_cpu:pmu": "on"},
)
INSTANCES = ("0f2b7c3e-5d1a-4e8b-9c6f-1a2b3c4d5e6f", "7a9d0e1f-2b3c-4d5e-8f90-a1b2c3d4e5f6")
REFRESH_EVERY = 500


class ExtraSpecsTarget(Target):
    name = "extra-specs"
    description = "flavor extra specs: Nova's arm_cpu validators, then scheduler request resolution and admission"
    needs = ("nova",)
    #: validator refusals and failed-closed requests are counted by ``run``; nothing may raise
    documented = ()
    tokens = (b"arm_cpu:", b":", b",", b"=", b"model", b"mode", b"custom", b"host-passthrough", b"-v1", b"on", b"off",
              b"feat_", b"hw_prop_", b"SYSREG_", b" ", b"\x00")

    def open(self) -> None:
        from nova import exception
        from nova.api.validation.extra_specs import validators

        from arm_cpu_filter.models import catalog, realize
        from arm_cpu_filter.samples import sample_hosts
        from arm_cpu_filter.scheduler.fleet import Fleet
        from arm_cpu_filter.store.files import FileStore
        from arm_cpu_filter.testing.fuzz.model_targets import vocabulary

        self.validators, self.validation_error = validators, exception.ValidationError
        self.ours = [v for v in validators.VALIDATORS.values() if v.name.startswith("arm_cpu:")]
        self._dir = scratch_dir("acf-fuzz-store-")
        store = FileStore(self._dir)
        now = time.time()
        hosts = sample_hosts()
        for name, snap in hosts.items():
            store.publish(snap, host=name, taken_at=now)
        store.withdraw("altra", "fuzz: a host whose agent withdrew its data")
        store.record_instance(INSTANCES[0], hosts["graviton2"].as_definition(), "graviton2")
        store.record_instance(INSTANCES[1], realize("neoverse-n1-v1"), "neoverse-n1")
        self.fleet = Fleet(store, max_age=86400, refresh_interval=86400)
        self.uuids = (None, None, *INSTANCES, str(uuidlib.UUID(int=7)), "not-a-uuid", "")
        self.ignores = (None, [], ["graviton2"], ["altra"], ["no-such-host"], ["../etc"], ["graviton3", "grace"])
        props, values = vocabulary()
        self.words = ("arm_cpu:model", "arm_cpu:mode", "arm_cpu:", "arm_cpu", "arm_cpu:arm_cpu:model", "custom",
                      "host-passthrough", "host-model", *(f"arm_cpu:{p}" for p in props), *catalog(), *values)
        self.cases = 0

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def seeds(self) -> tuple[dict, ...]:
        return SEEDS

    def _specs(self, seed: dict, kind: str, rng: random.Random) -> dict[str, Any]:
        if kind == "freeform":
            return {"arm_cpu:" + self._text(freeform(rng, self.tokens), rng): self._text(freeform(rng), rng)}
        specs = dict(seed)
        if kind in ("structural", "mixed"):
            out = mutate_json(specs, rng, self.words)
            specs = {str(k): v for k, v in out.items()} if isinstance(out, dict) else {}
        if kind in ("bytes", "mixed") and specs:
            key = rng.choice(list(specs))
            value = specs.pop(key)
            if rng.random() < 0.5:
                key = self._text(mutate_bytes(key.encode("utf-8", "surrogatepass"), rng, self.tokens, 2), rng)
            else:
                value = self._text(mutate_bytes(str(value).encode("utf-8", "surrogatepass"), rng, self.tokens, 2), rng)
            specs[key] = value
        return specs

    def _validate(self, name: str, value: str) -> set[str]:
        """Nova's ``validators.validate`` for an ``arm_cpu:`` name: its exact-name lookup, then its
        pattern scan, here over our namespace's validators only (no other namespace's can match an
        ``arm_cpu:`` name, and scanning all of Nova's 528 patterns overflows Python's regex cache:
        about 0.1 s per unknown name), then its refusal of an unknown name in a known namespace."""
        validator = self.validators.VALIDATORS.get(name) or next(
            (v for v in self.ours if re.fullmatch(v.name_regex, name)), None)
        if validator is None:  # Nova refuses it with a ValidationError too
            return {"ValidationError"}
        try:
            validator.validate(name, value)
        except self.validation_error:
            return {"ValidationError"}
        return set()

    @staticmethod
    def _text(data: bytes, rng: random.Random) -> str:
        return data.decode("utf-8", "surrogateescape" if rng.random() < 0.1 else "replace")

    def case(self, seed: dict, kind: str, rng: random.Random) -> tuple[dict, str | None, list | None]:
        uuid = rng.choice(self.uuids) if rng.random() < 0.9 else text(rng)
        return self._specs(seed, kind, rng), uuid, rng.choice(self.ignores)

    def run(self, case: tuple[dict, str | None, list | None]) -> str | None:
        from arm_cpu_filter.scheduler.request import resolve

        specs, uuid, ignore = case
        refused = set()
        for key, value in specs.items():
            # The API's JSON schema passes only string values on to the validators.
            if key.startswith("arm_cpu:") and isinstance(value, str):
                refused.update(self._validate(key, value))
        self.cases += 1
        if self.cases % REFRESH_EVERY == 0:
            self.fleet.refresh(force=True)  # what the scheduler does every refresh interval
        request = resolve(self.fleet, specs, uuid, ignore)  # must not raise: fails closed instead
        if request.problem:
            refused.add("fails closed")
        else:
            self.fleet.accepting(request.definition)
        return " + ".join(sorted(refused)) or None
