"""Live or cold: what a Nova ``RequestSpec`` tells about the kind of move it schedules.

Nova puts no move kind in the RequestSpec (only a rebuild is marked, ``_nova_check_type``).
The instance's ``task_state`` tells, and the API saves it before it asks the conductor (paths
in Nova's tree: ``nova/compute/api.py``): ``API.live_migrate`` sets ``MIGRATING``, ``API.resize``
(cold migration included) ``RESIZE_PREP``, ``API.evacuate`` ``REBUILDING``.  :func:`cold_move`
reads it from the instance's cell (two indexed reads per move request, none for boots).  An
evacuation starts a new QEMU from the disks: a cold move, which also works when the dead
source's data has gone stale.

The spec's own mark is not enough: ``API.resize`` always sets ``requested_destination =
Destination(allow_cross_cell_move=...)`` (:func:`marked_cold`), but by the time the filters run
a live migration's Destination has that field too -- the conductor gives it a cell
(``LiveMigrationTask._get_request_spec_for_select_destinations``) and Nova's
``HostManager.get_host_states_by_uuids`` then reads ``allow_cross_cell_move``, which sets its
default (False).  A whole Nova shows it (``tests/functional``).  The mark is only the fallback
when the instance cannot be read (specs built without one, as in the in-process scheduler
tests); when neither tells, the move is judged live (fail closed).

``ignore_hosts`` holds the source for live migration (``LiveMigrationTask._find_destination``),
evacuation and resize.  Unshelve sets none (``unshelve_instance``) and it is not persisted: a
recorded instance scheduled without ``ignore_hosts`` is unshelved -- a new QEMU, a cold move.
"""

from __future__ import annotations

from typing import Any


def marked_cold(spec_obj: Any) -> bool:
    """True when ``spec_obj`` (a nova RequestSpec) is a resize or cold migration."""
    try:
        if not spec_obj.obj_attr_is_set("requested_destination"):
            return False
        destination = spec_obj.requested_destination
        return destination is not None and destination.obj_attr_is_set("allow_cross_cell_move")
    except Exception:  # a lazy-load failure or an unexpected object: unknown, so live (fail closed)
        return False


def cold_move(spec_obj: Any) -> bool:
    """True when ``spec_obj`` moves its instance cold: the instance's task_state says a resize,
    cold migration or evacuation (a rebuild in place never reaches the filter:
    ``RUN_ON_REBUILD = False``); False when it says a live migration; else :func:`marked_cold`."""
    from nova.compute import task_states

    task_state = _task_state(spec_obj)
    if task_state == task_states.MIGRATING:
        return False
    if task_state in (task_states.RESIZE_PREP, task_states.REBUILDING):
        return True
    return marked_cold(spec_obj)


def _task_state(spec_obj: Any) -> str | None:
    """The task_state of ``spec_obj``'s instance, None when it cannot be read."""
    try:
        from nova import context as nova_context
        from nova import objects
        ctx, uuid = spec_obj._context, spec_obj.instance_uuid
        mapping = objects.InstanceMapping.get_by_instance_uuid(ctx, uuid)
        with nova_context.target_cell(ctx, mapping.cell_mapping) as cctx:
            instance = objects.Instance.get_by_uuid(cctx, uuid, expected_attrs=[])
        return instance.task_state
    except Exception:  # no context, mapping or instance (or a DB error): unknown
        return None
