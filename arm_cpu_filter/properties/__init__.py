"""Layer 2: properties, the user-facing knobs over ID-register fields.

Kinds: single-field (``feat_AES=pmull``, boolean ``hw_prop_DIC``, numeric ``hw_prop_BRPs``),
fractional (``feat_CSV2=1.1``: a field plus its ``_frac`` refinement), identification
(``cpu_partnum``) and the raw alias of every field, ``SYSREG_<REG>_<FIELD>=<int>`` (the
naming of the upstream QEMU host-model series).  Names and value names come from
``data/properties.toml`` applied to the register table.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from arm_cpu_filter.errors import InputError, UnknownNameError
from arm_cpu_filter.table import Field, Register, load_table

DATA = Path(__file__).with_name("data")

ENUM, BOOL, NUMBER, FRACTION, IDENT, RAW = "enum", "bool", "number", "fraction", "id", "raw"
_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}
_INT = re.compile(r"^(0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)$")  # ASCII digits only: not "٣"


def parse_int(text: str, where: str) -> int:
    text = text.strip()
    if not _INT.match(text):
        raise InputError(f"{where}: {text!r} is not a number")
    try:
        return int(text, 0)
    except ValueError:  # a decimal with leading zeros, or more digits than Python converts
        shown = repr(text) if len(text) <= 24 else f"{text[:24]!r}... ({len(text)} characters)"
        raise InputError(f"{where}: {shown} is not a usable number (leading zeros or too many digits)") from None


@dataclass(frozen=True, eq=False)
class Property:
    """A named knob over one or more fields (``fields`` are most significant first)."""

    name: str
    kind: str
    fields: tuple[Field, ...]
    #: raw value -> name (single-field enums and booleans)
    names: Mapping[int, str]

    @property
    def field(self) -> Field:
        return self.fields[0]

    # -- values -----------------------------------------------------------------------
    def parse(self, text: str) -> tuple[int, ...]:
        """Property value text -> raw value per field; a clear error when invalid."""
        if not isinstance(text, str):
            text = str(text)
        where = f"property {self.name}"
        value = text.strip()
        if self.kind == FRACTION:
            major, _, minor = value.partition(".")
            architectural = {} if minor or _INT.match(value) else self._architectural_names()
            if value.lower() in architectural:  # the major field's name: feat_RAS=V1P1 is 2.0
                raws = (architectural[value.lower()], 0)
            elif not minor and value.lower() in self._minor_names():  # one that says its major: CSV2_1p1 is 1.1
                raws = self._minor_name(value, where)
            else:  # MAJOR.MINOR, each half a number or its field's name: feat_MPAM=1.MINOR_1
                raws = (self._half(0, major, where), self._half(1, minor or "0", where))
        elif self.kind == BOOL and value.lower() in _TRUE | _FALSE:
            raws = (1 if value.lower() in _TRUE else 0,)
        else:
            by_name = {n: raw for raw, n in self.names.items()}
            if value.lower() in by_name:
                raws = (by_name[value.lower()],)
            elif _INT.match(value):
                raws = (parse_int(value, where),)
            elif value.lower() in self._architectural_names():
                raws = (self._architectural_names()[value.lower()],)
            else:
                choices = ", ".join(self.choices()) or "a number"
                raise InputError(f"{where}: invalid value {text!r} (valid: {choices})")
        for f, raw in zip(self.fields, raws):
            if raw > f.max:
                raise InputError(f"{where}: value {text!r} does not fit {f.qualname} ({f.width} bits)")
        return raws

    def _half(self, position: int, text: str, where: str) -> int:
        """One half of a fraction: a number, or a name the table gives that field's value."""
        if _INT.match(text.strip()):
            return parse_int(text, where)
        f = self.fields[position]
        names = {n.lower(): raw for raw, n in f.values.items() if not _INT.match(n)}
        if text.strip().lower() not in names:
            valid = ", ".join(n for n in f.values.values() if not _INT.match(n)) or "a number"
            raise InputError(f"{where}: invalid value {text!r} for {f.qualname} (valid: {valid})")
        return names[text.strip().lower()]

    def _minor_names(self) -> set[str]:
        return {n.lower() for n in self.fields[1].values.values() if not _INT.match(n)}

    def _minor_name(self, text: str, where: str) -> tuple[int, int]:
        """A minor field's name that carries its major (the architecture's ``<X>_<a>p<b>``,
        as ``CSV2_1p1``): (a, b).  Any other minor name needs its major: ``MAJOR.NAME``."""
        minor = self._half(1, text, where)
        found = re.search(r"(\d+)p(\d+)$", text.strip())
        if found is None or int(found.group(2)) != minor:
            raise InputError(f"{where}: {text!r} names the minor half only: write MAJOR.{text.strip()} "
                             f"(e.g. 1.{text.strip()})")
        return int(found.group(1)), minor

    def _architectural_names(self) -> dict[str, int]:
        """The table's own names of the (first) field's values, lower-cased (``IMP``, ``NI``,
        ``FP16``: what ``fields`` shows), so both spellings work.  Numeric names are left out: a
        number is always a raw value."""
        if self.kind not in (ENUM, FRACTION):
            return {}
        return {n.lower(): raw for raw, n in self.field.values.items() if not _INT.match(n)}

    def format(self, raws: tuple[int, ...]) -> str:
        if self.kind == FRACTION:
            return f"{raws[0]}.{raws[1]}"
        if self.kind == BOOL:
            return "on" if raws[0] else "off"
        if self.kind == IDENT:
            return f"0x{raws[0]:x}"
        return self.names.get(raws[0], str(raws[0]))

    def choices(self) -> list[str]:
        """The named values, lowest first (for help and error messages)."""
        if self.kind == BOOL:
            return ["off", "on"]
        f = self.field
        return [self.names[r] for r in sorted(self.names, key=f.ordinal)]

    # -- registers ----------------------------------------------------------------------
    def extract(self, registers: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(f.extract(registers.get(f.register, 0)) for f in self.fields)

    def read(self, registers: Mapping[str, int]) -> str:
        return self.format(self.extract(registers))

    def write(self, registers: MutableMapping[str, int], text: str) -> None:
        for f, raw in zip(self.fields, self.parse(text)):
            registers[f.register] = f.insert(registers.get(f.register, 0), raw)

    def order_key(self, raws: tuple[int, ...]) -> tuple[int, ...]:
        """Sort key: architectural order (signed fields: 0xF = not implemented is lowest)."""
        return tuple(f.ordinal(r) for f, r in zip(self.fields, raws))


def _field_prefix(reg: Register, prefixes: Mapping[str, str]) -> str:
    if reg.name in prefixes:
        return prefixes[reg.name]
    return prefixes.get("aarch32", "") if reg.aarch32 else ""


def _value_names(f: Field, spec: dict) -> dict[int, str]:
    override = {int(k): v for k, v in spec["value_names"].get(f.qualname, {}).items()}
    names: dict[int, str] = {}
    for raw, name in f.values.items():
        if raw in override:
            names[raw] = override[raw]
        elif name == "NI":
            names[raw] = "off"
        elif name == "IMP":
            names[raw] = spec["imp_names"].get(f.qualname, f.name.lower())
        elif name.isdigit():
            names[raw] = f"{name}bit"
        else:
            names[raw] = name.lower()
    names.update({raw: n for raw, n in override.items() if raw not in names})
    seen: dict[str, int] = {}
    for raw, name in list(names.items()):
        if name in seen or _INT.match(name):  # ambiguous: keep the number only
            names.pop(raw)
            names.pop(seen.get(name, -1), None)
        seen[name] = raw
    return names


@dataclass(frozen=True)
class PropertySet:
    by_name: Mapping[str, Property]
    by_field: Mapping[str, Property]  # "REG.FIELD" -> the user-facing property covering it

    def get(self, name: str) -> Property:
        """Look up a property by name, including ``SYSREG_<REG>_<FIELD>`` raw aliases."""
        prop = self.by_name.get(name)
        if prop is not None:
            return prop
        if name.upper().startswith("SYSREG_"):
            return _raw_alias(name)
        raise UnknownNameError(f"unknown property {name!r}")

    def for_field(self, f: Field) -> Property:
        return self.by_field[f.qualname]

    def __iter__(self) -> Iterable[Property]:
        return iter(self.by_name.values())


def raw_name(register: str, field: str) -> str:
    """The raw alias of one field, ``SYSREG_<REG>_<FIELD>`` (the upstream QEMU series' spelling).

    The one place that spells it: every blocker, fix, comparison and command line uses this.
    """
    return f"SYSREG_{register}_{field}"


@cache
def _raw_alias(name: str) -> Property:
    rest = name[len("SYSREG_") :].upper()
    table = load_table()
    for reg in table.registers:
        if rest.startswith(reg.name + "_"):
            field_name = rest[len(reg.name) + 1 :]
            for f in reg.fields:
                if f.name.upper() == field_name:
                    return Property(raw_name(reg.name, f.name), RAW, (f,), {})
            raise UnknownNameError(f"unknown property {name!r}: {reg.name} has no field {field_name!r}")
    raise UnknownNameError(f"unknown property {name!r}: no such register")


@cache
def properties() -> PropertySet:
    """Every property over the table (built once per process)."""
    spec = tomllib.loads((DATA / "properties.toml").read_text())
    table = load_table()
    by_name: dict[str, Property] = {}
    by_field: dict[str, Property] = {}

    def add(prop: Property) -> None:
        if prop.name in by_name:
            raise InputError(f"properties.toml: property name {prop.name} defined twice")
        by_name[prop.name] = prop
        for f in prop.fields:
            by_field.setdefault(f.qualname, prop)

    for name, refs in spec["fractional"].items():
        add(Property(name, FRACTION, tuple(table.field(r) for r in refs), {}))
    for name, ref in spec["identification"].items():
        if "." in ref:
            fields: tuple[Field, ...] = (table.field(ref),)
        else:
            reg = table.register(ref)
            fields = (Field(reg.name, "value", 0, 64, False, "Field", {}, None, None, None, 0),)
        add(Property(name, IDENT, fields, {}))
    hw = set(spec["hw_prop"])
    for reg in table.registers:
        for f in reg.fields:
            if f.qualname in by_field or f.type == "Reserved" or reg.implementation_id:
                continue
            names = _value_names(f, spec)
            base = _field_prefix(reg, spec["prefix"]) + f.name
            if not f.values:
                kind = BOOL if f.width == 1 else NUMBER
                add(Property(f"hw_prop_{base}", kind, (f,), {}))
            else:
                prefix = "hw_prop_" if f.qualname in hw else "feat_"
                add(Property(prefix + base, ENUM, (f,), names))
    return PropertySet(by_name, by_field)
