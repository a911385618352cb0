"""Process-wide state of the Nova plugin: the fleet view built from ``[arm_cpu_filter]``
options, the per-request CPU resolution shared by the filter and the weighers, and the
fail-closed admission rule with its one-line logs.  Never raises into Nova.

Logs: each host problem is logged once when it appears (and once when it clears), not per
request.  While the store is unreadable (database down) every host fails closed with one
line per host for the whole outage; requests are not logged one by one then.  Every line is
escaped to one physical line (:mod:`arm_cpu_filter.logsafe`)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Sequence
from itertools import compress
from typing import Any

from oslo_config import cfg

from arm_cpu_filter import conf, logsafe
from arm_cpu_filter.models import set_models_dir
from arm_cpu_filter.scheduler.fleet import Fleet, explain, explain_move
from arm_cpu_filter.scheduler.move_kind import cold_move
from arm_cpu_filter.scheduler.request import CpuRequest, resolve
from arm_cpu_filter.store import open_store

#: shared with the weighers (same name, same logger object, same escaping filter)
LOG = logsafe.install(logging.getLogger("arm_cpu_filter.scheduler"))
#: label of the requests answered while the store is unreadable
STORE_DOWN = "store unavailable"
CONF = cfg.CONF
conf.register_opts(CONF)

_lock = threading.Lock()
_fleet: tuple[tuple[Any, ...], Fleet] | None = None
_requests: dict[int, tuple[Any, Any, CpuRequest]] = {}
#: host -> what is wrong with its data (logged when it appears, and when it clears)
_host_problems: dict[str, str] = {}
#: host -> the last internal error met while admitting it (a bug: logged once per host and text,
#: however requests that do and do not meet it alternate)
_host_errors: dict[str, str] = {}
#: the fleet and its store generation the memo below belongs to (the fleet itself, not its id:
#: a fleet rebuilt on reconfiguration may get a dropped one's id)
_memo_owner: tuple[Fleet, int] | None = None
#: what -> Nova host-state object -> value (see :func:`per_state`)
_memo: dict[Hashable, dict[Any, Any]] = {}
_UNSEEN = object()


def options() -> Any:
    return CONF.arm_cpu_filter


def fleet() -> Fleet:
    """The fleet for the current options (rebuilt when they change, e.g. on SIGHUP reload)."""
    global _fleet
    o = options()
    set_models_dir(o.models_dir)  # site models: the catalog follows the option (SIGHUP reload too)
    url, database_options = conf.store_settings(CONF)
    key = (url, tuple(sorted(database_options.items())), o.max_snapshot_age, o.store_refresh_interval,
           o.decision_cache_size)
    current = _fleet
    if current is None or current[0] != key:
        with _lock:
            if _fleet is None or _fleet[0] != key:
                store = open_store(url, database_options)
                _fleet = (key, Fleet(store, o.max_snapshot_age, o.store_refresh_interval, o.decision_cache_size))
            current = _fleet
    return current[1]


def reset() -> None:
    """Forget the fleet, cached requests and logged problems (tests, reconfiguration)."""
    global _fleet, _memo_owner
    set_models_dir(None)
    with _lock:
        _fleet = None
        _requests.clear()
        _host_problems.clear()
        _host_errors.clear()
        _memo.clear()
        _memo_owner = None


def _field(spec_obj: Any, name: str) -> Any:
    try:
        return getattr(spec_obj, name) if spec_obj.obj_attr_is_set(name) else None
    except Exception:  # a lazy-load failure means "not set"
        return None


def request_for(spec_obj: Any) -> CpuRequest:
    """The CPU request of ``spec_obj`` (a nova RequestSpec), resolved once per request."""
    uuid = _field(spec_obj, "instance_uuid")
    cached = _requests.get(id(spec_obj))
    if cached is not None and cached[0]() is spec_obj and cached[1] == uuid:
        return cached[2]
    try:
        f = fleet()
        f.refresh()
        request = _store_down(f)
        if request is None:
            flavor = _field(spec_obj, "flavor")
            extra_specs = dict(_field(flavor, "extra_specs") or {}) if flavor is not None else {}
            ignore_hosts = list(_field(spec_obj, "ignore_hosts") or [])
            cold = cold_move(spec_obj) if ignore_hosts else False  # without ignore_hosts a move is cold anyway
            request = resolve(f, extra_specs, uuid, ignore_hosts, cold=cold)
            if request.store_error:  # has the store gone down since the last read? (not for a bad flavor)
                f.refresh(force=True)
                request = _store_down(f) or request
    except Exception as exc:  # the scheduler must never crash because of us
        request = CpuRequest("unresolvable request", problem=f"internal error: {type(exc).__name__}: {exc}")
    if request.problem and request.label != STORE_DOWN:  # an outage is logged per host by admit()
        LOG.warning("ArmCpuModelFilter: refusing every host for instance %s: %s", uuid, request.problem)
    if len(_requests) > 256:
        _requests.clear()
    try:
        _requests[id(spec_obj)] = (weakref.ref(spec_obj), uuid, request)
    except TypeError:  # not weak-referenceable: resolve again next time
        pass
    return request


def _store_down(f: Fleet) -> CpuRequest | None:
    """The request every host gets while ``f``'s store is unreadable, else None."""
    return CpuRequest(STORE_DOWN, problem=f.load_error) if f.load_error else None


