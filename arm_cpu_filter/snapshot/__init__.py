"""HostSnapshot (formats 1 and 2) and CPU definitions: parse, validate, serialise, fingerprint.

A HostSnapshot is what a host's KVM offers a new VM (registers of a fresh vCPU created
with every optional feature, writable masks, capabilities).  A CPU definition has the same
shape (``registers`` + ``vcpu_features``): what a VM's guest sees.  A snapshot used as a
definition means "a host-passthrough VM started on that host".

Format 2 adds ``"kvm"``: the facts a migration needs beyond ID registers (register lists per
vCPU feature set, SVE vector lengths, IPA limit, PMU counters, page size, the features a default
``-cpu host`` turns on; ``snapshot.vcpu_facts``).  Format 1 is still read; its ``kvm`` facts are
unknown (``HostSnapshot.vcpu_facts is None``), and whoever needs them fails closed.

Pure: strings and dicts in, objects out.  ``arm_cpu_filter.snapshot.files`` does file I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.snapshot.vcpu_facts import VcpuFacts
from arm_cpu_filter.table import U64, load_table, vcpu_features

FORMAT = 1  # CPU definitions, and snapshots without ``kvm`` facts
FORMAT_WITH_VCPU_FACTS = 2
READABLE_FORMATS = (1, 2)
#: Registers that identify one vCPU, not the CPU model (each vCPU has its own MPIDR_EL1): no
#: definition constrains them and the reader does not take them.
PER_VCPU_REGISTERS = frozenset({"MPIDR_EL1"})
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_KERNEL = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def parse_u64(value: Any, where: str) -> int:
    """A register value: ``"0x..."`` hex string (or a JSON integer), at most 64 bits."""
    if isinstance(value, bool):
        raise InputError(f"{where}: expected a hex string like \"0x0000000000000000\", got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"0[xX][0-9a-fA-F]{1,16}", value.strip()):
        number = int(value, 16)
    elif isinstance(value, str) and re.fullmatch(r"0[xX]0*[0-9a-fA-F]+", value.strip()):
        raise InputError(f"{where}: value {value} is wider than 64 bits")
    else:
        raise InputError(f"{where}: expected a hex string like \"0x0000000000000000\", got {value!r}")
    if not 0 <= number <= U64:
        raise InputError(f"{where}: value {value} is not a 64-bit register value")
    return number


def canonical_register_name(name: Any, where: str) -> str:
    """Table registers go by their kernel name; unknown ones are kept (and compared exactly)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"{where}: {name!r} is not a register name")
    reg = load_table().get(name)
    return reg.name if reg else name.upper()


def _register_map(raw: Any, where: str) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected an object of register name -> hex value")
    out: dict[str, int] = {}
    for name, value in raw.items():
        canon = canonical_register_name(name, f"{where}")
        if canon in out:
            raise InputError(f"{where}.{name}: register given twice")
        out[canon] = parse_u64(value, f"{where}.{name}")
    return out


def _features(raw: Any, where: str) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InputError(f"{where}: expected a list of vCPU feature names")
    known = vcpu_features()
    for name in raw:
        if name not in known:
            raise InputError(f"{where}: unknown vCPU feature {name!r} (known: {', '.join(known)})")
    return frozenset(raw)


def has_aarch32_el0(registers: Mapping[str, int]) -> bool:
    """ID_AA64PFR0_EL1.EL0 >= 2 ("AArch32 at EL0") in a host's or a model's registers: the one
    test of it (``HostSnapshot.aarch32_el0`` for hosts; realization for models)."""
    pfr0 = registers.get("ID_AA64PFR0_EL1", 0)
    return load_table().field("ID_AA64PFR0_EL1.EL0").extract(pfr0) >= 2


def _hexmap(regs: Mapping[str, int]) -> dict[str, str]:
    return {name: f"0x{regs[name]:016x}" for name in sorted(regs)}


