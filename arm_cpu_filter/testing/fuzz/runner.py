"""Running one fuzz target: hypothesis draws every case (a real seed, how to mutate it, and the
``random.Random`` the mutation uses), the case goes through the target's real entry point under a
time and memory watch, and its outcome is counted: ok, refused (by error class) or a bug.

Hypothesis settings: no example database (nothing written), no deadline (the per-case limit is
ours and reported, not a test failure), generation only (a bug is recorded, never raised, so
there is nothing to shrink), a fixed seed per batch (a run is reproduced by ``--seed``), and the
``too_slow`` / ``data_too_large`` health checks off: they are timing and size heuristics that
would abort a long run on a loaded machine, and our large inputs are built by the mutations, not
drawn from hypothesis' buffer.  Cases run in batches of ``BATCH`` so hypothesis' per-run
bookkeeping stays small over 100,000 cases.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import resource
import signal
import threading
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arm_cpu_filter.errors import MissingExtra
from arm_cpu_filter.extras import require
from arm_cpu_filter.testing.fuzz import KINDS, FuzzSetupError, Target, load_target

BATCH = 2000
#: Bugs kept with their reproducer (the first of each distinct kind, up to this many).
KEEP = 10


@dataclass(frozen=True)
class Limits:
    #: a case using more CPU time than this is a bug (``slow``); CPU, not wall-clock, time so
    #: that a loaded machine does not make false positives
    case_seconds: float = 2.0
    #: a case is interrupted after this long, wall-clock (``hang``)
    hard_seconds: float = 20.0
    #: a case that raises the process' peak RSS by more than this is a bug (``memory``)
    case_mib: float = 256.0
    #: RSS growth over the whole run beyond this is a bug (a leak)
    growth_mib: float = 512.0


@dataclass
class Bug:
    kind: str
    error: str
    where: str
    case: int
    input: str

    @property
    def signature(self) -> str:
        return f"{self.kind}: {self.error.split(':')[0]} at {self.where}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "error": self.error, "where": self.where, "case": self.case, "input": self.input}


@dataclass
class Report:
    target: str
    description: str = ""
    seed: int = 0
    cases: int = 0
    ok: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    bugs: Counter[str] = field(default_factory=Counter)
    first_bugs: list[Bug] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    slowest_case_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    rss_growth_mib: float = 0.0
    skipped: str | None = None

    @property
    def bug_count(self) -> int:
        return sum(self.bugs.values())

    @property
    def cases_per_second(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0

    def add_bug(self, bug: Bug) -> None:
        sig = bug.signature
        if sig not in self.bugs and len(self.first_bugs) < KEEP:
            self.first_bugs.append(bug)
        self.bugs[sig] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "description": self.description, "seed": self.seed, "skipped": self.skipped,
            "cases": self.cases, "ok": self.ok, "refused": sum(self.refused.values()),
            "refused_by_class": dict(self.refused.most_common()), "bugs": self.bug_count,
            "bugs_by_kind": dict(self.bugs.most_common()), "first_bugs": [b.to_dict() for b in self.first_bugs],
            "seconds": round(self.seconds, 2), "cpu_seconds": round(self.cpu_seconds, 2),
            "cases_per_second": round(self.cases_per_second, 1),
            "slowest_case_cpu_seconds": round(self.slowest_case_seconds, 4),
            "peak_rss_mib": round(self.peak_rss_mib, 1), "rss_growth_mib": round(self.rss_growth_mib, 1),
        }


def _hypothesis() -> Any:
    try:
        return require("hypothesis", "fuzzing")
    except MissingExtra as exc:
        raise FuzzSetupError(str(exc)) from None


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except OSError:  # not Linux: the peak is the best we have
        return _peak_mib()


class _Hang(BaseException):
    """Raised in the case by the hard-limit timer (a BaseException: ``except Exception`` in the
    code under test must not swallow it)."""


def _on_alarm(_signum: int, _frame: Any) -> None:
    raise _Hang()


def _show(case: Any, limit: int = 600) -> str:
    text = repr(case)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters in all)"


def _where(exc: BaseException) -> str:
    """The innermost frame of the project (else the innermost frame) that raised ``exc``."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "arm_cpu_filter" in f.filename and "/fuzz/" not in f.filename]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "?"
    path = frame.filename.replace(os.sep, "/")
    cut = path.rfind("arm_cpu_filter/")
    return f"{path[cut:] if cut >= 0 else os.path.basename(path)}:{frame.lineno}"


