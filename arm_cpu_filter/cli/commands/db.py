"""``db sync | db version``: the SQL store's schema.  ``sync`` creates it in an empty database or
upgrades an older one in place (alembic migrations; data is kept), ``version`` prints the
database's revision and the one this version reads.  The scheduler and agent refuse a database
at another revision until ``db sync`` has run.  The store is ``--store-url`` (or
$ARM_CPU_FILTER_STORE_URL), else ``[arm_cpu_filter_database] connection``, else
``[arm_cpu_filter] store_url`` of ``--config-file``; a file store has no schema."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from arm_cpu_filter.cli import EXIT_OK, STORE_URL_ENV, add_format, add_store_url, store_url
from arm_cpu_filter.cli.output import emit_json
from arm_cpu_filter.errors import InputError

if TYPE_CHECKING:
    from arm_cpu_filter.store import HostStore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="create or upgrade the SQL store's schema", description=__doc__)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    for name, help_text in (("sync", "upgrade the schema to this version's (data is kept)"),
                            ("version", "print the database's schema revision")):
        a = actions.add_parser(name, help=help_text, description=__doc__)
        add_store_url(a)
        a.add_argument("--config-file", action="append", default=[], metavar="FILE",
                       help="oslo.config file(s) with [arm_cpu_filter_database] or [arm_cpu_filter]")
        add_format(a)
        a.set_defaults(func=run)


def _open(args: argparse.Namespace) -> HostStore:
    from arm_cpu_filter import conf
    from arm_cpu_filter.store import open_store

    url = store_url(args, required=False)
    if url:
        return open_store(url)
    if not args.config_file:
        raise InputError(f"no store: give --store-url URL, set {STORE_URL_ENV} or give --config-file")
    return open_store(*conf.store_settings(conf.load(args.config_file)))


def run(args: argparse.Namespace) -> int:
    from arm_cpu_filter.store.sql import SqlStore

    store = _open(args)
    if not isinstance(store, SqlStore):
        report = {"store": store.url, "action": args.action, "schema": None}
        text = f"store {store.url}: a file store has no schema (nothing to do)"
    elif args.action == "sync":
        state = store.schema_state()
        before, after = store.sync_schema()
        report = {"store": store.url, "action": "sync", "from": before, "versioned": state["versioned"], "to": after}
        if before is None:
            done = f"schema created at {after}"
        elif not state["versioned"]:
            done = f"schema made before migrations ({before}) stamped and upgraded to {after}"
        else:
            done = f"schema already at {after}" if before == after else f"schema upgraded from {before} to {after}"
        text = f"store {store.url}: {done}"
    else:
        state = store.schema_state()
        report = {"store": store.url, "action": "version", **state}
        revision = state["revision"] or "none (no store tables)"
        note = "" if state["versioned"] or state["revision"] is None else " (made before migrations)"
        todo = "" if state["revision"] == state["head"] and state["versioned"] else ": run `arm-cpu-filter db sync`"
        text = f"store {store.url}: schema {revision}{note}, this version reads {state['head']}{todo}"
    if args.format == "json":
        emit_json(report)
    else:
        print(text)
    return EXIT_OK
