"""``fix_model(spec, host)``: the overrides a ``MODEL[,PROP=VAL...]`` needs to be usable on a host
through writable fields and composites alone (no completion of implementation-defined values).

Works at the model's level, so the answer uses the names people write in a flavor: a blocked
gated field KVM does not let userspace write (pointer auth, PFR0.SVE) or a vCPU feature the host
lacks turns its composite off; AArch32 ID registers of a host without AArch32 EL0, or an
exception level above the host's AArch64-only, become ``aarch32=off`` (the model then carries
no AArch32 registers); any other blocked field takes the highest value the host accepts below
the model's, under its property name.  The computation is ``completion.complete`` for a pool of
one host with completion switched off: a flavor's named model keeps its guest ABI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from arm_cpu_filter.engine.check import Blocker, check
from arm_cpu_filter.engine.completion import FixedSpec, complete
from arm_cpu_filter.models.realization import parse_spec, realize_model
from arm_cpu_filter.snapshot import HostSnapshot


@dataclass(frozen=True)
class ModelFix(FixedSpec):
    """``fix_model``'s answer: the model, the caller's overrides and what the fix adds.

    ``blocked`` is empty iff ``spec`` is usable on the host once ``changes`` are applied;
    otherwise no override set was found, ``changes`` is empty and ``blocked`` is the spec's own
    blockers, so ``check(realize(spec), host).blockers == blocked`` either way.
    """

    model: str
    given: Mapping[str, str]
    #: The fix alone: properties it adds or whose given value it replaces, in the order found.
    changes: Mapping[str, str]
    blocked: tuple[Blocker, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.blocked


def fix_model(spec: str, host: HostSnapshot) -> ModelFix:
    """The overrides that make ``spec`` usable on ``host`` (``changes`` empty when it already
    is), or, when no set through writable fields and composites exists, what blocks it."""
    found = complete(spec, [host], complete_ids=False)
    if found.usable:
        return ModelFix(found.model, found.given, found.lowered)
    name, given = parse_spec(spec)
    return ModelFix(name, given, {}, check(realize_model(name, given), host).blockers)
