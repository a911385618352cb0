"""Site models in the lab: what ``arm-cpu-filter pool-model`` writes for compatible sets of lab
hosts, asked of live KVM on every member.

For each kernel and each generic model of ``MODELS`` (the ones the RFC says need completion),
``pool_models(kernel)`` runs the real ``pool-model`` command over every maximal set of lab
hosts (full snapshot fixtures) it accepts (on 6.12 no two lab hosts share a MIDR, which KVM does
not let userspace set there, so each host is a pool of one), into a temporary site directory, and loads
the written file back through the catalog.  ``jobs(kernel, host)`` turns the site models whose
pool contains ``host`` into probe jobs ``pm:<site model>`` for that host's boot (not part of the
recorded corpus: the live lab test asks them directly).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import tempfile
from functools import cache
from pathlib import Path

from arm_cpu_filter.cli import main
from arm_cpu_filter.engine.completion import complete
from arm_cpu_filter.models import realize_model
from arm_cpu_filter.models.registry import DATA, load_catalog
from arm_cpu_filter.snapshot import HostSnapshot

from . import corpus, fixtures

MODELS = ("kvm-base-v1", "armv8.0-a-v1", "armv8.2-a-v1")


def _pools(kernel: str, model: str) -> list[tuple[str, ...]]:
    """Maximal sets of lab hosts of ``kernel`` that ``model`` can be completed for (a host in no
    larger set is a pool of one).  A pool's hosts are pairwise compatible, so only such sets
    are tried."""
    snaps = {h: HostSnapshot.from_dict(d) for h, d in corpus.load_fixtures(kernel)["full"].items()}
    names = sorted(snaps)
    pairs = {pair for pair in itertools.combinations(names, 2) if complete(model, [snaps[h] for h in pair]).usable}
    found: list[tuple[str, ...]] = []
    for size in range(len(names), 0, -1):
        for pool in itertools.combinations(names, size):
            if any(set(pool) <= set(p) for p in found) or not set(itertools.combinations(pool, 2)) <= pairs:
                continue
            if complete(model, [snaps[h] for h in pool]).usable:
                found.append(pool)
    return found


@cache
def pool_models(kernel: str) -> dict[str, tuple[tuple[str, ...], dict]]:
    """site model name -> (its pool, its realized definition dict), as ``pool-model`` wrote them."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            for i, pool in enumerate(_pools(kernel, model), 1):
                family = f"lab-{kernel}-{model.removesuffix('-v1')}-pool{i}"
                paths = [str(fixtures.path_of(kernel, h)) for h in pool]
                with contextlib.redirect_stdout(io.StringIO()) as text:
                    rc = main(["pool-model", family, "--from", model, *paths, "--models-dir", tmp])
                assert rc == 0, f"pool-model {family} over {pool}: exit {rc}: {text.getvalue()}"
                models = load_catalog(DATA, Path(tmp))
                out[f"{family}-v1"] = (pool, realize_model(f"{family}-v1", models=models).to_dict())
    return out


def jobs(kernel: str, host: str) -> tuple[dict[str, dict[str, str]], list[dict]]:
    """(bases, probe jobs) of the site models whose pool contains ``host``."""
    impl = bool(corpus.load_fixtures(kernel)["full"][host]["capabilities"].get("writable_impl_id_regs"))
    bases, out = {}, []
    for name, (pool, definition) in pool_models(kernel).items():
        if host in pool:
            bases[f"inline:pm:{name}"] = definition["registers"]
            out.append({"id": f"pm:{name}", "kind": "probe", "base": f"inline:pm:{name}",
                        "features": definition["vcpu_features"], "impl_id": impl})
    return bases, out