class _Case:
    """Runs one case of a target under the limits and counts its outcome in the report."""

    def __init__(self, target: Target, report: Report, limits: Limits, timer: bool) -> None:
        self.target, self.report, self.limits, self.timer = target, report, limits, timer

    def __call__(self, case: Any) -> None:
        report, limits = self.report, self.limits
        index = report.cases
        report.cases += 1
        peak = _peak_mib()
        bug: Bug | None = None
        label: str | None = None
        start = time.process_time()
        if self.timer:
            signal.setitimer(signal.ITIMER_REAL, limits.hard_seconds)
        try:
            try:
                label = self.target.run(case)
            finally:
                if self.timer:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except self.target.documented as exc:
            label = type(exc).__name__
        except _Hang as exc:
            bug = Bug("hang", f"interrupted after {limits.hard_seconds:g} s", _where(exc), index, _show(case))
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0][:300]
            bug = Bug("exception", f"{type(exc).__name__}: {first}", _where(exc), index, _show(case))
        elapsed = time.process_time() - start
        report.slowest_case_seconds = max(report.slowest_case_seconds, elapsed)
        grown = _peak_mib() - peak
        if bug is None and elapsed > limits.case_seconds:
            bug = Bug("slow", f"took {elapsed:.2f} s of CPU (limit {limits.case_seconds:g} s)", "-", index, _show(case))
        if bug is None and grown > limits.case_mib:
            bug = Bug("memory", f"peak RSS grew by {grown:.0f} MiB (limit {limits.case_mib:g})", "-", index, _show(case))
        if bug is not None:
            report.add_bug(bug)
        elif label is None:
            report.ok += 1
        else:
            report.refused[label] += 1


def _batch(target: Target, seeds: list[Any], count: int, batch_seed: int, run_case: _Case) -> None:
    hypothesis = _hypothesis()
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import strategies as st

    @hypothesis.seed(batch_seed)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate], verbosity=Verbosity.quiet,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.sampled_from(seeds), st.sampled_from(KINDS), st.randoms(use_true_random=True))
    def cases(seed: Any, kind: str, rng: Any) -> None:
        run_case(target.case(seed, kind, rng))

    cases()


def batch_seed(seed: int, target: str, batch: int) -> int:
    """The hypothesis seed of one batch (stable across runs, different per target and batch)."""
    return (seed * 1_000_003 + zlib.crc32(target.encode()) * 7919 + batch) % (1 << 64)


def run_target(name: str, cases: int, seed: int = 0, limits: Limits | None = None,
               progress: Callable[[Report], None] | None = None) -> Report:
    """Fuzz target ``name`` with ``cases`` cases; a target whose optional dependency is missing
    is skipped (``Report.skipped`` says why)."""
    _hypothesis()
    limits = limits or Limits()
    target = load_target(name)
    report = Report(name, target.description, seed)
    missing = [m for m in target.needs if importlib.util.find_spec(m) is None]
    if missing:
        report.skipped = f"needs {', '.join(missing)} (pip install 'arm-cpu-filter[test]')"
        return report
    timer = threading.current_thread() is threading.main_thread()  # signals work there only
    old_handler = signal.signal(signal.SIGALRM, _on_alarm) if timer else None
    target.open()
    try:
        seeds = list(target.seeds())
        run_case = _Case(target, report, limits, timer)
        gc.collect()
        rss0, leak_reported, batch = _rss_mib(), False, 0
        start, cpu = time.perf_counter(), time.process_time()
        while report.cases < cases:
            before = report.cases
            _batch(target, seeds, min(BATCH, cases - report.cases), batch_seed(seed, name, batch), run_case)
            batch += 1
            report.seconds, report.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
            report.rss_growth_mib = _rss_mib() - rss0
            if report.rss_growth_mib > limits.growth_mib and not leak_reported:
                leak_reported = True
                report.add_bug(Bug("memory", f"RSS grew by {report.rss_growth_mib:.0f} MiB over {report.cases} cases "
                                   f"(limit {limits.growth_mib:g})", "-", report.cases - 1, "(the whole run)"))
            if progress is not None:
                progress(report)
            if report.cases == before:  # hypothesis has nothing new to draw
                break
        report.peak_rss_mib = _peak_mib()
        return report
    finally:
        target.close()
        if timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL if old_handler is None else old_handler)
