"""``ArmCpuWeigher``: Nova host weigher for ARM64 CPU placement (``[filter_scheduler]
weight_classes``).  One class with three cases, because Nova's weight handler costs as much
per weigher as the weighing itself at fleet scale; exactly one case applies per request:

- host-passthrough boot: the share of fresh hosts that would accept a VM started on the
  candidate (the VM keeps the most migration destinations) -- ``passthrough_weight_multiplier``;
- named-model boot: the fewer catalog models a candidate realizes, the higher (tightest fit:
  richer hosts stay free for richer models) -- ``model_fit_weight_multiplier``;
- move (live migration, evacuation, resize of a known instance): 1 for a destination whose
  snapshot (for a host-passthrough instance: whose own CPU) is identical to the instance's
  source, else 0 -- ``move_identical_weight_multiplier``.

Scores are min-max normalized over the candidates like Nova's own weighers and multiplied
here (``minval``/``maxval`` are fixed to 0/1 so Nova's normalization keeps them as they
are).  Hosts without usable data score 0 (the filter refuses them anyway).  Never raises.
"""

from __future__ import annotations

import logging
from operator import attrgetter
from typing import Any

from nova.scheduler import weights

from arm_cpu_filter.engine.catalog import usable_models
from arm_cpu_filter.models.registry import catalog_key
from arm_cpu_filter.scheduler import state
from arm_cpu_filter.scheduler.fleet import Fleet
from arm_cpu_filter.scheduler.request import CpuRequest
from arm_cpu_filter.snapshot import HostSnapshot

LOG = logging.getLogger("arm_cpu_filter.scheduler")
PASSTHROUGH, MODEL_FIT, MOVE = "passthrough", "model_fit", "move_identical"
_HOST_STATE = attrgetter("obj")


def case(request: CpuRequest) -> str | None:
    """Which preference applies to ``request`` (None: no preference)."""
    if request.problem:
        return None
    if request.move:
        return MOVE
    if request.model is not None:
        return MODEL_FIT
    return PASSTHROUGH if request.definition is None else None


#: (catalog state, snapshot fingerprint) -> how many catalog models (bundled and site) it realizes
_richness: dict[tuple[tuple[str, int | None], str], int] = {}
#: snapshot fingerprint -> fingerprint of the CPU a host-passthrough VM started there sees
_own_cpu: dict[str, str] = {}
#: (fleet, generation, case, move reference) -> host -> raw score; entries of one fleet generation
_by_host: dict[tuple[int, int, str, tuple[str, str | None] | None], dict[str, float]] = {}


def reset() -> None:
    """Forget the cached scores (tests, reconfiguration: a new fleet may reuse an old one's id)."""
    _richness.clear()
    _own_cpu.clear()
    _by_host.clear()


def move_reference(fleet: Fleet, request: CpuRequest) -> tuple[str, str | None]:
    """What a move's destination must match to be "identical": for a host-passthrough instance
    with a recorded CPU, ("own", that CPU's fingerprint) -- compared with the CPU a VM started on
    the candidate sees; otherwise ("snapshot", the source host's snapshot fingerprint or None)."""
    if request.definition is not None and request.model is None:
        return "own", request.definition.fingerprint
    source = fleet.host(request.source_host).snapshot if request.source_host else None
    return "snapshot", source.fingerprint if source is not None else None


def score(which: str, fleet: Fleet, snapshot: HostSnapshot, reference: tuple[str, str | None] | None = None) -> float:
    """Raw score of one candidate snapshot (higher is better); ``reference`` is the request's
    :func:`move_reference` for a move."""
    if which == PASSTHROUGH:
        return fleet.passthrough_share(snapshot)
    if which == MODEL_FIT:
        key = (catalog_key(), snapshot.fingerprint)  # site models join the catalog while we run
        n = _richness.get(key)
        if n is None:
            n = _richness[key] = len(usable_models(snapshot))
        return -float(n)
    kind, wanted = reference or ("snapshot", None)
    if kind == "own":
        own = _own_cpu.get(snapshot.fingerprint)
        if own is None:
            own = _own_cpu[snapshot.fingerprint] = snapshot.as_definition().fingerprint
        return 1.0 if own == wanted else 0.0
    return 1.0 if wanted is not None and wanted == snapshot.fingerprint else 0.0


def scores_by_host(which: str, fleet: Fleet, reference: tuple[str, str | None] | None = None) -> dict[str, float]:
    """host -> raw score for every fresh host (``reference``: a move's :func:`move_reference`):
    computed once per distinct snapshot, then cached for the fleet generation."""
    key = (id(fleet), fleet.generation, which, reference, catalog_key() if which == MODEL_FIT else None)
    cached = _by_host.get(key)
    if cached is None:
        by_fp = {fp: score(which, fleet, snap, reference) for fp, snap in fleet.census()[0].items()}
        cached = {host: by_fp[fp] for host, fp in fleet.fingerprints().items()}
        if any(k[:2] != key[:2] for k in _by_host) or len(_by_host) > 64:
            _by_host.clear()
        _by_host[key] = cached
    return cached


class ArmCpuWeigher(weights.BaseHostWeigher):
    """Prefer hosts that keep host-passthrough VMs movable, fit named models tightly, and
    receive moving VMs on identical CPUs."""

    minval, maxval = 0.0, 1.0

    def weight_multiplier(self, host_state: Any) -> int:
        # applied in weigh_objects (it depends on the request's case); an int keeps Nova's
        # per-host "multiplier * weight" log string cheap at fleet scale
        return 1

    def weigh_objects(self, weighed_obj_list: list[Any], weight_properties: Any) -> list[float]:
        n = len(weighed_obj_list)
        try:
            request = state.request_for(weight_properties)
            which = case(request)
            multiplier = float(getattr(state.options(), f"{which}_weight_multiplier")) if which else 0.0
            if not multiplier:
                return [0.0] * n
            fleet = state.fleet()
            reference = move_reference(fleet, request) if which == MOVE else None
            get = scores_by_host(which, fleet, reference).get
            # one identity lookup per candidate once its HostState was seen in this generation
            what = (which, reference, catalog_key() if which == MODEL_FIT else None)  # site models may join
            raw = state.per_state(fleet, what, list(map(_HOST_STATE, weighed_obj_list)), get)
            known = set(raw)
            known.discard(None)
            lo, hi = (min(known), max(known)) if known else (0.0, 0.0)
            if hi == lo:
                return [0.0] * n
            # min-max over the candidates like Nova's weighers, rounded to 1/1000: finer
            # differences carry no meaning and short floats keep Nova's debug strings cheap
            scale = multiplier / (hi - lo)
            weight_of: dict[float | None, float] = {s: round((s - lo) * scale, 3) for s in known}
            weight_of[None] = 0.0
            return list(map(weight_of.__getitem__, raw))
        except Exception as exc:  # never raise into Nova: abstain
            LOG.error("ArmCpuWeigher abstains: %s: %s", type(exc).__name__, exc)
            return [0.0] * n

    def _weigh_object(self, obj: Any, weight_properties: Any) -> float:
        return self.weigh_objects([weights.WeighedHost(obj, 0.0)], weight_properties)[0]
