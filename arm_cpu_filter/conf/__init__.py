"""oslo.config options of the ``[arm_cpu_filter]`` group (Nova scheduler plugin and host agent)
and of ``[arm_cpu_filter_database]`` (the SQL store, in the shape of Nova's ``[api_database]``).

Nova's scheduler and the agent share these groups, so a single ``nova.conf`` snippet
configures both.  ``list_opts()`` is the ``oslo.config.opts`` entry point that
``oslo-config-generator`` uses to write ``etc/arm-cpu-filter.conf.sample``.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg
from oslo_db import options as oslo_db_options

from arm_cpu_filter.errors import InputError

GROUP = cfg.OptGroup(
    "arm_cpu_filter",
    title="ARM64 CPU model filter",
    help="Options of the arm-cpu-filter Nova scheduler filter, weigher and host agent.",
)

STORE_OPTS = [
    cfg.StrOpt(
        "store_url",
        default="file:///var/lib/arm-cpu-filter/store",
        secret=True,
        help="Where host snapshots, host records and instance CPU definitions live. "
        "``file://DIR`` (one JSON file per host, atomic writes; for one node or a shared "
        "directory) or an SQLAlchemy URL (``sqlite:///PATH``, ``postgresql://...``, "
        "``mysql+pymysql://...``). Not used when ``[arm_cpu_filter_database] connection`` "
        "is set. Treated as secret because SQL URLs carry passwords.",
    ),
    cfg.IntOpt(
        "max_snapshot_age",
        default=3600,
        min=0,
        help="Seconds after which a host's published data counts as stale; the filter then "
        "refuses the host (fail closed). The agent republishes every ``agent_interval`` "
        "seconds. 0 disables the staleness check.",
    ),
    cfg.IntOpt(
        "store_refresh_interval",
        default=30,
        min=0,
        help="Seconds the scheduler reuses its in-memory view of the store before reading "
        "host records again (snapshots are content-addressed and cached for good); "
        "staleness is judged at each read. 0 re-reads on every request.",
    ),
    cfg.IntOpt(
        "decision_cache_size",
        default=100000,
        min=16,
        help="Number of (CPU definition, host snapshot) verdicts kept in memory.",
    ),
]

WEIGHER_OPTS = [
    cfg.FloatOpt(
        "passthrough_weight_multiplier",
        default=1.0,
        help="Host-passthrough boots: weight of the share of hosts that would accept a VM "
        "started on the candidate (favours hosts that keep the most migration destinations). "
        "Negative values invert the preference; 0 disables it.",
    ),
    cfg.FloatOpt(
        "model_fit_weight_multiplier",
        default=1.0,
        help="Named-model boots: weight of the tightest fit (favours candidates that can "
        "realize the fewest catalog models, leaving richer hosts for richer models).",
    ),
    cfg.FloatOpt(
        "move_identical_weight_multiplier",
        default=1.0,
        help="Moves (live migration, evacuation, resize): weight of a destination whose "
        "snapshot is identical to the instance's CPU source.",
    ),
]

MODEL_OPTS = [
    cfg.StrOpt(
        "models_dir",
        default="/etc/arm-cpu-filter/models.d",
        help="Directory of site CPU models (``NAME-vN.toml`` files written by ``arm-cpu-filter "
        "pool-model``), read beside the bundled catalog by the filter, the weighers and the "
        "flavor validators. A missing directory means no site models. A site model may not "
        "reuse a bundled model's name; a broken file fails the whole catalog loudly.",
    ),
]

AGENT_OPTS = [
    cfg.StrOpt(
        "host",
        sample_default="<the compute service host name>",
        help="Name under which the agent publishes this host; must equal the nova-compute "
        "service host (``[DEFAULT] host``). Default: the machine's host name.",
    ),
    cfg.IntOpt(
        "agent_interval",
        default=300,
        min=1,
        help="Seconds between two agent rounds (snapshot, publish, record new instances). "
        "Keep it well below ``max_snapshot_age``.",
    ),
    cfg.StrOpt(
        "libvirt_uri",
        default="qemu:///system",
        help="libvirt connection the agent lists running domains from.",
    ),
    cfg.StrOpt(
        "provider_config_file",
        default="/etc/nova/provider_config/arm-cpu-filter.yaml",
        help="Nova provider-config YAML the agent writes with a CUSTOM_ARM_CPU_MODEL_<NAME> "
        "trait per usable named model (put its directory in "
        "``[compute] provider_config_location``; nova-compute reads it at start). Empty: "
        "do not write one.",
    ),
]

ALL_OPTS = STORE_OPTS + WEIGHER_OPTS + MODEL_OPTS + AGENT_OPTS

DATABASE_GROUP = cfg.OptGroup(
    "arm_cpu_filter_database",
    title="arm-cpu-filter SQL store",
    help="The SQL database of the arm-cpu-filter store, through oslo.db (as Nova's "
    "``[api_database]``). When ``connection`` is set it is the store, and "
    "``[arm_cpu_filter] store_url`` is not used; an agent's ``--store-url`` overrides both. "
    "Create or upgrade its schema with ``arm-cpu-filter db sync``.",
)
#: oslo.db's options that apply to the store: the connection, the engine and pool, and the retry of
#: writes on deadlock or lost connection.  Left out: read replicas, asyncio, the DB API backend, and
#: the start-up connection retries (the store connects on use; a failure fails closed at once and
#: the next use tries again).
DATABASE_OPTION_NAMES = (
    "connection", "connection_parameters", "sqlite_synchronous", "mysql_sql_mode", "mysql_wsrep_sync_wait",
    "connection_recycle_time", "max_pool_size", "max_overflow", "pool_timeout", "connection_debug",
    "connection_trace", "db_max_retries", "db_retry_interval", "db_inc_retry_interval", "db_max_retry_interval",
)
DATABASE_OPTS = [opt for opt in oslo_db_options.database_opts if opt.name in DATABASE_OPTION_NAMES]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the groups on ``conf`` (idempotent; Nova's CONF is oslo's global CONF)."""
    conf.register_group(GROUP)
    conf.register_opts(ALL_OPTS, group=GROUP)
    conf.register_group(DATABASE_GROUP)
    conf.register_opts(DATABASE_OPTS, group=DATABASE_GROUP)


def load(config_files: list[str] | None) -> cfg.ConfigOpts:
    """The two groups read from ``config_files`` (a command's ``--config-file``), in a
    ConfigOpts of their own; a missing or broken file is an InputError naming it."""
    options = cfg.ConfigOpts()
    register_opts(options)
    try:
        options([], project="arm-cpu-filter", default_config_files=config_files or [])
    except (cfg.Error, OSError) as exc:
        raise InputError(f"--config-file: {str(exc).splitlines()[0]}") from None
    return options


def store_settings(conf: cfg.ConfigOpts) -> tuple[str, dict[str, Any]]:
    """The store URL and its oslo.db options: ``[arm_cpu_filter_database] connection`` with the
    group's other options when set, else ``[arm_cpu_filter] store_url`` with oslo.db's defaults."""
    database = conf[DATABASE_GROUP.name]
    if database.connection:
        return database.connection, {name: database[name] for name in DATABASE_OPTION_NAMES if name != "connection"}
    return conf[GROUP.name].store_url, {}


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """``oslo.config.opts`` entry point."""
    return [(GROUP, ALL_OPTS), (DATABASE_GROUP, DATABASE_OPTS)]
