"""Lab test setup: make ``tools.lab`` importable, and boot QEMU only when asked to.

The live lab takes minutes (18 guest boots), so tests marked ``lab`` are skipped, with the
reason, unless selected with ``-m lab`` (or ARM_CPU_FILTER_LAB=1 is set).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "lab" in (config.getoption("-m") or "") or os.environ.get("ARM_CPU_FILTER_LAB") == "1":
        return
    skip = pytest.mark.skip(reason="real-KVM lab (boots QEMU, ~5 min): run with pytest -m lab")
    for item in items:
        if item.get_closest_marker("lab"):
            item.add_marker(skip)
