"""The CPU section of domain capabilities, as data: what ``domcaps`` renders as XML and the
CLI prints as JSON.  Everything comes from the engine (``check``, ``supported``, ``fix``) over
the catalog's realized models; this module only chooses and arranges.

By default it is as compact as libvirt's own: each model's verdict and blockers, the
host-model.  ``detail`` adds the per-property data (host value, accepted values), each
blocker's register field and each blocked model's fix; ``abstract`` adds the catalog's
abstract models (kvm-base, architecture levels), which no host is.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from arm_cpu_filter.engine import Blocker, check, fix, fix_model, supported
from arm_cpu_filter.engine.supported import COMPOSITE
from arm_cpu_filter.models import catalog, is_abstract, realize
from arm_cpu_filter.models.realization import composite_values
from arm_cpu_filter.properties import BOOL, ENUM, FRACTION, properties
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot
from arm_cpu_filter.table import load_table

DATA = Path(__file__).with_name("data")

#: Property values meaning "feature absent" (NI; boolean off; fraction 0.0).
_ABSENT = frozenset({"off", "0", "0.0"})
#: Property kinds that read as features (present / absent) in libvirt's <feature> terms.
_FEATURE_KINDS = frozenset({ENUM, BOOL, FRACTION})


@cache
def _vendors() -> dict[int, str]:
    data = tomllib.loads((DATA / "vendors.toml").read_text())
    return {int(code, 16): name for code, name in data["implementer"].items()}


def vendor(definition: CpuDefinition, declared: str | None = None) -> str:
    """libvirt's vendor name for the MIDR_EL1.Implementer a definition presents; else the
    vendor its model file declares, spelled as libvirt spells it when libvirt knows it ('Arm'
    is 'ARM'); else 'unknown' (libvirt's word)."""
    midr = definition.registers.get("MIDR_EL1")
    if midr is not None:
        name = _vendors().get(load_table().field("MIDR_EL1.Implementer").extract(midr))
        if name:
            return name
    if not declared:
        return "unknown"
    return next((v for v in _vendors().values() if v.lower() == declared.lower()), declared)


def blocker_name(b: Blocker) -> str:
    """The name a blocker goes by in ``<blockers>``: its property, vCPU feature or register."""
    if b.property == "vcpu_features":
        return b.field or b.requested
    return b.property or b.register


@dataclass(frozen=True)
class ModelCaps:
    """One catalog model on the host: verdict, blockers and the fix (None: no fix)."""

    name: str
    vendor: str
    usable: bool
    blockers: tuple[Blocker, ...] = ()
    fix: Mapping[str, str] | None = None
    #: a catalog model no CPU is (kvm-base, architecture levels): listed only when asked
    abstract: bool = False

    @property
    def blocker_names(self) -> list[str]:
        return list(dict.fromkeys(blocker_name(b) for b in self.blockers))

    @property
    def fix_spec(self) -> str | None:
        """``MODEL,PROP=VAL,...`` that the host accepts (None: no fix through writable fields)."""
        if self.fix is None:
            return None
        return ",".join([self.name, *(f"{k}={v}" for k, v in self.fix.items())])

    def to_dict(self, detail: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "vendor": self.vendor, "usable": self.usable}
        if self.abstract:
            out["abstract"] = True
        if not self.usable:
            out["blockers"] = [b.to_dict() for b in self.blockers] if detail else self.blocker_names
            if detail:
                out["fix"] = None if self.fix is None else dict(self.fix)
        return out


@dataclass(frozen=True)
class CpuCaps:
    """The four CPU modes for one host, in libvirt's order (see ``MODES``)."""

    host: HostSnapshot
    models: tuple[ModelCaps, ...]
    #: The best usable model (host-model), None when no catalog model is usable.
    host_model: str | None
    #: policy ('require' | 'disable') and property, for the host-model's differences from the host.
    host_model_features: tuple[tuple[str, str], ...]
    #: per property: type, value (the host's), model (host-model's value), writable, supported.
    properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: whether the per-property detail was asked for (properties, blocker fields, fixes)
    detail: bool = True

    @property
    def host_model_vendor(self) -> str | None:
        return next((m.vendor for m in self.models if m.name == self.host_model), None)

    def to_dict(self) -> dict[str, Any]:
        host_model: dict[str, Any] = {
            "supported": self.host_model is not None,
            "model": self.host_model,
            "vendor": self.host_model_vendor,
            "features": [{"policy": p, "name": n} for p, n in self.host_model_features],
        }
        if self.detail:
            host_model["properties"] = {k: dict(v) for k, v in self.properties.items()}
        return {
            "host": {"name": self.host.host, "kernel": self.host.kernel, "fingerprint": self.host.fingerprint},
            "host-passthrough": {"supported": True},
            "maximum": {"supported": True},
            "host-model": host_model,
            "custom": {"supported": bool(self.models), "models": [m.to_dict(self.detail) for m in self.models]},
        }


#: libvirt's order of the CPU modes (domaincaps.rng ``cpu``: cpuHost, cpuMax, cpuHostModel, cpuCustom).
MODES = ("host-passthrough", "maximum", "host-model", "custom")


def catalog_definitions() -> tuple[dict[str, CpuDefinition], dict[str, str]]:
    """Every catalog model realized (catalog order), and the vendor each model file declares."""
    models = catalog()
    return {name: realize(name) for name in models}, {name: m.vendor for name, m in models.items()}


def _distance(definition: CpuDefinition, host: HostSnapshot) -> int:
    """How many fields (and vCPU features) differ between a definition and the host."""
    table = load_table()
    n = len(definition.vcpu_features ^ host.vcpu_features)
    for name, value in definition.registers.items():
        diff = value ^ host.registers.get(name, value)
        if not diff:
            continue
        reg = table.get(name)
        n += sum(1 for f in reg.fields if f.mask & diff) if reg is not None else 1
    return n


def _feature_delta(definition: CpuDefinition, props: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """libvirt-style host-model features: 'require' what the host has beyond the model,
    'disable' what the model has that the host lacks (features only: present/absent)."""
    out = []
    for prop in properties():
        info = props.get(prop.name)
        if info is None or prop.kind not in _FEATURE_KINDS:
            continue
        mine = prop.read(definition.registers)
        host_has, model_has = info["value"] not in _ABSENT, mine not in _ABSENT
        if host_has and not model_has:
            out.append(("require", prop.name))
        elif model_has and not host_has:
            out.append(("disable", prop.name))
    return out


def _model_value(name: str, info: Mapping[str, Any], definition: CpuDefinition) -> str:
    """A definition's value of one ``supported`` entry: a property's, or a composite's on/off."""
    if info["type"] == COMPOSITE:
        return composite_values(definition.registers, definition.vcpu_features)[name]
    return properties().get(name).read(definition.registers)


def _model_fix(name: str, host: HostSnapshot) -> dict[str, str] | None:
    """A catalog model's fix as overrides its realization accepts (``engine.fix_model``)."""
    model_fix = fix_model(name, host)
    return model_fix.overrides if model_fix.usable else None


def cpu_caps(host: HostSnapshot, models: Mapping[str, CpuDefinition] | None = None,
             vendors: Mapping[str, str] | None = None, *, detail: bool = False,
             abstract: bool = False) -> CpuCaps:
    """The CPU capabilities of ``host`` for ``models`` (default: the catalog, without its abstract
    models unless ``abstract``).  The host-model is the closest usable model that is a CPU.

    ``detail``: also each property's values and each blocked model's fix (catalog models get
    theirs from ``engine.fix_model``, overrides that realize; other definitions from the
    engine's register-level ``fix``).
    ``vendors``: a model's declared vendor, used when its MIDR implementer is not a known one."""
    from_catalog = models is None
    if models is None:
        models, vendors = catalog_definitions()
    vendors = vendors or {}
    entries: list[ModelCaps] = []
    best: tuple[int, str] | None = None
    for name, definition in models.items():
        no_cpu = from_catalog and is_abstract(definition)
        if no_cpu and not abstract:
            continue
        verdict = check(definition, host)
        repair = None
        if detail and not verdict.usable:
            repair = _model_fix(name, host) if from_catalog else fix(definition, host, verdict)
        entries.append(ModelCaps(name, vendor(definition, vendors.get(name)), verdict.usable,
                                 verdict.blockers, repair, no_cpu))
        if verdict.usable and not no_cpu:
            key = (_distance(definition, host), name)
            best = key if best is None or key < best else best
    host_props = supported(host)
    props: dict[str, dict[str, Any]] = {}
    features: list[tuple[str, str]] = []
    chosen = models[best[1]] if best else None
    if detail:
        for name, info in host_props.items():
            entry = dict(info)
            if chosen is not None:
                entry["model"] = _model_value(name, info, chosen)
            props[name] = entry
    if chosen is not None:
        features = _feature_delta(chosen, host_props)
    return CpuCaps(host, tuple(entries), best[1] if best else None, tuple(features), props, detail)
