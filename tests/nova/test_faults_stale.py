"""Stale data through Nova's real scheduler: a host whose snapshot is older than
``[arm_cpu_filter] max_snapshot_age`` (or claims to come from the future) is refused until it
republishes; a host whose kernel or boot changed is refused from the moment its agent starts --
the real agent, before its slow KVM read (here a FIFO the test holds shut) -- until the fresh
snapshot is published, and stays refused when that read fails."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from faultkit import ALL, PYTHON, fail_closed_lines, filtered, plugin_options, report

from arm_cpu_filter.agent import current_boot
from arm_cpu_filter.snapshot import dumps


def test_snapshot_older_than_the_limit_is_refused_until_republished(sandbox, fleet_store, fleet_snapshots, caplog):
    caplog.set_level(logging.INFO, logger="arm_cpu_filter.scheduler")
    now = time.time()
    with plugin_options(store_url=fleet_store.url, max_snapshot_age=120):
        fleet_store.publish(fleet_snapshots["g2-c"], host="g2-c", taken_at=now - 119)
        fleet_store.publish(fleet_snapshots["g3-b"], host="g3-b", taken_at=now + 900)  # a clock far ahead
        out = sandbox.schedule(sandbox.request_spec({}))
        assert sorted(h for h, _ in out.admitted) == sorted(set(ALL) - {"g3-b"})
        assert "claims to be taken 15 min in the future (limit 120 s): check the clocks" in out.refused["g3-b"]
        fleet_store.publish(fleet_snapshots["g2-c"], host="g2-c", taken_at=now - 125)
        for _ in range(3):
            out = sandbox.schedule(sandbox.request_spec({}))
            assert "g2-c" not in [h for h, _ in out.admitted]
        assert re.match(r"CPU data of host g2-c is stale \(taken 12[5-9] s ago, limit 120 s\): is its agent running\?$",
                        out.refused["g2-c"]), out.refused["g2-c"]
        assert len(fail_closed_lines(caplog.records, "g2-c")) == 1  # once, though its age text changes
        fleet_store.publish(fleet_snapshots["g2-c"], host="g2-c")  # the agent comes back
        assert "g2-c" in filtered(sandbox, sandbox.request_spec({}))
    with plugin_options(store_url=fleet_store.url, max_snapshot_age=0):  # 0: no age limit
        fleet_store.publish(fleet_snapshots["g2-c"], host="g2-c", taken_at=now - 30 * 86400)
        assert "g2-c" in filtered(sandbox, sandbox.request_spec({}))


class FifoAgent:
    """``arm-cpu-filter agent --once`` whose snapshot read blocks on a FIFO until ``feed()``."""

    def __init__(self, tmp_path: Path, url: str, host: str) -> None:
        self.fifo = tmp_path / f"{host}.snapshot.json"
        os.mkfifo(self.fifo)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "arm_cpu_filter", "agent", "--once", "--from-file", str(self.fifo), "--host", host,
             "--store-url", url, "--no-libvirt", "--no-provider-config", "--format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def feed(self, text: str) -> dict:
        deadline = time.time() + 60
        while True:  # the agent opens the FIFO for reading once its withdrawal is done
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                assert exc.errno == errno.ENXIO and time.time() < deadline and self.proc.poll() is None, exc
                time.sleep(0.05)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        out, err = self.proc.communicate(timeout=120)
        return {"code": self.proc.returncode, "report": json.loads(out) if out.strip() else None, "stderr": err}


def _wait_for_problem(store, host: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rec = store.host(host)
        if rec.problem:
            return rec.problem
        time.sleep(0.05)
    raise AssertionError(f"the agent did not withdraw {host} within {timeout} s")


@pytest.mark.parametrize("change", ["kernel", "boot id"])
def test_agent_withdraws_before_reading_after_a_reboot(change, sandbox, fleet_store, fleet_snapshots, tmp_path,
                                                       caplog, capsys):
    caplog.set_level(logging.INFO, logger="arm_cpu_filter.scheduler")
    boot = current_boot()
    if change == "boot id" and boot.boot_id is None:
        pytest.skip("no /proc/sys/kernel/random/boot_id here")
    g3 = fleet_snapshots["g3-a"]
    # what this host's agent published before the reboot
    before = ("5.10.0-old-arm64", boot.boot_id) if change == "kernel" else (boot.kernel, "00000000-dead-4bee-8f00-000000000000")
    fleet_store.publish(g3, host="g3-a", kernel=before[0], boot_id=before[1])
    with plugin_options(store_url=fleet_store.url):
        assert "g3-a" in filtered(sandbox, sandbox.request_spec({}))
        agent = FifoAgent(tmp_path, fleet_store.url, "g3-a")
        problem = _wait_for_problem(fleet_store, "g3-a")  # withdrawn while the read still blocks
        expected = (f"kernel changed from 5.10.0-old-arm64 to {boot.kernel}" if change == "kernel"
                    else "host rebooted (boot id 00000000-dead-4bee-8f00-000000000000 -> ")
        assert expected in problem
        for _ in range(3):
            out = sandbox.schedule(sandbox.request_spec({}))
            assert sorted(h for h, _ in out.admitted) == sorted(set(ALL) - {"g3-a"})
        assert out.refused["g3-a"].startswith("CPU data of host g3-a withdrawn by its agent: ")
        assert "refused until the agent publishes a fresh snapshot" in out.refused["g3-a"]
        lines = fail_closed_lines(caplog.records, "g3-a")
        assert len(lines) == 1 and "\n" not in lines[0]
        assert agent.proc.poll() is None  # still reading

        result = agent.feed(dumps(g3))
        assert result["code"] == 0, result["stderr"]
        assert any("withdrew the previous CPU data before reading" in n for n in result["report"]["notes"])
        assert "g3-a" in filtered(sandbox, sandbox.request_spec({}))
        rec = fleet_store.host("g3-a")
        assert (rec.kernel, rec.boot_id, rec.problem) == (boot.kernel, boot.boot_id, None)

        (tmp_path / "again").mkdir()
        result = FifoAgent(tmp_path / "again", fleet_store.url, "g3-a").feed(dumps(g3))  # same boot: nothing to withdraw
        assert result["code"] == 0 and not result["report"]["notes"], result
    report(capsys, f"stale/{change} changed", withdrawn_before_read=1, log_lines_while_withdrawn=len(lines))


def test_failed_read_after_a_reboot_keeps_the_host_refused(sandbox, fleet_store, fleet_snapshots, tmp_path):
    fleet_store.publish(fleet_snapshots["g3-a"], host="g3-a", kernel="5.10.0-old-arm64", boot_id=None)
    with plugin_options(store_url=fleet_store.url):
        agent = FifoAgent(tmp_path, fleet_store.url, "g3-a")
        _wait_for_problem(fleet_store, "g3-a")
        result = agent.feed('{"format": 1, "host": "g3-a", "registers": {"MIDR_EL1": "0xzz"}}')  # a broken read
        assert result["code"] == 2 and len(result["stderr"].strip().splitlines()) == 1, result["stderr"]
        assert "stays withdrawn: kernel changed from 5.10.0-old-arm64" in result["stderr"]
        assert "g3-a" not in filtered(sandbox, sandbox.request_spec({}))
        assert "kernel changed from 5.10.0-old-arm64" in fleet_store.host("g3-a").problem
