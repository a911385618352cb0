"""Crashes while writing: the real agent loop and the real ``publish`` command SIGKILLed at
random points, and a full disk (size- and inode-limited tmpfs).  After every fault the store
holds the old or the new state, never a half one, and Nova's real filter handler admits the host
exactly as that state says (or refuses it): it never admits on a half-written snapshot."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from faultkit import BACKENDS, PYTHON, WORKER, backend_url, filtered, plugin_options, report

from arm_cpu_filter.agent.provider_config import trait_name
from arm_cpu_filter.engine import check
from arm_cpu_filter.engine.catalog import usable_models
from arm_cpu_filter.models import realize
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.store import StoreError, open_store

#: kills per backend (the agent loop); the publish command gets half as many
KILLS = int(os.environ.get("ARM_CPU_FILTER_FAULT_KILLS", "60"))
#: seconds after a fork the kill may land in: a few agent rounds (an SQL round takes longer, and a
#: MariaDB agent's first connection alone takes about 0.1-0.2 s on a loaded machine)
WINDOWS = {"file": 0.08, "sqlite": 0.25, "postgresql": 0.25, "mysql": 1.0}
#: host g2-a alternates between these two; only A realizes the altra-v1 model
HOST, A, B, MODEL = "g2-a", "graviton2-7.3", "graviton2", "altra-v1"


class Observer:
    """Reads the store afresh after each fault and asks Nova's filter about HOST."""

    def __init__(self, url: str, sandbox, provider_config: Path | None = None) -> None:
        self.store, self.sandbox, self.provider_config = open_store(url), sandbox, provider_config
        snaps = {name: sample_host(name) for name in (A, B)}
        self.names = {s.fingerprint: name for name, s in snaps.items()}
        model = realize(MODEL)
        self.accepts = {s.fingerprint: check(model, s).usable for s in snaps.values()}
        assert sorted(self.accepts.values()) == [False, True]
        self.traits = {tuple(sorted(trait_name(m) for m in usable_models(s))) for s in snaps.values()}
        self.seen: Counter[str] = Counter()
        self.changes = 0
        self._last: str | None = None

    def check(self) -> str:
        rec, admitted = self._settled()
        if rec is None:
            state = "none yet"
            assert HOST not in admitted
        else:
            assert rec.problem is None, rec.problem
            assert rec.fingerprint in self.names, rec
            assert self.store.snapshot(rec.fingerprint).fingerprint == rec.fingerprint
            state = self.names[rec.fingerprint]
            assert (HOST in admitted) == self.accepts[rec.fingerprint], (state, admitted)
            assert set(admitted) <= {HOST, "altra-a"}
        if self.provider_config is not None and self.provider_config.exists():
            from nova.compute import provider_config as nova_pc

            parsed = nova_pc._parse_provider_yaml(str(self.provider_config))  # complete, or Nova would refuse it
            assert tuple(sorted(parsed["providers"][0]["traits"]["additional"])) in self.traits
        self.seen[state] += 1
        self.changes += self._last is not None and state != self._last
        self._last = state
        return state

    def _settled(self):
        """HOST's record and what Nova's filter admits, read while the record stays the same.  A
        database server may still finish a killed agent's COMMIT (sent before the kill) a moment
        later: a record that changes between the two reads is read again, never judged half-way."""
        for _ in range(100):
            self.store._blobs.clear()  # load the body again: verified against its fingerprint
            rec = self.store.host(HOST)
            admitted = filtered(self.sandbox, self.sandbox.request_spec({"arm_cpu:model": MODEL}))
            again = self.store.host(HOST)
            if (rec and rec.fingerprint) == (again and again.fingerprint):
                return rec, admitted
            time.sleep(0.01)
        raise AssertionError(f"{HOST}'s record kept changing after the agent was killed")


def _first_round_seconds(proc: subprocess.Popen, store) -> float:
    """Start one agent, wait (polling the store) until its first publish lands, kill it: the
    seconds one round takes on this machine now."""
    proc.stdin.write("go\n")
    proc.stdin.flush()
    pid = int(proc.stdout.readline())
    start = time.monotonic()
    while store.host(HOST) is None:
        assert time.monotonic() - start < 120, "the agent published nothing in 120 s"
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    os.kill(pid, signal.SIGKILL)
    assert proc.stdout.readline().split() == ["reaped", str(signal.SIGKILL)]
    return elapsed


