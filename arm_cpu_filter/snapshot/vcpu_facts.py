"""What else a migration carries besides ID-register values (HostSnapshot format 2, ``"kvm"``).

A live migration also fails when the destination's KVM lacks a register the VM's saved state
holds (``KVM_GET_REG_LIST`` changes between kernels), when its VMM turns on vCPU features the VM
does not have, or when vector lengths, the VM's IPA size or the PMU counters do not fit.  These
are the host facts a decision needs, validated here; ``engine.migrate`` applies them.

Register-list entries are spelled as the architecture spells a system register,
``S<op0>_<op1>_C<n>_C<m>_<op2>`` (what assemblers accept for unnamed registers), or, for the
registers that are not system registers (core, firmware, SVE, cache-geometry pseudo registers),
as the 64-bit KVM id in hex.  Turning KVM ids into these spellings is the KVM reader's job.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from arm_cpu_filter.errors import InputError

#: KVM_CAP_ARM_VM_IPA_SIZE: a kernel without the capability gives every VM 40 bits
#: (Documentation/virt/kvm/api.rst, "KVM_CREATE_VM" on arm64); KVM's minimum is 32.
IPA_DEFAULT, IPA_MIN, IPA_MAX = 40, 32, 52
PAGE_SIZES = (4096, 16384, 65536)
#: SVE: vector lengths are multiples of 128 bits up to 2048 (Arm ARM, ZCR_ELx.LEN); every
#: power of two up to the maximum must be implemented, other multiples are optional.
VL_STEP, VL_MAX = 128, 2048
PMU_COUNTERS_MAX = 31  # PMCR_EL0.N is 5 bits; 31 event counters at most

_SYSREG = re.compile(r"^S([0-3])_([0-7])_C([0-9]|1[0-5])_C([0-9]|1[0-5])_([0-7])$")
_KVM_ID = re.compile(r"^0x[0-9a-f]{16}$")
FEATURE_SEPARATOR = "+"


def sysreg_spelling(op0: int, op1: int, crn: int, crm: int, op2: int) -> str:
    """``S3_0_C2_C0_3``: the architecture's name for a system register encoding."""
    return f"S{op0}_{op1}_C{crn}_C{crm}_{op2}"


def sysreg_encoding(entry: str) -> tuple[int, int, int, int, int] | None:
    """The (op0, op1, CRn, CRm, op2) of a register-list entry, None for a non-system register."""
    m = _SYSREG.match(entry)
    return tuple(int(g) for g in m.groups()) if m else None  # type: ignore[return-value]


def feature_key(features: frozenset[str]) -> str:
    """The register-list key of a vCPU feature set: names sorted, joined by ``+``."""
    return FEATURE_SEPARATOR.join(sorted(features))


def vector_lengths_problem(lengths: frozenset[int]) -> str | None:
    """Why a set of SVE vector lengths (bits) is not one a CPU can have (None: it can)."""
    if not lengths:
        return None
    bad = sorted(v for v in lengths if v % VL_STEP or not VL_STEP <= v <= VL_MAX)
    if bad:
        return f"{bad[0]} is not a multiple of {VL_STEP} between {VL_STEP} and {VL_MAX}"
    top = max(lengths)
    missing = [p for p in (128, 256, 512, 1024, 2048) if p <= top and p not in lengths]
    if missing:
        return f"{missing[0]} is missing (every power of two up to the maximum, {top}, is implemented)"
    return None


