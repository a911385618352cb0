"""``check(definition, host)``: KVM's acceptance rule, exactly, and fast.

The verdict comes from the compiled core (``compiled.py``: a few integer operations over the
whole register file); the blockers of a refused definition from the reference rule
(``rule.py``), which states the rule readably and which the compiled core is tested against.
"""

from __future__ import annotations

from arm_cpu_filter.engine.cache import BoundedCache
from arm_cpu_filter.engine.compiled import clear_compiled, is_usable
from arm_cpu_filter.engine.hostview import clear_views
from arm_cpu_filter.engine.rule import (
    Blocker,
    CheckResult,
    check_register,
    field_accepts,
    reference_check,
    supported_raws,
)
from arm_cpu_filter.snapshot import CpuDefinition, HostSnapshot

__all__ = ["Blocker", "CheckResult", "accepts", "check", "check_register", "field_accepts", "supported_raws"]

USABLE = CheckResult(True)
#: refusals of the last 4096 (definition, host) objects: building blockers costs ~1 ms
_refused: BoundedCache[CheckResult] = BoundedCache(4096)


def accepts(definition: CpuDefinition, host: HostSnapshot) -> bool:
    """``check(definition, host).usable`` without building blockers: what a scheduler filter or
    a catalog listing needs (a few integer operations once the host is compiled)."""
    return is_usable(definition, host)


def check(definition: CpuDefinition, host: HostSnapshot) -> CheckResult:
    """Is ``definition`` realizable on ``host``? Blockers say exactly where it is not."""
    if is_usable(definition, host):
        return USABLE
    return _refused.get_or_make((definition, host), lambda: reference_check(definition, host))


def clear_caches() -> None:
    """Forget every host seen or compiled, packed definition, host view and cached refusal (for
    measuring a first check on a host never seen; a long-lived process never needs it)."""
    clear_compiled()
    clear_views()
    _refused.clear()
