"""Phase B: a ground-truth corpus of what real KVM answered, for unit tests that cannot boot.

Usage (repository root): ``python3 -m tools.lab.corpus [--kernel 6.12]`` (needs Phase A fixtures;
``--kernel 6.1`` records a RECORDED_KERNELS corpus, booted through ``tools.lab.vmm``).

Per kernel, each lab host (one boot each) probes, on fresh VMs:
  x:<src>        every host's full snapshot as a host-passthrough definition, with its vCPU features
  m:<REG>.<F>:<k> the host's own snapshot with one field lowered/raised by one, zeroed or set to max
                 (registers without fields, REVIDR/AIDR, count as one 64-bit field "value";
                 "res" sets the lowest bit no field covers)
  f:<src>        every host's featureless snapshot on a featureless vCPU
  k:<kernel>:<src> every host's full snapshot taken under the OTHER kernel (a kernel upgrade)
  fx:full-on-none / fx:none-on-full  the host's own values with the other vCPU feature set
  c:<model>      every catalog model as realized today
  cf:<spec>      for a model the engine blocks on this host, the fix it proposes (fix_model)
  b:<variant>:<hosts> the baseline of each maximal set of lab hosts of this kernel that has one
                 (engine.baseline over the full / featureless snapshots), and b:<variant>:naive-all,
                 the field-wise minimum of all hosts a naive tool would propose
and on kernels with KVM_CAP_ARM_WRITABLE_IMP_ID_REGS the x:, c: and impl-id m: probes again with
the cap not enabled (``nocap:`` prefix), against the ``no-impl-id`` snapshot variant.
c:, cf: and b: definitions are not fixtures: their registers are stored in the record ("inline").

Saved as ``tests/fixtures/lab/<kernel>/probes.json.gz``; `iter_probes` rebuilds every
(definition, host snapshot, KVM verdict) triple from it.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import statistics
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from arm_cpu_filter.engine import baseline, fix_model
from arm_cpu_filter.models import catalog
from arm_cpu_filter.models.realization import realize
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.table import load_table

from . import build, fixtures, run

IMPL_ID = ("MIDR_EL1", "REVIDR_EL1", "AIDR_EL1")


def field_mutations(registers: dict[str, str]) -> Iterator[tuple[str, str, str, int, int]]:
    """(register, field, kind, from, to) for every field of every table register in `registers`."""
    for reg in load_table().registers:
        if reg.name not in registers:
            continue
        value = int(registers[reg.name], 16)
        fields = [(f.name, f.shift, f.width) for f in reg.fields] or [("value", 0, 64)]
        for name, shift, width in fields:
            top = (1 << width) - 1
            cur = (value >> shift) & top
            seen = {cur}
            for kind, new in (("dec", cur - 1), ("inc", cur + 1), ("zero", 0), ("max", top)):
                if 0 <= new <= top and new not in seen:
                    seen.add(new)
                    yield reg.name, name, kind, cur, (value & ~(top << shift)) | new << shift
        covered = 0
        for _, shift, width in fields:
            covered |= ((1 << width) - 1) << shift
        free = ~covered & (1 << 64) - 1
        if free:
            bit = free & -free
            yield reg.name, "res", "flip", value & bit, value ^ bit


@cache
def catalog_definitions() -> dict[str, dict]:
    """model name -> CpuDefinition dict of every catalog model, realized by today's code."""
    return {name: realize(name).to_dict() for name in sorted(catalog())}


def fixed_definitions(kernel: str, host: str) -> dict[str, dict]:
    """spec -> definition of the fix the engine proposes for each model it blocks on `host`."""
    snap = HostSnapshot.from_dict(load_fixtures(kernel)["full"][host])
    out = {}
    for name in catalog_definitions():
        model_fix = fix_model(name, snap)
        if model_fix.usable and model_fix.changes:
            out[model_fix.spec] = realize(model_fix.spec).to_dict()
    return out


def naive_minimum(snaps: list[HostSnapshot]) -> dict[str, int]:
    """Field-wise minimum of every register all `snaps` have (whole value for registers without
    fields): what a tool ignoring KVM's per-field rules would call the common CPU."""
    table = load_table()
    out = {}
    for name in sorted(set.intersection(*(set(s.registers) for s in snaps))):
        values = [s.registers[name] for s in snaps]
        reg = table.get(name)
        if reg is None or not reg.fields:
            out[name] = min(values)
            continue
        value = 0
        for f in reg.fields:
            value = f.insert(value, min(f.extract(v) for v in values))
        out[name] = value
    return out


