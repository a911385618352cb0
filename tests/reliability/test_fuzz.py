"""Fuzzing every input surface (``arm_cpu_filter.testing.fuzz``), the CI-sized run: each target's cases
through the real entry point must produce no bug, and must reach both the path that accepts
the input and the path that refuses it (else the generator is not testing the parser).
``arm-cpu-filter fuzz`` runs 100,000 cases per target; the counts are printed here."""

from __future__ import annotations

import json
import sys
import time

import pytest

from arm_cpu_filter.cli import main
from arm_cpu_filter.errors import ArmCpuFilterError, InputError
from arm_cpu_filter.testing.fuzz import TARGETS, FuzzSetupError, Target
from arm_cpu_filter.testing.fuzz.runner import Limits, run_target

CI_CASES = 1500


def _line(report) -> str:
    refused = ", ".join(f"{k} {v}" for k, v in report.refused.most_common())
    return (f"fuzz {report.target}: {report.cases} cases, {report.ok} ok, {sum(report.refused.values())} refused "
            f"({refused}), {report.bug_count} bugs, {report.seconds:.1f} s, {report.cases_per_second:.0f} cases/s, "
            f"peak RSS {report.peak_rss_mib:.0f} MiB")


@pytest.mark.parametrize("name", list(TARGETS))
def test_target_has_no_bugs_and_reaches_both_paths(name, capsys):
    report = run_target(name, CI_CASES, seed=0)
    with capsys.disabled():
        print(f"\n{_line(report)}")
    assert report.skipped is None, report.skipped
    assert report.cases == CI_CASES
    bugs = [f"{b.kind} at {b.where}: {b.error}; input {b.input}" for b in report.first_bugs]
    assert report.bug_count == 0, "\n".join(bugs)
    assert report.ok + sum(report.refused.values()) == CI_CASES
    assert report.ok >= CI_CASES // 20, f"only {report.ok} cases were accepted: the seeds no longer work"
    assert sum(report.refused.values()) >= CI_CASES // 5, "too few refusals: the mutations do not reach the checks"


def test_same_seed_same_cases():
    """A run is reproducible from its seed (how a reported bug is replayed)."""
    a, b = run_target("model-spec", 300, seed=7), run_target("model-spec", 300, seed=7)
    assert (a.ok, a.refused) == (b.ok, b.refused)
    c = run_target("model-spec", 300, seed=8)
    assert (c.ok, c.refused) != (a.ok, a.refused)


class _Buggy(Target):
    """A target with planted bugs: an uncaught KeyError, a CPU-hungry case, a documented refusal."""

    name = "buggy"
    tokens = (b"x",)

    def seeds(self):
        return [b"ok", b"refuse", b"crash", b"spin"]

    def structural(self, seed, rng):
        return seed

    def encode(self, value, rng):
        return value

    def run(self, case):
        if case == b"refuse":
            raise InputError("refused as documented")
        if case == b"crash":
            return {}["planted"]
        if case == b"spin":
            end = time.process_time() + 0.05
            while time.process_time() < end:
                pass
        return None


@pytest.fixture
def buggy(monkeypatch):
    monkeypatch.setitem(TARGETS, "buggy", f"{__name__}:_Buggy")


def test_planted_bugs_are_found_with_reproducers(buggy):
    report = run_target("buggy", 400, seed=1, limits=Limits(case_seconds=0.02))
    assert report.ok > 0 and report.refused["InputError"] > 0
    kinds = {b.kind: b for b in report.first_bugs}
    assert kinds["exception"].error == "KeyError: 'planted'"
    assert kinds["exception"].where.startswith("test_fuzz.py:")  # the frame that raised
    assert kinds["exception"].input == "b'crash'"
    assert kinds["slow"].input == "b'spin'" and "of CPU (limit 0.02 s)" in kinds["slow"].error
    assert report.ok + sum(report.refused.values()) + report.bug_count == report.cases == 400


def test_cli_reports_counts_and_exit_status(buggy, capsys):
    assert main(["fuzz", "--target", "model-spec", "--cases", "200", "--seed", "3", "--format", "json",
                 "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    (spec,) = out["targets"]
    assert (out["bugs"], spec["target"], spec["cases"], spec["bugs"]) == (0, "model-spec", 200, 0)
    assert spec["ok"] + spec["refused"] == 200 and spec["ok"] > 0 and spec["refused"] > 0
    assert set(spec["refused_by_class"]) <= {"InputError", "UnknownNameError"}
    assert spec["cases_per_second"] > 0 and spec["peak_rss_mib"] > 0

    assert main(["fuzz", "--target", "buggy", "--cases", "100", "--quiet"]) == 1
    text = capsys.readouterr().out
    assert "buggy: 100 cases: " in text and "BUG x" in text and "KeyError: 'planted'" in text
    assert "first reproducer (case " in text and "b'crash'" in text
    assert text.rstrip().splitlines()[-1].startswith("total: 100 cases over 1 targets, ")


def test_missing_hypothesis_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(FuzzSetupError, match=r"pip install 'arm-cpu-filter\[fuzz\]'"):
        run_target("model-spec", 10)
    assert main(["fuzz", "--target", "model-spec", "--cases", "10"]) == 2
    assert "fuzzing needs hypothesis: pip install 'arm-cpu-filter[fuzz]'" in capsys.readouterr().err


def test_unknown_target_is_a_clear_error():
    with pytest.raises(ArmCpuFilterError, match="unknown fuzz target 'nope' \\(targets: snapshot, definition, "):
        run_target("nope", 10)
