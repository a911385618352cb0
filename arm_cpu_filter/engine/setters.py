"""KVM's custom ID-register setters: the refusals beyond the generic acceptance rule.

The rules are data (``data/kernel-rules.toml``, each with its source in ``sys_regs.c`` or the
lab); this module is their one interpreter, used by ``check``, ``baseline``, the host view and
the compiled core.  Besides the refusals, the file lists the fields kernels without writable
masks still let userspace set (``writable_without_masks``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.table import Field, load_table


@dataclass(frozen=True, slots=True)
class SetterRule:
    """One field's refused raw values (an explicit set and/or everything below a floor)."""

    field: str
    refused: frozenset[int]
    floor: int
    reason: str
    lenient: frozenset[str]  # kernel series ("6.12") that accept the values anyway
    source: str

    def refuses(self, value: int, series: str) -> bool:
        return (value in self.refused or value < self.floor) and series not in self.lenient


@cache
def _rules_file() -> dict:
    return tomllib.loads((Path(__file__).with_name("data") / "kernel-rules.toml").read_text())


@cache
def setter_rules() -> dict[str, tuple[SetterRule, ...]]:
    """Field qualname -> its rules, in file order."""
    out: dict[str, list[SetterRule]] = {}
    for r in _rules_file()["setter"]:
        rule = SetterRule(r["field"], frozenset(r.get("refused", ())), r.get("floor", 0), r["reason"],
                          frozenset(r.get("lenient", ())), r["source"])
        out.setdefault(rule.field, []).append(rule)
    return {k: tuple(v) for k, v in out.items()}


@cache
def writable_without_masks(series: str) -> dict[str, int]:
    """Register -> the bits a ``series`` kernel without writable masks (< 6.7) lets userspace set
    anyway (a register's own setter compares them by the field's policy).  Empty for a series the
    lab has not measured: there every bit must equal the host's (fail closed)."""
    table = load_table()
    out: dict[str, int] = {}
    for r in _rules_file()["writable_without_masks"]:
        if series in r["kernels"]:
            f = table.field(r["field"])
            out[f.register] = out.get(f.register, 0) | f.mask
    return out


def kernel_series(host: HostSnapshot) -> str:
    major, minor, _ = host.kernel_version
    return f"{major}.{minor}"


def refusal(f: Field, value: int, host: HostSnapshot) -> str | None:
    """Why KVM's setter refuses raw ``value`` for field ``f`` on ``host`` (None: no objection)."""
    rules = setter_rules().get(f.qualname)
    if not rules:
        return None
    series = kernel_series(host)
    for rule in rules:
        if rule.refuses(value, series):
            return rule.reason.format(kernel=host.kernel, field=f.name)
    return None
