"""Errors injected into the plugin's internals (engine check, store reads, fleet derivation,
request resolution...) with assorted exception types, driven through Nova's real filter and
weight handlers: nothing ever raises into Nova, the hosts the error touches are refused (one log
line per host, or one per request when the request itself cannot be resolved), the others are
admitted exactly as without the error, and the weigher abstains instead of failing."""

from __future__ import annotations

import errno
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy.exc
from faultkit import ALL, fail_closed_lines, filtered, report, weighed

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.scheduler import fleet as fleet_mod
from arm_cpu_filter.scheduler import request as request_mod
from arm_cpu_filter.scheduler import state
from arm_cpu_filter.snapshot.passthrough import passthrough_definition
from arm_cpu_filter.store import SNAPSHOT, HostStore, StoreError

EXCEPTIONS: list[Callable[[], BaseException]] = [
    lambda: RuntimeError("injected"),
    lambda: KeyError("injected"),
    lambda: ValueError("injected"),
    lambda: ZeroDivisionError("injected"),
    lambda: AttributeError("injected"),
    lambda: TypeError("injected"),
    lambda: OSError(errno.EIO, "injected I/O error"),
    lambda: RecursionError("injected"),
    lambda: MemoryError("injected"),
    lambda: StoreError("injected store error"),
    lambda: InputError("injected input error"),
    lambda: sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("injected")),
]
ROUNDS = 2  # per scenario, each with another exception type
BOOT, MODEL, MOVE = "passthrough boot", "graviton2-v1 boot", "move of a VM started on g3-a"
NORMAL = {BOOT: ALL, MODEL: ["g2-a", "g2-b", "g2-c"], MOVE: ["g3-b"]}


@dataclass
class Scenario:
    name: str
    target: object
    attribute: str
    #: when the injected error fires (arguments of the patched callable), default: always
    fires: Callable[..., bool] = lambda *a, **k: True
    #: admitted hosts per request where they differ from NORMAL
    admitted: dict[str, list[str]] = field(default_factory=dict)
    #: hosts refused with exactly one log line each (for the whole scenario)
    host_lines: set[str] = field(default_factory=set)
    #: requests refused as a whole, one log line each
    request_lines: set[str] = field(default_factory=set)
    weigher_abstains: bool = False


def scenarios(fleet_snapshots) -> list[Scenario]:
    g2, g3 = fleet_snapshots["g2-b"].fingerprint, fleet_snapshots["g3-a"].fingerprint
    everything = {BOOT: [], MODEL: [], MOVE: []}
    return [
        Scenario("engine verdict on the graviton2 snapshot", fleet_mod, "accepts", lambda d, s: s.fingerprint == g2,
                 {MODEL: ["g2-a"]}, host_lines={"g2-b", "g2-c"}, weigher_abstains=True),
        Scenario("store read of the graviton3 snapshot", HostStore, "_load", lambda self, kind, fp: (kind, fp) == (SNAPSHOT, g3),
                 {BOOT: sorted(set(ALL) - {"g3-a", "g3-b"}), MOVE: []}, host_lines={"g3-a", "g3-b"},
                 request_lines={MOVE}),  # the live move's source is g3-a: its VM is unknown
        Scenario("store host listing", HostStore, "hosts", admitted=everything, host_lines=set(ALL)),
        Scenario("store instance lookup", HostStore, "instance", admitted=everything, request_lines={BOOT, MODEL, MOVE}),
        Scenario("fleet derivation", fleet_mod.Fleet, "_derive", weigher_abstains=True),  # the filter's per-host path answers
        Scenario("fleet refresh", fleet_mod.Fleet, "refresh", admitted=everything, request_lines={BOOT, MODEL, MOVE}),
        Scenario("request resolution", state, "resolve", admitted=everything, request_lines={BOOT, MODEL, MOVE}),
        Scenario("flavor extra specs", request_mod.CpuSpec, "from_extra_specs", admitted=everything,
                 request_lines={BOOT, MODEL, MOVE}),
        Scenario("model realization", request_mod, "realize_model", admitted={MODEL: []}, request_lines={MODEL}),
        Scenario("weigher share", fleet_mod.Fleet, "passthrough_share", weigher_abstains=True),
    ]


def _requests(sandbox, vm: str) -> dict[str, object]:
    return {BOOT: sandbox.request_spec({}), MODEL: sandbox.request_spec({"arm_cpu:model": "graviton2-v1"}),
            MOVE: sandbox.request_spec(None, instance_uuid=vm, ignore_hosts=["g3-a"])}


def _inject(monkeypatch, scenario: Scenario, make: Callable[[], BaseException], fired: Counter) -> None:
    real = getattr(scenario.target, scenario.attribute)
    as_class_method = isinstance(scenario.target, type) and isinstance(
        scenario.target.__dict__.get(scenario.attribute), classmethod)

    def injected(*args, **kwargs):
        if scenario.fires(*args, **kwargs):
            fired[scenario.name] += 1
            raise make()
        return (real.__func__(*args, **kwargs) if as_class_method else real(*args, **kwargs))

    monkeypatch.setattr(scenario.target, scenario.attribute, classmethod(injected) if as_class_method else injected)


def test_injected_errors_never_reach_nova(sandbox, fleet_store, fleet_snapshots, monkeypatch, caplog, capsys):
    vm = str(uuid.uuid4())
    fleet_store.record_instance(vm, passthrough_definition(fleet_snapshots["g3-a"], "g3-a"), "g3-a")
    caplog.set_level(logging.INFO, logger="arm_cpu_filter.scheduler")
    fired: Counter[str] = Counter()
    runs = 0
    for i, scenario in enumerate(scenarios(fleet_snapshots)):
        for r in range(ROUNDS):  # a different exception type each round
            make = EXCEPTIONS[(i * ROUNDS + r) % len(EXCEPTIONS)]
            state.reset()
            caplog.clear()
            with monkeypatch.context() as m:
                _inject(m, scenario, make, fired)
                sent: Counter[str] = Counter()
                for _ in range(2):  # twice: problems are logged once, not per request
                    for name, spec in _requests(sandbox, vm).items():
                        got = filtered(sandbox, spec)  # raises if anything escapes into Nova
                        assert got == scenario.admitted.get(name, NORMAL[name]), (scenario.name, name, got)
                        assert sorted(weighed(sandbox, spec)) == ALL
                        sent[name] += 1
            what = f"{scenario.name} / {type(make()).__name__}"
            records = list(caplog.records)
            for host in ALL:
                expected = 1 if host in scenario.host_lines else 0
                assert len(fail_closed_lines(records, host)) == expected, (what, host, fail_closed_lines(records, host))
            per_request = [r for r in records if "refusing every host" in r.getMessage()]
            assert len(per_request) == sum(sent[n] for n in scenario.request_lines), (what, per_request)
            abstained = [r for r in records if r.getMessage().startswith("ArmCpuWeigher abstains")]
            assert bool(abstained) == scenario.weigher_abstains, (what, abstained)
            assert all("\n" not in r.getMessage() for r in records)
            runs += 1
        assert fired[scenario.name] > 0, f"{scenario.name}: the injected error never fired"
    # and with nothing injected, everything is back to normal
    state.reset()
    for name, spec in _requests(sandbox, vm).items():
        assert filtered(sandbox, spec) == NORMAL[name]
    report(capsys, "injected errors", scenarios=len(fired), runs=runs, errors_raised=sum(fired.values()),
           exception_types=len({type(e()).__name__ for e in EXCEPTIONS}), per_scenario=dict(fired))
