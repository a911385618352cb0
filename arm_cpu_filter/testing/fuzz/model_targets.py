"""Fuzz targets for the named-model inputs: model files (``models.load_catalog`` of a directory
holding the file and its real ancestors, then realization) and ``MODEL,PROP=VAL`` specifications
(what ``expand`` and ``check`` do with one: realize, JSON / QEMU / libvirt output, check and fix)."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

from arm_cpu_filter.testing.fuzz import Target, scratch_dir
from arm_cpu_filter.testing.fuzz.mutate import freeform, mutate_bytes, mutate_json, text

TOML_TOKENS = (b"[", b"]", b"[[", b"]]", b"=", b'"', b"'''", b'"""', b"\n", b"#", b"{", b"}", b",", b".", b"nan",
               b"inf", b"1979-05-27T07:32:00Z", b"0x10", b"true", b"[properties]", b"[provenance]", b"[sources]",
               b'parent = "', b'name = "', b"\\u0000", b"\\", b"\xef\xbb\xbf")
SPEC_TOKENS = (b",", b"=", b" ", b",,", b"==", b"-v1", b"on", b"off", b"0x", b"sve=on", b"pauth=off", b"SYSREG_",
               b"_EL1_", b"feat_", b"hw_prop_", b".", b"1.1", b"\x00", b"\t")
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: Any) -> str:
    key = str(key)
    return key if _BARE.match(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    return json.dumps(str(v), ensure_ascii=False)


def to_toml(data: Any) -> bytes:
    """TOML text of a model-file-shaped value: top-level tables as ``[table]`` sections, deeper
    ones inline (TOML has no null: None values are left out)."""
    if not isinstance(data, dict):
        data = {"name": data}
    lines, tables = [], []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif v is not None:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, table in tables:
        lines.append(f"\n[{_toml_key(k)}]")
        lines.extend(f"{_toml_key(kk)} = {_toml_value(v)}" for kk, v in table.items() if v is not None)
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def vocabulary() -> tuple[list[str], list[str]]:
    """(property names incl. composites and some raw aliases, value words of every property)."""
    from arm_cpu_filter.models import composite_spec
    from arm_cpu_filter.properties import properties, raw_name
    from arm_cpu_filter.table import load_table

    props = properties()
    names = [p.name for p in props] + list(composite_spec()[1])
    names += [raw_name(r.name, f.name) for r in load_table().registers[:12] for f in r.fields[:3]]
    values = sorted({v for p in props for v in p.choices()} | {"on", "off", "0", "1", "15", "1.1", "0x0", "0xd4f"})
    return names, values


class ModelFileTarget(Target):
    name = "model-file"
    description = "model files (models.load_catalog of a directory with the file and its ancestors) -> realize"
    tokens = TOML_TOKENS

    def open(self) -> None:
        from arm_cpu_filter.models import catalog, chain

        self._dir = scratch_dir("acf-fuzz-models-")
        models = catalog()
        self._seeds = []
        for name, model in models.items():
            d = self._dir / name
            d.mkdir()
            for ancestor in chain(name)[:-1]:
                shutil.copyfile(ancestor.path, d / Path(ancestor.path).name)
            raw = Path(model.path).read_bytes()
            self._seeds.append((name, raw, tomllib.loads(raw.decode())))
        props, values = vocabulary()
        self.words = [*props, *values, *models, "name", "parent", "vendor", "description", "inferred", "sources",
                      "properties", "provenance"]

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def seeds(self) -> list[tuple[str, bytes, dict]]:
        return self._seeds

    def case(self, seed: tuple[str, bytes, dict], kind: str, rng: random.Random) -> tuple[str, bytes]:
        name, raw, data = seed
        if kind == "seed":
            return name, raw
        if kind == "bytes":
            return name, mutate_bytes(raw, rng, self.tokens)
        if kind in ("structural", "mixed"):
            out = to_toml(mutate_json(data, rng, self.words))
            return name, out if kind == "structural" else mutate_bytes(out, rng, self.tokens, rng.randint(1, 3))
        return name, freeform(rng, self.tokens)

    def run(self, case: tuple[str, bytes]) -> None:
        from arm_cpu_filter.models import load_catalog, realize_model

        name, data = case
        directory = self._dir / name
        (directory / f"{name}.toml").write_bytes(data)
        models = load_catalog(directory)
        realize_model(name, models=models)
        return None


class ModelSpecTarget(Target):
    name = "model-spec"
    description = "MODEL,PROP=VAL specifications (models.realize, as expand/check) -> JSON, QEMU, guest XML, check, fix"
    tokens = SPEC_TOKENS

    def open(self) -> None:
        from arm_cpu_filter.models import catalog
        from arm_cpu_filter.samples import sample_host

        self.models = list(catalog())
        self.props, self.values = vocabulary()
        self.words = [*self.models, *self.props, *self.values]
        self.hosts = [sample_host("graviton2"), sample_host("a64fx")]
        try:
            import lxml  # noqa: F401 - expand --format libvirt needs it
            self.xml = True
        except ImportError:
            self.xml = False

    def seeds(self) -> list[list]:
        from arm_cpu_filter.models import catalog

        out: list[list] = []
        for name, model in catalog().items():
            out.append([name])
            out.append([name, *list(model.properties.items())[:2]])
        out.append(["grace-v1", ("feat_AES", "pmull"), ("hw_prop_DIC", "off"), ("sve", "off"),
                    ("SYSREG_ID_AA64ISAR0_EL1_RDM", "0")])
        out.append(["graviton3-v1", ("pauth", "off"), ("feat_CSV2", "1.1")])
        return out

    def structural(self, seed: list, rng: random.Random) -> list:
        items = list(seed)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(8)
            i = rng.randrange(1, len(items)) if len(items) > 1 else None
            if i is not None and isinstance(items[i], str) and op in (4, 5, 7):  # a junk item: no key or value
                op = 2
            if op == 0:
                items[0] = rng.choice(self.models) if rng.random() < 0.5 else text(rng, self.models)
            elif op == 1 or i is None:
                items.append((rng.choice(self.props), rng.choice(self.values)))
            elif op == 2:
                del items[i]
            elif op == 3:
                items.append(items[i])
            elif op == 4:
                items[i] = (items[i][0], text(rng, self.values) if rng.random() < 0.5 else rng.choice(self.values))
            elif op == 5:
                key = items[i][0]
                items[i] = (rng.choice((key.lower(), key.upper(), text(rng, self.props), key + "_X")), items[i][1])
            elif op == 6:
                items.insert(i, rng.choice(("", " ", "=", "x", "=x", "x=")))
            else:
                items[i] = (items[i][0], str(rng.choice((0, 1, 2, 15, 16, 2**64, -1))))
        return items

    def encode(self, items: list, rng: random.Random) -> str:
        sep, eq = rng.choice(((",", "="), (",", "="), (", ", "="), (",", " = ")))
        parts = [items[0]] + [p if isinstance(p, str) else f"{p[0]}{eq}{p[1]}" for p in items[1:]]
        return sep.join(parts)

    def from_bytes(self, data: bytes) -> str:
        return data.decode("utf-8", "surrogateescape")  # how a command-line argument arrives

    def run(self, spec: str) -> None:
        from arm_cpu_filter.engine import check, fix_model
        from arm_cpu_filter.models import parse_spec, realize
        from arm_cpu_filter.qemu import cpu_option

        definition = realize(spec)
        definition.to_dict()
        cpu_option(definition)
        if self.xml:
            from arm_cpu_filter.libvirt.guest import guest_cpu_spec, guest_cpu_xml

            back = realize(guest_cpu_spec(guest_cpu_xml(parse_spec(spec)[0], definition)))
            if back.fingerprint != definition.fingerprint:
                raise AssertionError("the guest CPU XML written for the spec reads back as another CPU")
        for host in self.hosts:
            if check(definition, host).usable:
                continue
            fixed = fix_model(spec, host)
            if fixed.usable and not check(realize(fixed.spec), host).usable:
                raise AssertionError(f"fix_model's {fixed.spec!r} is not usable on {host.host}")
        return None
