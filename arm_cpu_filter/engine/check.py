"""``check(definition, host)``: KVM's acceptance rule, exactly, and fast.

The verdict comes from the compiled core (``compiled.py``: a few integer operations over the
whole register file); the blockers of a refused definition from the reference rule
(``rule.py``), which states the rule readably and which the compiled core is tested against.
"""

from __future__ import annotations

from arm_cpu_filter.engine.compiled import is_usable
from arm_cpu_filter.engine.rule import (
    Blocker,
    CheckResult,
    check_register,
    field_accepts,
    reference_check,
    supported_raws,
)
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot

__all__ = ["Blocker", "CheckResult", "check", "check_register", "field_accepts", "supported_raws"]

USABLE = CheckResult(True)


def check(definition: CpuDefinition, host: HostSnapshot) -> CheckResult:
    """Is ``definition`` realizable on ``host``? Blockers say exactly where it is not."""
    if is_usable(definition, host):
        return USABLE
    return reference_check(definition, host)
