"""Live or cold: what a Nova ``RequestSpec`` tells about the kind of move it schedules.

Nova puts no move kind in the RequestSpec (only a rebuild is marked, ``_nova_check_type``);
the instance's ``task_state`` says it but is not in the spec.  What the spec does show
(paths in Nova's tree):

- resize and cold migration: ``API.resize`` always sets ``requested_destination =
  Destination(allow_cross_cell_move=...)``, with or without a target host
  (``nova/compute/api.py``, ``API.resize``, the two ``objects.Destination(`` calls before
  ``compute_task_api.resize_instance``).  Live migration builds its Destination with a cell
  or a host only (``nova/conductor/tasks/live_migrate.py``,
  ``_get_request_spec_for_select_destinations``; ``API.live_migrate``), as do evacuation and
  unshelve (``nova/conductor/manager.py``, ``_restrict_request_spec_to_cell``; ``API.evacuate``,
  ``API.unshelve``).  ``requested_destination`` is never persisted with the spec
  (``nova/objects/request_spec.py``, ``RequestSpec._get_update_primitives``: "Don't persist
  these since they are per-request"), so the field comes from the current request only.
- live migration: ``ignore_hosts`` always holds the source (``LiveMigrationTask._find_destination``:
  ``attempted_hosts = [self.source]``).  Unshelve sets no ``ignore_hosts`` (``unshelve_instance``),
  and it is not persisted either: a recorded instance scheduled without ``ignore_hosts`` is
  unshelved (or resized, which the mark above already tells) -- a new QEMU, a cold move.
- evacuation: ``ignore_hosts = [instance.host]`` (``ComputeTaskManager.rebuild_instance``),
  with a Destination like a live migration's, so the spec alone cannot tell it from a live
  migration.  The instance can: ``API.evacuate`` sets ``task_state = REBUILDING`` and saves it
  before it asks the conductor (``nova/compute/api.py``, ``API.evacuate``: "instance.task_state =
  task_states.REBUILDING"), while ``API.live_migrate`` sets ``MIGRATING``.  :func:`evacuating`
  reads it from the instance's cell (two indexed reads per move request, none for boots).  An
  evacuation starts a new QEMU from the disks: a cold move, which also works when the dead
  source's data has gone stale.  When the instance cannot be read, the move is judged live (fail
  closed).
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


def evacuating(spec_obj: Any) -> bool:
    """True when the instance of ``spec_obj`` is being evacuated (its task_state is REBUILDING;
    a rebuild in place never reaches the filter: ``RUN_ON_REBUILD = False``)."""
    try:
        from nova import context as nova_context
        from nova import objects
        from nova.compute import task_states

        ctx, uuid = spec_obj._context, spec_obj.instance_uuid
        mapping = objects.InstanceMapping.get_by_instance_uuid(ctx, uuid)
        with nova_context.target_cell(ctx, mapping.cell_mapping) as cctx:
            instance = objects.Instance.get_by_uuid(cctx, uuid, expected_attrs=[])
        return instance.task_state == task_states.REBUILDING
    except Exception:  # no context, mapping or instance (or a DB error): unknown, so live (fail closed)
        return False
