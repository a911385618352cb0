"""The recorded QEMU restores as one corpus, and the engine's view of each restore.

Usage (repository root): ``python3 -m tools.lab.migcorpus`` rewrites
``tests/fixtures/lab/migrations.json.gz`` from the committed runs in ``tests/lab/migration/``
(``summary.json.gz`` of each run, the saved streams). One record per distinct restore
(source host, kernel and ``-cpu`` string; destination host, kernel and ``-cpu`` string): whether
QEMU loaded it, its error lines, the failure class, and, read from the streams, the registers the
incoming stream holds that the destination's own save (same ``-cpu`` string) does not (the
``cpu_post_load`` check) and the ID registers whose values differ.

Failure classes: ``register-list`` (QEMU's ``cpreg_vmstate_array_len`` or a register "in their
list but not ours"), ``value-refused`` (``KVM_SET_ONE_REG`` refused a value of a register both
have), ``destination-start`` (the destination QEMU did not start with that ``-cpu`` string).
"""

from __future__ import annotations

import gzip
import json
import lzma
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from arm_cpu_filter.engine import check
from arm_cpu_filter.engine.migrate import (
    FEATURES,
    ID_REGISTERS,
    REGISTER_LIST,
    VECTOR_LENGTHS,
    MigrationResult,
    migrate,
    register_label,
)
from arm_cpu_filter.kvm.vcpu_facts import entry
from arm_cpu_filter.snapshot import HostSnapshot
from arm_cpu_filter.snapshot.files import load_snapshot

from . import build
from .migrate import VARIANTS
from .migreport import is_id_register, stream_cpregs
from .vmcpu import CpuStringRefused, destination_vmm_of, vm_of

RUNS_DIR = build.REPO / "tests" / "lab" / "migration"
RUNS = ("matrix1", "matrix2", "matrix3", "matrix4", "features")
FIXTURES = build.REPO / "tests" / "fixtures" / "lab"
CORPUS = FIXTURES / "migrations.json.gz"
CLASS_OF = {
    "reg-list length": "register-list",
    "register unknown to destination": "register-list",
    "value refused by KVM": "value-refused",
}


def stream_path(name: str) -> Path:
    """The committed stream ``host@kernel@variant`` (the first run that saved it)."""
    for run in RUNS:
        path = RUNS_DIR / run / "streams" / f"{name}.mig.xz"
        if path.exists():
            return path
    raise FileNotFoundError(f"no committed stream {name}")


@cache
def cpregs(name: str) -> dict[int, int] | None:
    """QEMU's register list (KVM id -> value) of a committed stream; None when none was saved."""
    try:
        return stream_cpregs(lzma.decompress(stream_path(name).read_bytes()))
    except FileNotFoundError:
        return None


def record(row: dict) -> dict:
    """A corpus record from a ``migreport`` summary row."""
    src_cpu, stream = VARIANTS[row["variant"]], f"{row['source']}@{row['source_kernel']}@{row['variant']}"
    variant_of = {cpu: label for label, cpu in VARIANTS.items()}
    own = cpregs(f"{row['dest']}@{row['dest_kernel']}@{variant_of[row['dest_cpu']]}")
    incoming = cpregs(stream)
    assert incoming is not None, stream
    out = {
        "source": {"host": row["source"], "kernel": row["source_kernel"], "cpu": src_cpu},
        "destination": {"host": row["dest"], "kernel": row["dest_kernel"], "cpu": row["dest_cpu"]},
        "stream": str(stream_path(stream).relative_to(build.REPO)),
        "loaded": row["ok"],
        "errors": [line for line in [row.get("error"), *row.get("stderr", [])] if line],
        "class": None,
    }
    if not row["ok"]:
        out["class"] = "destination-start" if row["phase"] == "start" else CLASS_OF[row["class"]]
    if own is not None:
        out["unknown_to_destination"] = sorted(entry(i) for i in incoming if i not in own)
        out["id_values_differ"] = sorted(entry(i) for i, v in incoming.items() if is_id_register(i) and i in own and own[i] != v)
    return out


def rebuild() -> list[dict]:
    """Every distinct restore of the committed runs (identical repeats are kept once; a repeat with
    another outcome is an error: the runs showed restores to be deterministic)."""
    seen: dict[tuple, dict] = {}
    for run in RUNS:
        summary = json.loads(gzip.decompress((RUNS_DIR / run / "summary.json.gz").read_bytes()))
        for row in summary["restores"]:
            rec = record(row)
            key = key_of(rec)
            if key in seen and (seen[key]["loaded"], seen[key]["class"]) != (rec["loaded"], rec["class"]):
                raise ValueError(f"{key}: {run} disagrees with an earlier run")
            seen.setdefault(key, rec)
    return [seen[k] for k in sorted(seen)]


