"""``ArmCpuModelFilter``: Nova host filter that passes a host iff the VM's CPU definition is
realizable by the host's KVM (see :mod:`arm_cpu_filter.scheduler.request` for which
definition).  Enable with::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = arm_cpu_filter.scheduler.filters.ArmCpuModelFilter
    enabled_filters = ...,ArmCpuModelFilter
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nova.scheduler import filters
from nova.scheduler import utils as scheduler_utils

from arm_cpu_filter.scheduler import state


class ArmCpuModelFilter(filters.BaseHostFilter):
    """Pass hosts whose KVM can realize the requested (or recorded) ARM64 CPU."""

    # A rebuild keeps the instance on its host with its CPU: nothing to check.
    RUN_ON_REBUILD = False

    def filter_all(self, filter_obj_list: Iterable[Any], spec_obj: Any) -> Iterable[Any]:
        """Resolve the request once, then admit host by host (never raises)."""
        if scheduler_utils.request_is_rebuild(spec_obj):
            return filter_obj_list
        request = state.request_for(spec_obj)
        return state.admit_all(list(filter_obj_list), request)

    def host_passes(self, host_state: Any, spec_obj: Any) -> bool:
        return state.admit(host_state.host, state.request_for(spec_obj))
