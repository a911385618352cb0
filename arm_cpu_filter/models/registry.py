"""The catalog of named CPU models: one reviewable TOML file per model in ``data/``.

A model file has ``name`` (with a ``-vN`` version suffix), ``parent``, ``vendor``,
``description``, optional ``inferred`` (statements of what is not measured), ``[sources]``
(id -> where values come from) and ``[properties]`` (only the deltas to the parent, as
``property = "value"``) with ``[provenance]`` naming the source ids of every property.
Everything is validated when the catalog loads, so a broken file fails loudly and early.

Site models (``pool-model``'s output) live in the site models directory: ``--models-dir`` on
the CLI or ``[arm_cpu_filter] models_dir`` in a service (``set_models_dir``), else
``$ARM_CPU_FILTER_MODELS_DIR``, else ``/etc/arm-cpu-filter/models.d``.  They are validated like
the bundled ones, may also carry a ``[pool]`` table (the hosts and snapshot fingerprints they
were made from, and what each host gives up), and may not reuse a bundled model family's name.
``catalog()`` is the bundled models plus the site models (re-read when the directory changes).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from arm_cpu_filter.errors import InputError, UnknownNameError
from arm_cpu_filter.properties import Property, properties
from arm_cpu_filter.snapshot.files import read_text

DATA = Path(__file__).with_name("data")
_NAME = re.compile(r"^([a-z0-9][a-z0-9.-]*?)-v([1-9][0-9]*)$")
_KEYS = {"name", "parent", "vendor", "description", "inferred", "sources", "properties", "provenance"}
#: the table only a site model carries: how it was generated (``pool-model``)
POOL_KEY = "pool"
_POOL_KEYS = {"command", "from", "hosts", "lowered", "completed", "gives_up"}
MODELS_DIR_ENV = "ARM_CPU_FILTER_MODELS_DIR"
DEFAULT_MODELS_DIR = "/etc/arm-cpu-filter/models.d"
ON_OFF = ("on", "off")


@cache
def _composites_data() -> dict:
    return tomllib.loads(Path(__file__).with_name("composites.toml").read_text())


@cache
def composite_spec() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(features every model VM uses, composite name -> the vCPU features it switches)."""
    data = _composites_data()
    return tuple(data["always"]), {k: tuple(v) for k, v in data["composites"].items()}


@dataclass(frozen=True)
class Capped:
    """A composite over exception-level fields (``aarch32``): ``off`` lowers each to ``cap``."""

    fields: tuple[str, ...]  # REG.Field qualnames
    cap: int


@cache
def capped_composites() -> dict[str, Capped]:
    """Composite name -> its capped fields, for the composites that switch no vCPU feature."""
    return {k: Capped(tuple(v["fields"]), int(v["cap"])) for k, v in _composites_data().get("capped", {}).items()}


@dataclass(frozen=True, slots=True)
class Setting:
    """One ``property = value`` line of a model file (or a user override), parsed."""

    prop: Property | None  # None: a composite (sve/pauth/pmu/aarch32)
    name: str
    value: str
    raws: tuple[int, ...] = ()


@dataclass(frozen=True)
class Model:
    name: str
    parent: str | None
    vendor: str
    description: str
    settings: tuple[Setting, ...]
    provenance: dict[str, str]
    sources: dict[str, str]
    inferred: tuple[str, ...] = ()
    path: str = ""
    #: a site model's ``[pool]`` table (None: a bundled model)
    pool: dict | None = None
    family: str = field(init=False)
    version: int = field(init=False)

    def __post_init__(self) -> None:
        m = _NAME.match(self.name)
        assert m  # validated by _load
        object.__setattr__(self, "family", m.group(1))
        object.__setattr__(self, "version", int(m.group(2)))

    @property
    def properties(self) -> dict[str, str]:
        return {s.name: s.value for s in self.settings}

    def source_text(self, prop: str) -> str:
        """The provenance of one property, source ids expanded."""
        ids = [s.strip() for s in self.provenance.get(prop, "").split(",") if s.strip()]
        return "; ".join(self.sources[i] for i in ids)


def parse_setting(name: str, value: object, where: str) -> Setting:
    """``name = value`` -> Setting; unknown property or invalid value is a clear error."""
    if isinstance(value, bool):
        value = "on" if value else "off"
    if not isinstance(value, str | int):
        raise InputError(f"{where}: value of {name} must be a string, got {value!r}")
    value = str(value).strip()
    _, composites = composite_spec()
    if name in composites:
        if value.lower() not in ON_OFF:
            raise InputError(f"{where}: invalid value {value!r} for {name} (valid: on, off)")
        return Setting(None, name, value.lower())
    try:
        prop = properties().get(name)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{where}: {exc}") from None
    try:
        raws = prop.parse(value)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    return Setting(prop, prop.name, value, raws)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _check_pool(pool: object, props: dict, where: str) -> dict:
    """A site model's ``[pool]`` table: its keys and their types, and nothing else."""
    if not isinstance(pool, dict):
        raise InputError(f"{where}: [{POOL_KEY}] must be a table")
    unknown = set(pool) - _POOL_KEYS
    if unknown:
        raise InputError(f"{where}: unknown keys in [{POOL_KEY}]: {', '.join(sorted(unknown))}")
    for key in ("command", "from"):
        if not isinstance(pool.get(key), str) or not pool[key].strip():
            raise InputError(f"{where}: [{POOL_KEY}] {key} must be a non-empty string")
    hosts = pool.get("hosts")
    if not isinstance(hosts, dict) or not hosts or not all(isinstance(v, str) for v in hosts.values()):
        raise InputError(f"{where}: [{POOL_KEY}.hosts] must map each host to its snapshot fingerprint")
    for key in ("lowered", "completed"):
        if not _strings(pool.get(key, [])) or set(pool.get(key, [])) - set(props):
            raise InputError(f"{where}: [{POOL_KEY}] {key} must list properties the model sets")
    gives_up = pool.get("gives_up", {})
    if not isinstance(gives_up, dict) or set(gives_up) - set(hosts) or not all(map(_strings, gives_up.values())):
        raise InputError(f"{where}: [{POOL_KEY}.gives_up] must map hosts of the pool to lists of strings")
    return pool


