"""The live migration lab as CI runs it: which committed streams each destination restores.

Every (host, kernel) that was a destination in the recorded corpus boots once with the VMM and
restores, from the committed streams: its own VM variants onto each of its ``-cpu`` strings (the
feature grid), the same CPU's streams from the other kernels, its twin CPU's (same core family,
other MIDR), and plain ``-cpu host`` streams of a few unrelated hosts; then the engine's
``migrate()`` judges the same restores inside the host, timed. max on 7.3 restores only its own
``-cpu host`` streams: QEMU's KVM setup costs 7-8 s per start there (MIGRATION.rst).
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

from . import build, migcorpus

TWINS = {"cortex-a76": "neoverse-n1", "neoverse-n1": "cortex-a76", "cortex-a710": "neoverse-n2", "neoverse-n2": "cortex-a710"}
SLOW = {("max", "7.3")}
UNRELATED = 3


def stream_of(rec: dict) -> str:
    return Path(rec["stream"]).name.removesuffix(".mig.xz")


def job_id(rec: dict) -> str:
    return f"load:{stream_of(rec)}:{rec['destination']['cpu']}"


def selection(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """(destination host, kernel) -> the recorded restores its boot repeats."""
    by_dest: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        by_dest.setdefault((rec["destination"]["host"], rec["destination"]["kernel"]), []).append(rec)
    out = {}
    for (host, kernel), recs in sorted(by_dest.items()):
        src = [(r["source"]["host"], r["source"]["kernel"]) for r in recs]
        own = [r for r, s in zip(recs, src) if s == (host, kernel)]
        if (host, kernel) in SLOW:
            out[host, kernel] = [r for r in own if r["source"]["cpu"] == "host"]
            continue
        other_kernel = [r for r, s in zip(recs, src) if s[0] == host and s[1] != kernel]
        twin = [r for r, s in zip(recs, src) if s[0] == TWINS.get(host)]
        plain = [r for r, s in zip(recs, src) if s[0] not in (host, TWINS.get(host))
                 and r["source"]["cpu"] == r["destination"]["cpu"] == "host"]  # fmt: skip
        unrelated = sorted(plain, key=lambda r: (r["source"]["host"], r["source"]["kernel"]))
        chosen, hosts = [], set()
        for r in unrelated:
            if r["source"]["host"] not in hosts and len(chosen) < UNRELATED:
                chosen.append(r)
                hosts.add(r["source"]["host"])
        out[host, kernel] = own + other_kernel + twin + chosen
    return out


def fixture_dict(host: str, kernel: str) -> dict:
    return json.loads((migcorpus.FIXTURES / kernel / f"{host}.json").read_text())


def boot_spec(host: str, kernel: str, recs: list[dict]) -> tuple[list[dict], dict[str, bytes]]:
    """The jobs (restores, then the engine on the same restores) and streams of one boot."""
    jobs = [{"id": job_id(r), "kind": "load", "cpu": r["destination"]["cpu"], "stream": stream_of(r)} for r in recs]
    sides = {(host, kernel)} | {(r["source"]["host"], r["source"]["kernel"]) for r in recs}
    jobs.append({
        "id": "engine", "kind": "migrate",
        "snapshots": {f"{h}@{k}": fixture_dict(h, k) for h, k in sorted(sides)},
        "restores": [{"id": job_id(r), "source": f"{r['source']['host']}@{r['source']['kernel']}", "cpu": r["source"]["cpu"],
                      "dest": f"{host}@{kernel}", "dest_cpu": r["destination"]["cpu"]} for r in recs],
    })  # fmt: skip
    streams = {stream_of(r): lzma.decompress((build.REPO / r["stream"]).read_bytes()) for r in recs}
    return jobs, streams
