"""Layer 4: the engine -- pure functions over CPU definitions and host snapshots.

``check`` (KVM's acceptance rule), ``supported`` (per property, what a host accepts),
``compare`` (s390x-style relation of two CPUs), ``baseline`` (the richest definition a
pool of hosts shares), ``fix`` (the smallest override set that makes a definition usable),
``fix_model`` (the same at a named model's level, in the properties a flavor uses) and
``complete`` (a model made usable on a pool of hosts: writable fields lowered, then the
implementation-defined values completed with the pool's -- ``check``'s fix and ``pool-model``).
"""

from arm_cpu_filter.engine.baseline import BaselineResult, baseline
from arm_cpu_filter.engine.check import Blocker, CheckResult, accepts, check
from arm_cpu_filter.engine.compare import CompareResult, compare
from arm_cpu_filter.engine.completion import Completion, complete
from arm_cpu_filter.engine.fix import fix
from arm_cpu_filter.engine.modelfix import ModelFix, fix_model
from arm_cpu_filter.engine.supported import supported

__all__ = [
    "BaselineResult",
    "Blocker",
    "CheckResult",
    "CompareResult",
    "Completion",
    "accepts",
    "ModelFix",
    "baseline",
    "check",
    "compare",
    "complete",
    "fix",
    "fix_model",
    "supported",
]
