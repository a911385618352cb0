"""A whole Nova end to end (its REST API, conductor, scheduler and fake computes, with
Placement's own app): run only with ``ARM_CPU_FILTER_FUNCTIONAL=1``, in a pytest process of
its own (``tools/run-tests.sh`` does), because Nova's fixtures patch the process (eventlet,
thread-pool checks) in ways the in-process scheduler tests of ``tests/nova`` do not survive."""

from __future__ import annotations

import os

ENABLED = os.environ.get("ARM_CPU_FILTER_FUNCTIONAL") == "1"

if ENABLED:
    # before any other Nova module: it sets up Nova's threading mode for its test framework
    import nova.tests.functional  # noqa: F401


def pytest_ignore_collect(collection_path, config):
    """Skip the directory (not even imported) unless the whole-Nova run is asked for."""
    if not ENABLED:
        return True
    return None

