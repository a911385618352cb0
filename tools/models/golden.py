#!/usr/bin/env python3
"""Add the realized registers of new models to tests/models/golden/realized.json.

A published model version never changes what the guest sees, so this tool only ADDS entries
for models the golden file does not have yet; it never rewrites an existing entry (a changed
realization must become a new ``-vN`` model instead).  ``--check`` lists what would change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arm_cpu_filter.models import catalog, realize  # noqa: E402

GOLDEN = ROOT / "tests" / "models" / "golden" / "realized.json"


def entry(name: str) -> dict:
    d = realize(name)
    return {"vcpu_features": sorted(d.vcpu_features),
            "registers": {k: f"0x{v:016x}" for k, v in sorted(d.registers.items())}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="only report, write nothing")
    args = ap.parse_args()
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    added = [n for n in sorted(catalog()) if n not in golden]
    changed = [n for n in sorted(golden) if n in catalog() and entry(n) != golden[n]]
    for n in changed:
        print(f"CHANGED (not written; publish a new -vN instead): {n}")
    for n in added:
        print(f"new: {n}")
        golden[n] = entry(n)
    if added and not args.check:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(dict(sorted(golden.items())), indent=1) + "\n")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