def _leftover_temporaries(*dirs: Path) -> int:
    return sum(1 for d in dirs if d.is_dir() for name in os.listdir(d) if name.endswith(".tmp"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_agent_killed_at_random_points(backend, sandbox, tmp_path, request, capsys):
    url = backend_url(backend, tmp_path, request)
    provider = tmp_path / "provider" / "arm-cpu-filter.yaml"
    observer = Observer(url, sandbox, provider)
    rng = random.Random(f"agent-{backend}")
    window = WINDOWS[backend]
    kills = 0
    with plugin_options(store_url=url):
        proc = subprocess.Popen([PYTHON, str(WORKER), "fork-server", url, HOST, A, B, str(provider)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            observer.check()  # "none yet": nothing published before the first agent ran
            # The kills must span a few agent rounds whatever the machine's load: stretch the window
            # to three times the first round measured here (the calibration agent is killed too).
            window = max(window, 3 * _first_round_seconds(proc, observer.store))
            kills += 1
            observer.check()
            for _ in range(KILLS - 1):
                proc.stdin.write("go\n")
                proc.stdin.flush()
                pid = int(proc.stdout.readline())
                time.sleep(rng.uniform(0.0, window))
                os.kill(pid, signal.SIGKILL)
                kills += 1
                assert proc.stdout.readline().split() == ["reaped", str(signal.SIGKILL)]  # killed, not crashed
                observer.check()
        finally:
            proc.stdin.close()
            proc.wait(timeout=60)
    assert kills == KILLS
    assert observer.seen[A] and observer.seen[B], observer.seen  # the kills landed in different rounds
    figures = {"agent processes SIGKILLed": kills, "kill window s": round(window, 3),
               "states seen": dict(observer.seen), "state changes": observer.changes}
    if backend == "file":  # each left-over temporary file is a kill inside an atomic write
        figures["kills inside a file write (temporaries left)"] = _leftover_temporaries(
            tmp_path / "store" / "hosts", tmp_path / "store" / "snapshots", provider.parent)
    report(capsys, f"crash/{backend}", **figures)


@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_publish_command_killed_at_random_points(backend, sandbox, tmp_path, request, capsys):
    url = backend_url(backend, tmp_path, request)
    observer = Observer(url, sandbox)
    command = [PYTHON, "-m", "arm_cpu_filter", "publish", "--host", HOST, "--store-url", url]
    runs = []
    for name in (A, B, A):  # the first run may be slow (cold caches, table creation)
        started = time.monotonic()
        subprocess.run(command + [name], check=True, capture_output=True, timeout=120)
        runs.append(time.monotonic() - started)
    lifetime = min(runs)
    rng = random.Random(f"publish-{backend}")
    outcome: Counter[str] = Counter()
    with plugin_options(store_url=url):
        observer.check()
        for i in range(max(1, KILLS // 2)):
            proc = subprocess.Popen(command + [(A, B)[i % 2]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 1.1) * lifetime)  # mostly late: where the writes are
            proc.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=60)
            outcome["killed" if code == -signal.SIGKILL else f"exited {code}"] += 1
            observer.check()
    assert outcome["killed"] >= KILLS // 8, outcome  # most runs were really killed
    assert set(outcome) <= {"killed", "exited 0"}, outcome
    report(capsys, f"crash/publish command/{backend}", publish_processes=sum(outcome.values()),
           SIGKILLed=outcome["killed"], finished_first=outcome["exited 0"], states_seen=dict(observer.seen),
           run_time_s=round(lifetime, 2))


# -- a full disk -------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs mount of 320 KiB and 64 inodes (needs root, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI runs these tests as root)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k,nr_inodes=64,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> Path:
    """Take every free block of ``mnt``; returns the filler file."""
    filler = mnt / "filler"
    with open(filler, "wb", buffering=0) as fh:  # unbuffered: nothing left to flush on close
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _take_inodes(mnt: Path) -> list[Path]:
    taken = []
    try:
        while True:
            p = mnt / f"inode-{len(taken)}"
            p.touch()
            taken.append(p)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    return taken


@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_full_disk_keeps_the_old_state(backend, small_disk, sandbox, fleet_snapshots, capsys):
    url = f"file://{small_disk}/store" if backend == "file" else f"sqlite:///{small_disk}/store.sqlite"
    store = open_store(url)
    fleet = {h: fleet_snapshots[h] for h in ("g2-a", "g2-b", "g3-a", "altra-a")}
    for host, snap in fleet.items():
        store.publish(snap, host=host)
    altra = {"arm_cpu:model": MODEL}
    faults: Counter[str] = Counter()
    with plugin_options(store_url=url):
        assert filtered(sandbox, sandbox.request_spec(altra)) == ["altra-a", "g2-a"]
        exhausts = [("no free block", _fill), ("no free inode", _take_inodes)]
        for kind, exhaust in exhausts if backend == "file" else exhausts[:1]:  # SQLite's WAL file exists already
            taken = exhaust(small_disk)
            attempts = [
                ("new snapshot", lambda: store.publish(sample_host(B), host="g2-a")),  # would drop g2-a
                ("new host", lambda: store.publish(sample_host("grace"), host="g4-a")),
                ("new instance", lambda: store.record_instance(str(uuid.uuid4()), sample_host(A).as_definition(), "g2-a")),
                ("heartbeat", lambda: store.publish(fleet["g2-b"], host="g2-b", taken_at=time.time())),
            ]
            for what, attempt in attempts:
                with pytest.raises(StoreError, match="space|full"):
                    attempt()
                faults[f"{kind}: {what}"] += 1
                # the old state, intact and trusted: g2-a still has its 7.3 snapshot, g4-a has nothing
                state_admitted = filtered(sandbox, sandbox.request_spec(altra))
                assert state_admitted == ["altra-a", "g2-a"], (kind, what, state_admitted)
            agent = subprocess.run(
                [PYTHON, "-m", "arm_cpu_filter", "agent", "--once", "--from-file", "grace", "--host", "g3-a",
                 "--store-url", url, "--no-libvirt", "--provider-config", str(small_disk / "pc.yaml")],
                capture_output=True, text=True, timeout=120)
            assert agent.returncode == 2 and len(agent.stderr.strip().splitlines()) == 1, agent.stderr
            assert "space" in agent.stderr or "full" in agent.stderr, agent.stderr
            faults[f"{kind}: agent round"] += 1
            store._blobs.clear()
            assert store.host("g3-a").fingerprint == fleet["g3-a"].fingerprint  # not the grace snapshot
            assert not [p for p in small_disk.rglob("*.tmp")], "a failed write left a temporary file"
            for p in [taken] if isinstance(taken, Path) else taken:
                p.unlink()
        # with room again, the same writes go through
        store.publish(sample_host(B), host="g2-a")
        assert filtered(sandbox, sandbox.request_spec(altra)) == ["altra-a"]
    report(capsys, f"disk full/{backend}", faults_injected=sum(faults.values()), by_kind=dict(faults))