@cache
def pool_definitions(kernel: str) -> dict[str, tuple[dict, str]]:
    """label -> (baseline definition dict, snapshot variant) for every maximal set of two or
    more lab hosts of `kernel` that has a baseline, per variant, plus the naive minimum of all."""
    out: dict[str, tuple[dict, str]] = {}
    for variant in ("full", "nofeatures"):
        snaps = {h: HostSnapshot.from_dict(d) for h, d in load_fixtures(kernel)[variant].items()}
        names = sorted(snaps)
        found: list[tuple[tuple[str, ...], dict]] = []
        for size in range(len(names), 1, -1):
            for pool in itertools.combinations(names, size):
                if any(set(pool) <= set(p) for p, _ in found):
                    continue
                result = baseline([snaps[h] for h in pool])
                if result.definition is not None:
                    found.append((pool, result.definition.to_dict()))
        for pool, definition in found:
            out[f"b:{variant}:{'+'.join(pool)}"] = (definition, variant)
        features = sorted(frozenset.intersection(*(s.vcpu_features for s in snaps.values())))
        regs = naive_minimum(list(snaps.values()))
        naive = {"format": 1, "name": "naive-all", "vcpu_features": features,
                 "registers": {r: f"0x{v:016x}" for r, v in regs.items()}}  # fmt: skip
        out[f"b:{variant}:naive-all"] = (naive, variant)
    return out


def probe_jobs(kernel: str, host: str) -> tuple[dict, list[dict]]:
    """Input spec for one host's boot, and per job the corpus record (minus the verdict)."""
    snaps = load_fixtures(kernel)
    own = snaps["full"][host]
    impl = bool(own["capabilities"].get("writable_impl_id_regs"))
    bases: dict[str, dict[str, str]] = {}
    jobs: list[dict] = []
    records: list[dict] = []

    def add(job_id: str, base: tuple[str, ...], features: list[str], impl_id: bool, host_variant: str,
            **extra: object) -> None:  # fmt: skip
        key = ":".join(base)
        bases.setdefault(key, load_fixtures(base[2] if len(base) > 2 else kernel)[base[0]][base[1]]["registers"])
        job = {"id": job_id, "kind": "probe", "base": key, "features": features, "impl_id": impl_id}
        if "set" in extra:
            job["set"] = extra["set"]
        jobs.append(job)
        records.append({"def": list(base), "host_variant": host_variant, **job, **extra})

    def add_inline(job_id: str, definition: dict, impl_id: bool, host_variant: str) -> None:
        key = f"inline:{job_id}"
        bases[key] = definition["registers"]
        job = {"id": job_id, "kind": "probe", "base": key, "features": definition["vcpu_features"], "impl_id": impl_id}
        jobs.append(job)
        records.append({"def": ["inline", job_id], "registers": definition["registers"], "host_variant": host_variant,
                        **job})  # fmt: skip

    for src in sorted(snaps["full"]):
        add(f"x:{src}", ("full", src), snaps["full"][src]["vcpu_features"], impl, "full")
    for reg, fname, kind, old, new in field_mutations(own["registers"]):
        add(f"m:{reg}.{fname}:{kind}", ("full", host), own["vcpu_features"], impl, "full",
            set={reg: f"0x{new:016x}"}, mutation=[reg, fname, kind, old, new])  # fmt: skip
    for src in sorted(snaps["nofeatures"]):
        add(f"f:{src}", ("nofeatures", src), [], impl, "nofeatures")
    for other in sorted(set(build.KERNELS) - {kernel}):
        for src, snap in sorted(load_fixtures(other)["full"].items()):
            add(f"k:{other}:{src}", ("full", src, other), snap["vcpu_features"], impl, "full")
    add("fx:full-on-none", ("full", host), [], impl, "nofeatures")
    add("fx:none-on-full", ("nofeatures", host), own["vcpu_features"], impl, "full")
    for name, definition in catalog_definitions().items():
        add_inline(f"c:{name}", definition, impl, "full")
    for spec, definition in fixed_definitions(kernel, host).items():
        add_inline(f"cf:{spec}", definition, impl, "full")
    for label, (definition, variant) in pool_definitions(kernel).items():
        add_inline(label, definition, impl, variant)
    if impl:
        for src in sorted(snaps["no-impl-id"]):
            add(f"nocap:x:{src}", ("no-impl-id", src), snaps["no-impl-id"][src]["vcpu_features"], False,
                "no-impl-id")  # fmt: skip
        for name, definition in catalog_definitions().items():
            add_inline(f"nocap:c:{name}", definition, False, "no-impl-id")
        for reg, fname, kind, old, new in field_mutations(own["registers"]):
            if reg in IMPL_ID:
                add(f"nocap:m:{reg}.{fname}:{kind}", ("no-impl-id", host), own["vcpu_features"], False,
                    "no-impl-id", set={reg: f"0x{new:016x}"}, mutation=[reg, fname, kind, old, new])  # fmt: skip
    for rec in records:
        for key in ("kind", "base"):
            rec.pop(key, None)
    return {"bases": bases, "jobs": jobs}, records