def key_of(rec: dict) -> tuple[str, ...]:
    s, d = rec["source"], rec["destination"]
    return (s["host"], s["kernel"], s["cpu"], d["host"], d["kernel"], d["cpu"])


def load() -> list[dict]:
    return json.loads(gzip.decompress(CORPUS.read_bytes()))["restores"]


@cache
def snapshot(host: str, kernel: str) -> HostSnapshot:
    """The committed format-2 lab fixture of ``host`` on ``kernel``."""
    return load_snapshot(str(FIXTURES / kernel / f"{host}.json"))


@dataclass(frozen=True)
class Judgement:
    """The engine's verdict on one recorded restore, against QEMU's outcome."""

    verdict: str  # agree | unsafe | conservative | guest-visible-change | not-started
    result: MigrationResult | None
    id_check_usable: bool  # engine.check of the VM's CPU on the destination (an ID-register-only check)
    problems: tuple[str, ...]  # blockers that do not name what QEMU complained about


def engine_view(rec: dict) -> tuple[object, HostSnapshot, object]:
    """(running VM, destination snapshot, destination VMM) of a restore, from the fixtures."""
    s, d = rec["source"], rec["destination"]
    dest = snapshot(d["host"], d["kernel"])
    return vm_of(s["cpu"], snapshot(s["host"], s["kernel"])), dest, destination_vmm_of(d["cpu"], dest)


def judge(rec: dict) -> Judgement:
    s, d = rec["source"], rec["destination"]
    src, dest = snapshot(s["host"], s["kernel"]), snapshot(d["host"], d["kernel"])
    vm = vm_of(s["cpu"], src)
    id_ok = check(vm.definition, dest).usable
    try:
        vmm = destination_vmm_of(d["cpu"], dest)
    except CpuStringRefused:
        verdict = "agree" if rec["class"] == "destination-start" else "unsafe"
        return Judgement(verdict if verdict == "unsafe" else "not-started", None, id_ok, ())
    result = migrate(vm, dest, vmm=vmm)
    if rec["loaded"]:
        if result.ok:
            return Judgement("agree", result, id_ok, ())
        only_lengths = all(b.kind == VECTOR_LENGTHS and b.lifted_by for b in result.blockers)
        return Judgement("guest-visible-change" if only_lengths else "conservative", result, id_ok, ())
    if result.ok:
        return Judgement("unsafe", result, id_ok, ())
    return Judgement("agree", result, id_ok, tuple(naming_problems(rec, result)))


def naming_problems(rec: dict, result: MigrationResult) -> list[str]:
    """Why the blockers do not name what QEMU complained about (empty: they do).

    register-list: a register-list blocker naming every register the stream holds that the
    destination's own save lacks, or a vcpu-features blocker no VMM setting lifts (the VM uses a
    feature the destination's KVM does not offer, so its registers cannot exist there: the engine
    stops at that). value-refused: an id-registers blocker on a register whose value differs
    between the stream and the destination's own save, or a vcpu-features blocker (KVM does not
    let the SVE/PtrAuth ID fields of a feature the VM lacks be lowered)."""
    kinds = {b.kind for b in result.blockers}
    if rec["class"] == "register-list":
        if any(b.kind == FEATURES and b.lifted_by is None for b in result.blockers):
            return []
        named = {r for b in result.blockers if b.kind == REGISTER_LIST for r in b.subject.split(",")}
        unknown = set(rec.get("unknown_to_destination") or ())
        if REGISTER_LIST not in kinds:
            return [f"no register-list blocker (blockers: {sorted(kinds)})"]
        if not unknown <= named:
            return [f"register-list blocker lacks {sorted(unknown - named)}"]
    elif rec["class"] == "value-refused":
        if FEATURES in kinds:
            return []
        if ID_REGISTERS not in kinds:
            return [f"no id-registers blocker for a refused value (blockers: {sorted(kinds)})"]
        differ = {register_label(e) for e in rec.get("id_values_differ") or ()}
        named = {b.subject.split(".")[0] for b in result.blockers if b.kind == ID_REGISTERS}
        if differ and not differ & named:
            return [f"id-registers blockers name {sorted(named)}, the stream's values differ in {sorted(differ)}"]
    return []


def main() -> None:
    restores = rebuild()
    CORPUS.write_bytes(gzip.compress(json.dumps({"restores": restores}, indent=0).encode(), 9, mtime=0))
    print(f"{CORPUS.relative_to(build.REPO)}: {len(restores)} restores, {sum(r['loaded'] for r in restores)} loaded")


if __name__ == "__main__":
    main()
