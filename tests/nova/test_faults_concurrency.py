"""Concurrent agents and a reader: several publisher processes rewrite the same hosts with
different snapshots while a reader process (the scheduler's Fleet, snapshot cache cleared every
time) reads in a loop.  The reader only ever sees complete, self-consistent records (a known
snapshot whose content matches its fingerprint), for the file store, SQLite and PostgreSQL --
and the tables are created by whichever agent comes first, with the others racing it."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from faultkit import BACKENDS, PYTHON, WORKER, backend_url, report

from arm_cpu_filter.store import open_store

PUBLISHERS = 3
SECONDS = float(os.environ.get("ARM_CPU_FILTER_FAULT_SECONDS", "4"))
HOSTS = "h0,h1,h2,h3"
SNAPSHOTS = "graviton2,graviton3,graviton4,altra"


@pytest.mark.parametrize("backend", BACKENDS)
def test_readers_see_old_or_new_never_half(backend, tmp_path, request, capsys):
    url = backend_url(backend, tmp_path, request)
    start = time.time() + 3.0  # every process imported and waiting: they start together
    end = start + SECONDS
    procs = [subprocess.Popen([PYTHON, str(WORKER), "publish-loop", url, str(start), str(end), str(seed), HOSTS, SNAPSHOTS],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(PUBLISHERS)]
    reader = subprocess.Popen([PYTHON, str(WORKER), "read-loop", url, str(start), str(end), HOSTS, SNAPSHOTS],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = []
    for proc in [*procs, reader]:
        out, err = proc.communicate(timeout=SECONDS + 120)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out))
    *writers, read = results
    published = sum(w["published"] for w in writers)
    write_errors = sum(w["write_errors"] for w in writers)
    assert read["inconsistent"] == 0, read["first_inconsistent"]
    assert read["unavailable"] == 0
    assert read["iterations"] > 10 and read["checks"] > 10 and read["changes_seen"] > 0, read
    assert published > 20 and write_errors == 0, [w["first_errors"] for w in writers]
    final = open_store(url).hosts()
    assert sorted(final) == HOSTS.split(",") and not any(r.problem for r in final.values())
    report(capsys, f"concurrency/{backend}", publisher_processes=PUBLISHERS, seconds=SECONDS, publishes=published,
           write_errors=write_errors, reader_iterations=read["iterations"], records_checked=read["checks"],
           changes_seen_by_reader=read["changes_seen"], inconsistent=read["inconsistent"])