def _digest(content: dict) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _require_object(data: Any, what: str) -> dict:
    if not isinstance(data, dict):
        raise InputError(f"{what}: expected a JSON object, got {type(data).__name__}")
    fmt = data.get("format", FORMAT)
    if fmt not in READABLE_FORMATS or isinstance(fmt, bool):
        readable = " and ".join(map(str, READABLE_FORMATS))
        raise InputError(f"{what}: unsupported format {fmt!r} (this version reads formats {readable})")
    return data


@dataclass(frozen=True, eq=False)
class CpuDefinition:
    """What a VM's guest sees: register values and the vCPU features the VM uses."""

    registers: Mapping[str, int]
    vcpu_features: frozenset[str] = frozenset()
    name: str | None = None
    #: Where the values came from (model chain, snapshot host...); not part of the fingerprint.
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, what: str = "definition") -> CpuDefinition:
        data = _require_object(data, what)
        if "registers" not in data:
            raise InputError(f"{what}: missing key 'registers'")
        name = data.get("name", data.get("host"))
        return cls(
            registers=_register_map(data["registers"], f"{what}: registers"),
            vcpu_features=_features(data.get("vcpu_features", []), f"{what}: vcpu_features"),
            name=name if isinstance(name, str) else None,
            provenance=data.get("provenance") if isinstance(data.get("provenance"), dict) else {},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT}
        if self.name:
            out["name"] = self.name
        out["vcpu_features"] = sorted(self.vcpu_features)
        out["registers"] = _hexmap(self.registers)
        if self.provenance:
            out["provenance"] = dict(self.provenance)
        return out

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over what the guest sees (registers + vCPU features), not the name."""
        return _digest({"registers": _hexmap(self.registers), "vcpu_features": sorted(self.vcpu_features)})


@dataclass(frozen=True, eq=False)
class HostSnapshot:
    """What a host's KVM offers a new VM (HostSnapshot format 1 or 2, see docs/design.rst)."""

    host: str
    kernel: str
    registers: Mapping[str, int]
    #: None: the kernel has no KVM_ARM_GET_REG_WRITABLE_MASKS (< 6.7): every bit must equal, but for the
    #: few fields its setters take anyway (the engine's kernel rules: 6.1's PFR0.CSV2/CSV3).
    writable_masks: Mapping[str, int] | None
    vcpu_features: frozenset[str] = frozenset()
    capabilities: Mapping[str, bool] = field(default_factory=dict)
    source: str = "kvm"
    taken_at: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    #: Format 2's migration facts; None: unknown (a format-1 snapshot).
    vcpu_facts: VcpuFacts | None = None

    @classmethod
    def from_dict(cls, data: Any, what: str = "snapshot") -> HostSnapshot:
        data = _require_object(data, what)
        if "format" not in data:
            raise InputError(f"{what}: missing key 'format'")
        for key in ("host", "kernel", "registers"):
            if key not in data:
                raise InputError(f"{what}: missing key {key!r}")
        for key in ("host", "kernel"):
            if not isinstance(data[key], str) or not data[key].strip():
                raise InputError(f"{what}: {key!r} must be a non-empty string")
            if not data[key].isprintable():  # they end up in XML attributes and log lines
                raise InputError(f"{what}: {key!r} contains control or other non-printable characters: {data[key]!r}")
        if not _KERNEL.match(data["kernel"]):
            raise InputError(f"{what}: kernel {data['kernel']!r} is not a Linux version like \"6.12.95\"")
        caps = data.get("capabilities", {})
        if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
            raise InputError(f"{what}: capabilities must be an object of name -> true/false")
        masks = data.get("writable_masks")
        features = _features(data.get("vcpu_features", []), f"{what}: vcpu_features")
        facts = None
        if data["format"] == FORMAT_WITH_VCPU_FACTS:
            if "kvm" not in data:
                raise InputError(f"{what}: format 2 needs the key 'kvm' (register lists, vector lengths, limits)")
            facts = VcpuFacts.from_dict(data["kvm"], features, f"{what}: kvm")
        return cls(
            host=data["host"],
            kernel=data["kernel"],
            registers=_register_map(data["registers"], f"{what}: registers"),
            writable_masks=None if masks is None else _register_map(masks, f"{what}: writable_masks"),
            vcpu_features=features,
            capabilities=dict(caps),
            source=str(data.get("source", "kvm")),
            taken_at=data.get("taken_at") if isinstance(data.get("taken_at"), str) else None,
            provenance=data.get("provenance") if isinstance(data.get("provenance"), dict) else {},
            vcpu_facts=facts,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT if self.vcpu_facts is None else FORMAT_WITH_VCPU_FACTS,
            "host": self.host,
            "kernel": self.kernel,
            "source": self.source,
        }
        if self.taken_at:
            out["taken_at"] = self.taken_at
        out["vcpu_features"] = sorted(self.vcpu_features)
        out["registers"] = _hexmap(self.registers)
        if self.writable_masks is not None:
            out["writable_masks"] = _hexmap(self.writable_masks)
        out["capabilities"] = dict(sorted(self.capabilities.items()))
        if self.vcpu_facts is not None:
            out["kvm"] = self.vcpu_facts.to_dict()
        if self.provenance:
            out["provenance"] = dict(self.provenance)
        return out

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over what decides admission and migration: kernel version, registers, masks,
        features, capabilities, format 2's ``kvm`` facts.  Not the host name, source or time,
        so identical hosts share it (a format-1 snapshot keeps its format-1 fingerprint)."""
        content: dict[str, Any] = {
            "kernel": ".".join(map(str, self.kernel_version)),
            "registers": _hexmap(self.registers),
            "writable_masks": None if self.writable_masks is None else _hexmap(self.writable_masks),
            "vcpu_features": sorted(self.vcpu_features),
            "capabilities": {k: v for k, v in sorted(self.capabilities.items()) if v},
        }
        if self.vcpu_facts is not None:
            content["kvm"] = self.vcpu_facts.to_dict()
        return _digest(content)

    @cached_property
    def content_key(self) -> tuple:
        """A cheap hashable stand-in for ``fingerprint`` to group identical snapshots:
        equal keys mean equal content (snapshots written in the same register order, as
        the reader and the store do, get equal keys)."""
        masks = None if self.writable_masks is None else tuple(self.writable_masks.items())
        return (
            self.kernel,
            tuple(self.registers.items()),
            masks,
            self.vcpu_features,
            tuple(sorted(k for k, v in self.capabilities.items() if v)),
            None if self.vcpu_facts is None else self.vcpu_facts.digest,
        )

    @cached_property
    def kernel_version(self) -> tuple[int, int, int]:
        m = _KERNEL.match(self.kernel)
        assert m  # validated in from_dict
        return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)

    @property
    def writable_impl_id_regs(self) -> bool:
        return bool(self.capabilities.get("writable_impl_id_regs"))

    @cached_property
    def aarch32_el0(self) -> bool:
        """The host runs AArch32 at EL0; without it KVM makes the AArch32 ID registers RAZ/WI
        and a guest cannot use AArch32."""
        return has_aarch32_el0(self.registers)

    def as_definition(self) -> CpuDefinition:
        """The CPU of a host-passthrough VM started on this host (every vCPU feature)."""
        return CpuDefinition(
            registers=dict(self.registers),
            vcpu_features=self.vcpu_features,
            name=self.host,
            provenance={"host-passthrough": self.host, "snapshot": self.fingerprint},
        )


def loads(text: str | bytes, what: str = "snapshot") -> HostSnapshot:
    return HostSnapshot.from_dict(_json(text, what), what)


def loads_definition(text: str | bytes, what: str = "definition") -> CpuDefinition:
    return CpuDefinition.from_dict(_json(text, what), what)


def dumps(obj: HostSnapshot | CpuDefinition) -> str:
    return json.dumps(obj.to_dict(), indent=1) + "\n"


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{what}: not valid JSON ({exc})") from None