def _load(path: Path, site: bool = False) -> Model:
    where = f"{'site ' if site else ''}model file {path.name}"
    try:
        data = tomllib.loads(read_text(path, "model file"))  # size-limited, UTF-8 checked
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not valid TOML ({exc})") from None
    unknown = set(data) - _KEYS - ({POOL_KEY} if site else set())
    if unknown:
        raise InputError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    for key in ("name", "vendor", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise InputError(f"{where}: {key!r} must be a non-empty string")
    name = data["name"]
    if not _NAME.match(name) or path.stem != name:
        raise InputError(f"{where}: name {name!r} must be the file name and end in a version suffix (-v1)")
    parent = data.get("parent") or None
    sources = data.get("sources", {})
    provenance = data.get("provenance", {})
    props = data.get("properties", {})
    if parent is not None and not isinstance(parent, str):
        raise InputError(f"{where}: 'parent' must be a model name (a string)")
    for key, table in (("sources", sources), ("provenance", provenance), ("properties", props)):
        if not isinstance(table, dict):
            raise InputError(f"{where}: [{key}] must be a table")
    if not all(isinstance(v, str) for v in sources.values()):
        raise InputError(f"{where}: [sources] values must be strings")
    settings = []
    for key, value in props.items():
        s = parse_setting(key, value, where)
        prov = provenance.get(key)
        if not isinstance(prov, str) or not prov.strip():
            raise InputError(f"{where}: property {key} has no [provenance] entry")
        missing = [i.strip() for i in prov.split(",") if i.strip() not in sources]
        if missing:
            raise InputError(f"{where}: provenance of {key} names unknown sources {missing}")
        settings.append(s)
    extra = set(provenance) - set(props)
    if extra:
        raise InputError(f"{where}: [provenance] for properties the model does not set: {sorted(extra)}")
    inferred = data.get("inferred", [])
    if not isinstance(inferred, list) or not all(isinstance(x, str) for x in inferred):
        raise InputError(f"{where}: 'inferred' must be a list of strings")
    pool = _check_pool(data[POOL_KEY], props, where) if POOL_KEY in data else None
    return Model(name, parent, data["vendor"], data["description"].strip(), tuple(settings),
                 dict(provenance), dict(sources), tuple(inferred), str(path), pool)


def load_catalog(directory: Path = DATA, site: Path | None = None) -> dict[str, Model]:
    """Load and validate every model file of ``directory`` and of the site models directory
    ``site`` (parents exist, no cycles, no site model in a bundled family)."""
    models = {}
    for path in sorted(directory.glob("*.toml")):
        model = _load(path)
        models[model.name] = model
    families = {m.family for m in models.values()}
    for path in sorted(site.glob("*.toml")) if site is not None and site.is_dir() else ():
        model = _load(path, site=True)
        if model.family in families:
            raise InputError(f"site model {model.name} ({path}): the name {model.family!r} is a bundled "
                             "model's; a site model may not shadow it")
        models[model.name] = model
    for model in models.values():
        seen = [model.name]
        parent = model.parent
        while parent is not None:
            if parent not in models:
                raise InputError(f"model {seen[-1]}: unknown parent model {parent!r}")
            if parent in seen:
                raise InputError(f"model {model.name}: parent chain has a cycle ({' -> '.join(seen + [parent])})")
            seen.append(parent)
            parent = models[parent].parent
    return models


_configured_dir: list[str | None] = [None]


def set_models_dir(directory: str | os.PathLike[str] | None) -> None:
    """Use ``directory`` as the site models directory (the CLI's ``--models-dir``, a service's
    option); None: back to ``$ARM_CPU_FILTER_MODELS_DIR``, else the default."""
    _configured_dir[0] = None if directory is None else os.fspath(directory)


def models_dir() -> Path:
    """The site models directory in use (it need not exist: then there are no site models)."""
    return Path(_configured_dir[0] or os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def catalog_key() -> tuple[str, int | None]:
    """What the catalog depends on besides the package: the site directory and its mtime (a new
    version file changes it); memos of realized models are keyed by it."""
    directory = models_dir()
    try:
        return str(directory), directory.stat().st_mtime_ns
    except OSError:
        return str(directory), None


@lru_cache(maxsize=8)
def _catalog_for(directory: str, mtime: int | None) -> dict[str, Model]:
    return load_catalog(DATA, Path(directory) if mtime is not None else None)


def catalog() -> dict[str, Model]:
    """The bundled models and the site models directory's (loaded once per directory state)."""
    return _catalog_for(*catalog_key())


@cache
def bundled_catalog() -> dict[str, Model]:
    """The models shipped with the package alone."""
    return load_catalog()


def get_model(name: str, models: dict[str, Model] | None = None) -> Model:
    models = catalog() if models is None else models
    try:
        return models[name]
    except KeyError:
        raise UnknownNameError(f"unknown CPU model {name!r} (see 'arm-cpu-filter models')") from None


def chain(name: str, models: dict[str, Model] | None = None) -> list[Model]:
    """The model and its ancestors, root first."""
    models = catalog() if models is None else models
    out = [get_model(name, models)]
    while out[-1].parent:
        out.append(models[out[-1].parent])
    return out[::-1]
