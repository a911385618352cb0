"""Realization: named model (+ overrides) -> the CpuDefinition a VM's guest sees.

Every register starts at the table default ("not implemented"); the parent chain is applied
root first, then the user's overrides; CLIDR_EL1 is derived from CTR_EL0 the way KVM does;
composites (sve/pauth/pmu) switch their field groups and vCPU features, ``aarch32`` caps the
exception levels at AArch64-only.  Nothing from a host
is read, so a field added to the table later keeps its default and changes no model.

Not emitted: registers KVM cannot set (DCZID_EL0: the guest reads the hardware), MPIDR (per
vCPU), and the AArch32 ID registers of a model without AArch32 EL0 (KVM makes them RAZ/WI on
such hosts and the guest has no AArch32 to use them).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.models.registry import (
    Capped,
    Model,
    Setting,
    capped_composites,
    catalog_key,
    chain,
    composite_spec,
    parse_setting,
)
from arm_cpu_filter.snapshot import CpuDefinition, has_aarch32_el0
from arm_cpu_filter.table import Field, RegisterTable, load_table, vcpu_features

#: Register kinds (table ``kvm``) whose fields without a kernel policy KVM always shows as 0.
_KVM_ZERO_KINDS = frozenset({"writable", "filtered", "aa32", "aa32-filtered", "hidden", "unallocated", "sanitised"})


@cache
def _clidr_values() -> dict[str, int]:
    data = tomllib.loads(Path(__file__).with_name("kvm-derived.toml").read_text())["clidr"]
    return {k: int(v, 16) for k, v in data.items()}


def derived_clidr(ctr: int) -> int:
    """CLIDR_EL1 as KVM fabricates it for a VM whose CTR_EL0 is ``ctr``."""
    values = _clidr_values()
    if not (ctr >> 28) & 1:  # IDC
        return values["idc0"]
    return values["idc1_dic1"] if (ctr >> 29) & 1 else values["idc1_dic0"]


@cache
def composite_masks() -> dict[str, dict[str, int]]:
    """Composite -> register -> mask of the fields it gates (from the table's vCPU features)."""
    feats = vcpu_features()
    out: dict[str, dict[str, int]] = {}
    capped = capped_composites()
    for comp, names in composite_spec()[1].items():
        if comp in capped:
            continue
        masks: dict[str, int] = {}
        for n in names:
            for reg, mask in feats[n].hides.items():
                masks[reg] = masks.get(reg, 0) | mask
        out[comp] = masks
    return out


@dataclass(frozen=True)
class _Base:
    """A model's chain applied (before overrides), cached per model."""

    chain: tuple[str, ...]
    regs: dict[str, int]
    setters: dict[str, tuple[str, str]]  # field qualname -> (model, property)
    composites: dict[str, tuple[str, str]]  # composite -> (value, model)
    clidr: tuple[Setting, ...]  # chain settings that target CLIDR_EL1 explicitly


def _apply(regs: dict[str, int], s: Setting) -> None:
    assert s.prop is not None
    for f, raw in zip(s.prop.fields, s.raws):
        regs[f.register] = f.insert(regs.get(f.register, 0), raw)


def _build_base(name: str, models: dict[str, Model] | None, table: RegisterTable) -> _Base:
    models_chain = chain(name, models)
    regs = {r.name: r.default for r in table.registers}
    setters: dict[str, tuple[str, str]] = {}
    comps: dict[str, tuple[str, str]] = {}
    clidr = []
    for model in models_chain:
        for s in model.settings:
            if s.prop is None:
                comps[s.name] = (s.value, model.name)
                continue
            _apply(regs, s)
            for f in s.prop.fields:
                setters[f.qualname] = (model.name, s.name)
            if any(f.register == "CLIDR_EL1" for f in s.prop.fields):
                clidr.append(s)
    return _Base(tuple(m.name for m in models_chain), regs, setters, comps, tuple(clidr))


@lru_cache(maxsize=1024)
def _base_cached(name: str, key: tuple[str, int | None]) -> _Base:
    """Per model and catalog state (``catalog_key``: the site models directory can change)."""
    return _build_base(name, None, load_table())


def base(name: str, models: dict[str, Model] | None = None, table: RegisterTable | None = None) -> _Base:
    if models is None and table is None:
        return _base_cached(name, catalog_key())
    return _build_base(name, models, table or load_table())


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``MODEL[,PROP=VAL...]`` -> (model name, overrides)."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("empty CPU model specification (expected MODEL[,PROP=VAL...])")
    name, *items = [p.strip() for p in spec.strip().split(",")]
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise InputError(f"CPU model {name}: override {item!r} is not PROP=VALUE")
        if key in overrides:
            raise InputError(f"CPU model {name}: property {key} given twice")
        overrides[key] = value
    return name, overrides


def realize(spec: str, *, models: dict[str, Model] | None = None, table: RegisterTable | None = None) -> CpuDefinition:
    """``"grace-v1,feat_AES=off,sve=off"`` -> CpuDefinition (registers + vcpu_features)."""
    name, overrides = parse_spec(spec)
    return realize_model(name, overrides, models=models, table=table)


def _check_override(s: Setting, model: str, table: RegisterTable) -> None:
    assert s.prop is not None
    for f, raw in zip(s.prop.fields, s.raws):
        reg = table.get(f.register)
        if reg is None or reg.implementation_id or reg.kvm == "clidr":
            continue
        if reg.kvm == "absent":
            raise InputError(f"CPU model {model}: {s.name} is in {reg.name}, which KVM cannot set "
                             "(the guest reads the hardware value); a model cannot carry it")
        # a real value (one the table names) stays: check() reports it as a blocker, since another
        # kernel may show it; only an encoding with no meaning is refused outright
        if f.policy is None and raw and reg.kvm in _KVM_ZERO_KINDS and f.values and raw not in f.values:
            raise InputError(f"CPU model {model}: {s.name}={s.value} is not possible: {raw} is no value of "
                             f"{f.qualname}, and KVM shows that field to guests only as 0")


def _gated(s: Setting, masks: dict[str, int]) -> bool:
    assert s.prop is not None
    return any(masks.get(f.register, 0) & f.mask for f in s.prop.fields)


def _above_cap(capped: Capped, registers: Mapping[str, int], table: RegisterTable) -> bool:
    """Whether a CPU with ``registers`` has capped composite ``capped`` on: a field above its cap."""
    return any(table.field(q).extract(registers.get(table.field(q).register, 0)) > capped.cap for q in capped.fields)


def _apply_capped(name: str, regs: dict[str, int], comps: Mapping[str, str], user: list[Setting],
                  table: RegisterTable) -> None:
    """Capped composites (``aarch32``): ``off`` lowers each listed field above the cap to it."""
    for comp, capped in capped_composites().items():
        present = _above_cap(capped, regs, table)
        value = comps.get(comp, "on" if present else "off")
        if value == "on":
            if not present:
                raise InputError(f"CPU model {name}: {comp}=on is not applicable: the model does not implement "
                                 f"{comp} (none of {', '.join(capped.fields)} is above {capped.cap})")
            continue
        for s in user:
            for f, raw in zip(s.prop.fields, s.raws):
                if f.qualname in capped.fields and raw > capped.cap:
                    raise InputError(f"CPU model {name}: {s.name}={s.value} needs {comp}=on")
        for f in (table.field(q) for q in capped.fields):
            if f.extract(regs.get(f.register, 0)) > capped.cap:
                regs[f.register] = f.insert(regs[f.register], capped.cap)


def realize_model(name: str, overrides: Mapping[str, str] | None = None, *,
                  models: dict[str, Model] | None = None, table: RegisterTable | None = None) -> CpuDefinition:
    """Realize model ``name`` with ``overrides`` (property -> value text)."""
    b = base(name, models, table)
    table = table or load_table()
    regs = dict(b.regs)
    comps = {k: v[0] for k, v in b.composites.items()}
    user: list[Setting] = []
    for key, value in (overrides or {}).items():
        s = parse_setting(key, value, f"CPU model {name}")
        if s.prop is None:
            comps[s.name] = s.value
            continue
        _check_override(s, name, table)
        _apply(regs, s)
        user.append(s)
    regs["CLIDR_EL1"] = derived_clidr(regs.get("CTR_EL0", 0))
    for s in b.clidr + tuple(s for s in user if any(f.register == "CLIDR_EL1" for f in s.prop.fields)):
        _apply(regs, s)

    _apply_capped(name, regs, comps, user, table)
    always, spec = composite_spec()
    features = set(always)
    for comp, masks in composite_masks().items():
        present = any(regs.get(reg, 0) & m for reg, m in masks.items())
        value = comps.get(comp, "on" if present else "off")
        if value == "on":
            if not present:
                raise InputError(f"CPU model {name}: {comp}=on is not applicable: the model has none of "
                                 f"the {comp} fields (it does not implement {comp})")
            features.update(spec[comp])
            continue
        for s in user:
            if _gated(s, masks) and any(s.raws):
                raise InputError(f"CPU model {name}: {s.name}={s.value} needs {comp}=on")
        for reg, m in masks.items():
            if reg in regs:
                regs[reg] &= ~m

    aarch32 = has_aarch32_el0(regs)
    out = {r.name: regs[r.name] for r in table.registers if r.kvm != "absent" and (aarch32 or not r.aarch32)}
    for s in user:
        for f in s.prop.fields:
            if f.register not in out:
                why = "the model has no AArch32 EL0: aarch32=off, or feat_EL0 below aarch32" if not aarch32 else "not emitted"
                raise InputError(f"CPU model {name}: {s.name} does not apply: {f.register} is not part of "
                                 f"the model ({why})")
    canon = ",".join([name] + [f"{k}={v}" for k, v in (overrides or {}).items()])
    provenance = {"model": name, "chain": list(b.chain)}
    if overrides:
        provenance["overrides"] = dict(overrides)
    return CpuDefinition(out, frozenset(features), name=canon, provenance=provenance)


def is_abstract(definition: CpuDefinition) -> bool:
    """Whether a realized model is no CPU at all: its chain never names an implementer
    (MIDR_EL1.Implementer stays 0), as for kvm-base and the architecture levels, which exist to be
    parents of real cores and SoCs."""
    return load_table().field("MIDR_EL1.Implementer").extract(definition.registers.get("MIDR_EL1", 0)) == 0


def fields_of(regs: Mapping[str, int], table: RegisterTable | None = None) -> dict[str, int]:
    """Register values -> {"REG.FIELD": raw} (for diffs and golden files)."""
    table = table or load_table()
    out = {}
    for name, value in regs.items():
        reg = table.get(name)
        if reg is None:
            continue
        f: Field
        for f in reg.fields:
            out[f.qualname] = f.extract(value)
    return out


def composite_values(registers: Mapping[str, int], features: frozenset[str] | set[str],
                     table: RegisterTable | None = None) -> dict[str, str]:
    """Composite -> "on"/"off" as a CPU (a definition or a host) has it: a vCPU-feature composite
    is on when every feature it switches is used; a capped one when a field is above its cap."""
    table = table or load_table()
    capped = capped_composites()
    out = {}
    for comp, feats in composite_spec()[1].items():
        if comp in capped:
            on = _above_cap(capped[comp], registers, table)
        else:
            on = set(feats) <= set(features)
        out[comp] = "on" if on else "off"
    return out
