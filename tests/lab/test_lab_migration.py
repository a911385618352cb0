"""Real QEMU restores of the committed migration streams, live, against the recorded corpus and
the engine (``tools.lab.migci`` picks the restores; MIGRATION.rst has the findings).

One boot per destination (host, kernel) with the VMM (``tools.lab.vmm``), two at a time like the
ID-register lab; in the same boot the engine's ``migrate()`` judges the same restores, timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.lab.test_lab import require_qemu
from tools.lab import migci, migcorpus, migrate, run, vmm

pytestmark = pytest.mark.lab


@dataclass
class MigrationLab:
    selection: dict[tuple[str, str], list[dict]]
    boots: dict[tuple[str, str], migrate.MigBoot]
    wall_s: float


@pytest.fixture(scope="module")
def mlab() -> MigrationLab:
    require_qemu()
    vmm.build_vmm()
    selection = migci.selection(migcorpus.load())
    items = [(run.HOST_BY_LABEL[h], k, *migci.boot_spec(h, k, recs)) for (h, k), recs in selection.items()]
    t0 = time.monotonic()
    boots = migrate.boot_all(items)
    for b, (_, _, jobs, _) in zip(boots, items, strict=True):
        missing = [j["id"] for j in jobs if j["id"] not in b.results or "error" in b.results[j["id"]] and j["kind"] != "load"]
        assert not missing, f"{b.host}@{b.kernel}: jobs {missing[:5]} unanswered; rc={b.returncode}\n{b.log[-3000:]}"
    return MigrationLab(selection, {(b.host, b.kernel): b for b in boots}, round(time.monotonic() - t0, 1))


def live_errors(res: dict) -> list[str]:
    return [line for line in [res.get("error"), *res.get("stderr", [])] if line]


def test_qemu_restores_as_recorded(mlab: MigrationLab, capsys: pytest.CaptureFixture[str]) -> None:
    """Every selected restore loads or fails live exactly as recorded, with QEMU's same lines."""
    drift = []
    for dest, recs in mlab.selection.items():
        boot = mlab.boots[dest]
        for rec in recs:
            res = boot.results[migci.job_id(rec)]
            started = res.get("phase") != "start"
            if (bool(res.get("ok")), started) != (rec["loaded"], rec["class"] != "destination-start") or (
                live_errors(res) != rec["errors"]
            ):
                drift.append(f"{dest}: {migci.job_id(rec)} live {res.get('ok')} {live_errors(res)} "
                             f"recorded {rec['loaded']} {rec['errors']}")
    n = sum(map(len, mlab.selection.values()))
    with capsys.disabled():
        print(f"\nmigration lab: {len(mlab.boots)} boots, {n} restores in {mlab.wall_s} s wall (2 at a time)")
        for (h, k), b in mlab.boots.items():
            print(f"  {k:5} {h:12} boot-to-init {b.boot_s}s guest {b.guest_s}s wall {b.wall_s}s "
                  f"restores {len(mlab.selection[h, k])}")
    assert not drift, "\n".join(drift[:20])


def test_engine_in_the_host_agrees_with_qemu(mlab: MigrationLab) -> None:
    """The engine inside each emulated host: the same verdict and blocker kinds as the replay of
    the recorded corpus; never ok where QEMU failed; refused where QEMU loads only for a
    guest-visible vector-length change or one of the corpus's conservative cases (at most 1%,
    bounded by ``test_migration_corpus.py``)."""
    wrong = []
    for dest, recs in mlab.selection.items():
        verdicts = mlab.boots[dest].results["engine"]["verdicts"]
        for rec in recs:
            live, replay = verdicts[migci.job_id(rec)], migcorpus.judge(rec)
            if replay.result is None:
                ok = "refused" in live and rec["class"] == "destination-start"
            else:
                kinds = sorted({b.kind for b in replay.result.blockers})
                ok = live.get("ok") == replay.result.ok and live.get("kinds") == kinds
                ok = ok and replay.verdict in ("agree", "guest-visible-change", "conservative")
            if not ok:
                wrong.append(f"{dest} {migci.job_id(rec)}: in host {live}, replay {replay.verdict}")
    assert not wrong, "\n".join(wrong[:20])


def test_speed_side_by_side(mlab: MigrationLab, capsys: pytest.CaptureFixture[str]) -> None:
    """The engine's ``migrate()`` against QEMU's real restore trial in the same emulated host
    (printed, not asserted: medians per destination; the trial is the whole QEMU start + load)."""

    def median(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    lines = []
    for (h, k), b in mlab.boots.items():
        verdicts = [v for v in b.results["engine"]["verdicts"].values() if "cold_us" in v]
        trials = [r["job_s"] for i, r in b.results.items() if i.startswith("load:") and r.get("phase") == "load"]
        loads = [r["load_s"] for i, r in b.results.items() if i.startswith("load:") and r.get("load_s") is not None]
        assert verdicts and trials
        cold, warm, trial = median([v["cold_us"] for v in verdicts]), median([v["warm_us"] for v in verdicts]), median(trials)
        lines.append(f"  {k:5} {h:12} engine migrate {cold / 1e3:.1f}/{warm / 1e3:.2f} ms (new destination/cached) vs QEMU "
                     f"restore trial {trial:.2f} s (incoming load alone {median(loads):.2f} s): "
                     f"x{trial * 1e6 / cold:.0f}/x{trial * 1e6 / warm:.0f}")  # fmt: skip
    with capsys.disabled():
        print("\nmigration speed (emulated TCG hosts, medians):\n" + "\n".join(lines))
