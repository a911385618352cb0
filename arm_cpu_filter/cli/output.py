"""Shared output helpers for the subcommands (JSON and aligned text tables)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, sort_keys=False) + "\n")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """Plain aligned columns, like virsh's list output."""
    rows = [[str(c) for c in r] for r in rows]
    if header:
        rows = [list(header)] + rows
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    lines = [" ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if header:
        lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines) + "\n"