@cache
def load_fixtures(kernel: str) -> dict[str, dict[str, dict]]:
    """variant -> host -> snapshot dict, from tests/fixtures/lab/<kernel>/ (read once; do not mutate)."""
    out: dict[str, dict[str, dict]] = {}
    for host in run.HOST_BY_LABEL:
        for variant in ("full", "nofeatures", "no-impl-id"):
            path = fixtures.path_of(kernel, host, variant)
            if path.exists():
                out.setdefault(variant, {})[host] = json.loads(path.read_text())
    return out


def corpus_path(kernel: str) -> Path:
    return fixtures.FIXTURES / kernel / "probes.json.gz"


def collect(kernel: str, hosts: list[run.Host], timeout: float = 600) -> dict:
    """Boot every host once and return the corpus dict of this kernel."""
    snaps = load_fixtures(kernel)
    items, all_records = [], []
    for h in hosts:
        spec, records = probe_jobs(kernel, h.label)
        items.append((h, kernel, spec))
        all_records.append(records)
    t0 = time.monotonic()
    boots = run.boot_many(items, timeout=timeout)
    runs, timing = [], {}
    for b, (_, _, spec), records in zip(boots, items, all_records, strict=True):
        b.check([j["id"] for j in spec["jobs"]])
        for rec, job in zip(records, spec["jobs"], strict=True):
            res = b.results[job["id"]]
            rec.update(init=res["init"], accepted=res["accepted"], realizable=res["realizable"], bad=res["bad"])
        ms = [b.results[j["id"]]["ms"] for j in spec["jobs"]]
        timing[b.host.label] = {
            "probes": len(ms),
            "median_ms": round(statistics.median(ms), 2),
            "p90_ms": round(statistics.quantiles(ms, n=10)[-1], 2),
            "boot_s": b.boot_s,
            "guest_end_s": b.guest_end_s,
            "wall_s": b.wall_s,
            "kvm_mode": b.kvm_mode,
        }
        runs.append({"host": b.host.label, "probes": records})
    return {
        "format": 1,
        "kernel": kernel,
        "kernel_release": snaps["full"][hosts[0].label]["kernel"],
        "generated": time.strftime("%Y-%m-%d", time.gmtime()),
        "wall_seconds": round(time.monotonic() - t0, 1),
        "layout": "definition = registers of fixture <def[0]> variant of host <def[1]> (of kernel <def[2]> if "
        "given) + 'set'; the host is "
        "<kernel>/<host>.json (host_variant full) or variants/<host>.<host_variant>.json; 'bad' lists the "
        "registers KVM refused (rc) or read back differently: register -> [rc, readback]",
        "timing": timing,
        "runs": runs,
    }


def definition_of(probe: dict, kernel: str) -> dict:
    """The CPU definition (CpuDefinition dict) a probe record of `kernel` wrote."""
    variant, src, *other = probe["def"]
    if variant == "inline":
        return {"format": 1, "name": probe["id"], "vcpu_features": probe["features"], "registers": dict(probe["registers"])}
    regs = dict(load_fixtures(other[0] if other else kernel)[variant][src]["registers"])
    regs.update(probe.get("set", {}))
    return {"format": 1, "name": probe["id"], "vcpu_features": probe["features"], "registers": regs}


def iter_probes(kernel: str) -> Iterator[tuple[dict, dict, dict]]:
    """(definition dict, host snapshot dict, probe record) for every recorded probe of `kernel`."""
    with gzip.open(corpus_path(kernel), "rt") as f:
        corpus = json.load(f)
    snaps = load_fixtures(kernel)
    for run_ in corpus["runs"]:
        for probe in run_["probes"]:
            yield definition_of(probe, kernel), snaps[probe["host_variant"]][run_["host"]], probe


def write(corpus: dict) -> Path:
    path = corpus_path(corpus["kernel"])
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(json.dumps(corpus, separators=(",", ":"), sort_keys=False).encode())
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description="Phase B: record KVM's verdicts on many definitions")
    ap.add_argument("--kernel", action="append", choices=sorted([*build.KERNELS, *build.RECORDED_KERNELS]))
    ap.add_argument("--host", action="append", choices=sorted(run.HOST_BY_LABEL))
    args = ap.parse_args()
    hosts = [run.HOST_BY_LABEL[h] for h in args.host] if args.host else list(run.HOSTS)
    for kernel in args.kernel or sorted(build.KERNELS):
        corpus = collect(kernel, hosts)
        path = write(corpus)
        n = sum(len(r["probes"]) for r in corpus["runs"])
        ok = sum(p["realizable"] for r in corpus["runs"] for p in r["probes"])
        print(f"{kernel}: {n} probes ({ok} realizable) in {corpus['wall_seconds']} s -> {path} "
              f"({path.stat().st_size} bytes)")  # fmt: skip
        for host, t in corpus["timing"].items():
            print(f"  {host:12} {t}")


if __name__ == "__main__":
    main()