def per_state(f: Fleet, what: Hashable, host_states: Sequence[Any], value_of: Callable[[str], Any]) -> list[Any]:
    """``[value_of(h.host) for h in host_states]``, remembered per host-state object for ``f``'s
    store generation (``what`` names what ``value_of`` computes within it).  Nova's HostManager
    keeps one HostState per compute node for the scheduler's life, and a HostState hashes by
    identity, so a warm request costs one dict lookup per candidate without reading the
    state's attributes (at fleet scale that read, not the verdict, is what costs)."""
    global _memo_owner
    owner = _memo_owner
    if owner is None or owner[0] is not f or owner[1] != f.generation or len(_memo) > 64:
        _memo.clear()
        _memo_owner = (f, f.generation)
    values = _memo.setdefault(what, {})
    try:
        return list(map(values.__getitem__, host_states))
    except KeyError:  # states not seen in this generation yet
        pass
    except TypeError:  # not hashable (not Nova's HostState): by name, every time
        return [value_of(h.host) for h in host_states]
    if len(values) > 2 * len(f.records()) + len(host_states) + 1024:  # states Nova dropped long ago
        values.clear()
    out = []
    for h in host_states:
        value = values.get(h, _UNSEEN)
        if value is _UNSEEN:
            value = values[h] = value_of(h.host)
        out.append(value)
    return out


def admit_all(host_states: Sequence[Any], request: CpuRequest) -> list[Any]:
    """The host states that pass: one verdict per distinct snapshot (cached by the fleet), then
    a lookup per host state (:func:`per_state`); hosts without fresh data go through
    :func:`admit`, which logs their problem once (and, at DEBUG, so do the hosts the engine
    refused, with the reason)."""
    try:
        f = fleet()
        fps = f.fingerprints()
        if request.problem or f.load_error:
            return [h for h in host_states if admit(h.host, request)]
        vm = request.vm
        accepting = f.accepting(request.definition) if vm is None else f.accepting_move(vm, request.live)
        # True: passes, False: fresh data the engine refuses, None: no fresh data
        verdicts = per_state(f, accepting, host_states, lambda name: name in accepting if name in fps else None)
        out = list(compress(host_states, verdicts))
        for name in [n for n in _host_problems if n in fps]:
            admit(name, request)  # logs the recovery
        if None in verdicts:
            for h, ok in zip(host_states, verdicts):
                if ok is None:
                    admit(h.host, request)  # logs the host's problem once
        if len(out) < len(host_states) and LOG.isEnabledFor(logging.DEBUG):  # why the engine refused the others
            for name in sorted({h.host for h, ok in zip(host_states, verdicts) if ok is False}):
                admit(name, request)
        return out
    except Exception:  # the per-host path never raises and logs each problem
        return [h for h in host_states if admit(h.host, request)]


def admit(host: str, request: CpuRequest) -> bool:
    """Does ``host`` pass for ``request``?  Fails closed, logs each new host problem once."""
    try:
        if request.problem and request.label != STORE_DOWN:  # logged once for the request by request_for()
            return False
        data = fleet().host(host)
        if data.snapshot is None:
            problem = data.problem or "no data"
            key = data.kind or problem  # logged again only when what is wrong changes
            if _host_problems.get(host) != key:
                _host_problems[host] = key
                LOG.warning("ArmCpuModelFilter: host %s fails closed: %s", host, problem)
            return False
        if host in _host_problems:
            del _host_problems[host]
            LOG.info("ArmCpuModelFilter: host %s has usable CPU data again", host)
        if request.problem:  # the store is readable again, but this request was answered while it was not
            return False
        vm = request.vm
        if vm is not None:
            if fleet().movable(vm, data.snapshot, request.live):
                return True
            if LOG.isEnabledFor(logging.DEBUG):
                LOG.debug("ArmCpuModelFilter: %s cannot %s to %s: %s", request.label,
                          "live-migrate" if request.live else "move (cold)", host,
                          explain_move(vm, data.snapshot, request.live))
            return False
        if request.definition is None:
            return True
        if fleet().usable(request.definition, data.snapshot):
            return True
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug("ArmCpuModelFilter: %s is not realizable on %s: %s", request.label, host,
                      explain(request.definition, data.snapshot))
        return False
    except Exception as exc:  # never raise into Nova
        problem = f"internal error: {type(exc).__name__}: {exc}"
        if _host_errors.get(host) != problem:
            if len(_host_errors) > 100000:
                _host_errors.clear()
            _host_errors[host] = problem
            LOG.error("ArmCpuModelFilter: host %s fails closed: %s", host, problem)
        return False
