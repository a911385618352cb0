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
  with a Destination like a live migration's.  It cannot be told from a live migration, so it is
  treated as live (fail closed): an evacuation succeeds only where a live migration would, and a
  host whose data went stale with it refuses the evacuation of its VMs.
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