@dataclass(frozen=True)
class VcpuFacts:
    """A host's KVM facts beyond ID registers, as format 2 records them."""

    #: The vCPU features a VMM's default ``-cpu host`` turns on (QEMU: every one KVM offers).
    default_features: frozenset[str]
    #: vCPU feature set -> the registers ``KVM_GET_REG_LIST`` lists for such a vCPU.
    register_lists: Mapping[frozenset[str], frozenset[str]]
    #: SVE vector lengths in bits (``KVM_REG_ARM64_SVE_VLS``); empty: no SVE.
    sve_vector_lengths: frozenset[int]
    #: Largest IPA size a VM may ask for (``KVM_CAP_ARM_VM_IPA_SIZE``), bits.
    ipa_limit: int
    #: PMCR_EL0.N of a fresh PMU vCPU; None: no PMU.
    pmu_counters: int | None
    #: Whether a lowered PMCR_EL0.N written by userspace reads back (the lab: 6.1, 6.12 and 7.3 all
    #: do), so a VM with fewer counters fits.
    pmu_counters_writable: bool
    page_size: int

    @classmethod
    def from_dict(cls, data: Any, offered: frozenset[str], what: str) -> VcpuFacts:
        if not isinstance(data, dict):
            raise InputError(f"{what}: expected an object")
        for key in ("default_vcpu_features", "register_lists", "sve_vector_lengths", "ipa_limit", "page_size"):
            if key not in data:
                raise InputError(f"{what}: missing key {key!r}")
        default = _feature_set(data["default_vcpu_features"], offered, f"{what}.default_vcpu_features")
        return cls(
            default_features=default,
            register_lists=_register_lists(data["register_lists"], offered, f"{what}.register_lists"),
            sve_vector_lengths=_vector_lengths(data["sve_vector_lengths"], f"{what}.sve_vector_lengths"),
            ipa_limit=_int(data["ipa_limit"], IPA_MIN, IPA_MAX, f"{what}.ipa_limit"),
            pmu_counters=None if data.get("pmu_counters") is None
            else _int(data["pmu_counters"], 0, PMU_COUNTERS_MAX, f"{what}.pmu_counters"),
            pmu_counters_writable=_bool(data.get("pmu_counters_writable", False), f"{what}.pmu_counters_writable"),
            page_size=_page_size(data["page_size"], f"{what}.page_size"),
        )

    @cached_property
    def digest(self) -> str:
        """sha256 of the facts (they hold lists of hundreds of registers: hash them once)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def register_list(self, features: frozenset[str]) -> frozenset[str] | None:
        """The registers a vCPU with ``features`` lists; None: not recorded for that set."""
        return self.register_lists.get(features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "default_vcpu_features": sorted(self.default_features),
            "register_lists": {
                feature_key(k): sorted(v) for k, v in sorted(self.register_lists.items(), key=lambda kv: feature_key(kv[0]))
            },
            "sve_vector_lengths": sorted(self.sve_vector_lengths),
            "ipa_limit": self.ipa_limit,
            "pmu_counters": self.pmu_counters,
            "pmu_counters_writable": self.pmu_counters_writable,
            "page_size": self.page_size,
        }


def _int(value: Any, low: int, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{where}: expected an integer from {low} to {high}, got {value!r}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{where}: expected true or false, got {value!r}")
    return value


def _page_size(value: Any, where: str) -> int:
    if value not in PAGE_SIZES or isinstance(value, bool):
        raise InputError(f"{where}: expected one of {', '.join(map(str, PAGE_SIZES))}, got {value!r}")
    return value


def _feature_set(raw: Any, offered: frozenset[str], where: str) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InputError(f"{where}: expected a list of vCPU feature names")
    extra = sorted(set(raw) - offered)
    if extra:
        raise InputError(f"{where}: {extra[0]!r} is not among the host's vcpu_features")
    return frozenset(raw)


def _register_lists(raw: Any, offered: frozenset[str], where: str) -> dict[frozenset[str], frozenset[str]]:
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{where}: expected an object of vCPU feature set -> register list")
    out: dict[frozenset[str], frozenset[str]] = {}
    for key, entries in raw.items():
        names = [n for n in key.split(FEATURE_SEPARATOR) if n] if isinstance(key, str) else None
        features = _feature_set(names, offered, f"{where}[{key!r}]")
        if not isinstance(entries, list) or not entries:
            raise InputError(f"{where}[{key!r}]: expected a non-empty list of registers")
        for entry in entries:
            if not isinstance(entry, str) or not (_SYSREG.match(entry) or _KVM_ID.match(entry)):
                raise InputError(
                    f"{where}[{key!r}]: {entry!r} is neither a system register like \"S3_0_C2_C0_3\" "
                    "nor a KVM register id like \"0x6030000000100000\""
                )
        if features in out:
            raise InputError(f"{where}: feature set {key!r} given twice")
        out[features] = frozenset(entries)
    return out


def _vector_lengths(raw: Any, where: str) -> frozenset[int]:
    if not isinstance(raw, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        raise InputError(f"{where}: expected a list of vector lengths in bits")
    lengths = frozenset(raw)
    problem = vector_lengths_problem(lengths)
    if problem:
        raise InputError(f"{where}: not a vector-length set a CPU can have: {problem}")
    return lengths
