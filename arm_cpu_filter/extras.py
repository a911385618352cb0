"""Which installable package (and which of the project's extras) provides each optional module.

``pip install arm-cpu-filter`` alone gives the engine, the CLI, libvirt domain capabilities
(lxml), the configuration (oslo.config), the ``file://`` and SQLite stores and the schema
tooling (SQLAlchemy, oslo.db, alembic).
The rest is in extras (``setup.cfg``): ``libvirt`` (libvirt-python, which builds only where
libvirt's headers are installed), ``sql`` (drivers for database servers), ``nova``, ``fuzz``
and ``test``.  A feature whose module is missing raises :class:`MissingExtra` naming the extra,
so the user reads one line with the fix instead of a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from arm_cpu_filter.errors import MissingExtra

#: top-level module -> (distribution that provides it, extra that installs it; None: core)
PROVIDERS: dict[str, tuple[str, str | None]] = {
    "lxml": ("lxml", None),
    "oslo_config": ("oslo.config", None),
    "sqlalchemy": ("SQLAlchemy", None),
    "libvirt": ("libvirt-python", "libvirt"),
    "pymysql": ("PyMySQL", "sql"),
    "psycopg2": ("psycopg2-binary", "sql"),
    "oslo_db": ("oslo.db", None),
    "alembic": ("alembic", None),
    "oslo_utils": ("oslo.utils", None),  # oslo.db's dependency
    "nova": ("nova", "nova"),
    "hypothesis": ("hypothesis", "fuzz"),
    "placement": ("openstack-placement", "test"),
}


def missing_extra(exc: ImportError, feature: str) -> MissingExtra | None:
    """The :class:`MissingExtra` for ``exc`` when it is a known optional module that is not
    installed; None for anything else (a real bug, which must keep its traceback)."""
    top = (exc.name or "").partition(".")[0]
    if top not in PROVIDERS:
        return None
    package, extra = PROVIDERS[top]
    return MissingExtra(feature, package, extra, top)


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtra` saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        err = missing_extra(exc, feature)
        if err is None:
            raise
        raise err from None
