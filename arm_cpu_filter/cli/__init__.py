"""The ``arm-cpu-filter`` command: virsh-like subcommands over the engine and adapters.

Each subcommand lives in ``cli/commands/<name>.py`` with ``register(subparsers)``; modules
import their heavy dependencies inside the handler so start-up stays fast.  Exit status:
0 success / usable, 1 not usable, 2 error (one line on stderr, no traceback; a command whose
optional package is missing names the extra that installs it, see :mod:`arm_cpu_filter.extras`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from arm_cpu_filter import __version__
from arm_cpu_filter.cli import commands
from arm_cpu_filter.cli.models_dir import add_models_dir, use_models_dir
from arm_cpu_filter.errors import ArmCpuFilterError, InputError
from arm_cpu_filter.extras import missing_extra

EXIT_OK, EXIT_NOT_USABLE, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep it one line
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="arm-cpu-filter",
        description="Safe live migration of ARM64 KVM guests: ID-register table, named CPU models, "
        "KVM host snapshots, libvirt domain capabilities, Nova scheduler support.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    for command in sub.choices.values():  # every command sees the site models
        add_models_dir(command)
    return parser


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("text", "json")) -> None:
    """``--format``, and ``--json`` for ``--format json`` where JSON is a choice.  JSON output is
    only JSON on stdout: notes and warnings go into the object or to stderr."""
    parser.add_argument("--format", choices=choices, default=choices[0], help="output format (default: %(default)s)")
    if "json" in choices:
        parser.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")


STORE_URL_ENV = "ARM_CPU_FILTER_STORE_URL"


def add_store_url(parser: argparse.ArgumentParser) -> None:
    """``--store-url``, defaulting to $ARM_CPU_FILTER_STORE_URL: a database password in the
    environment stays off the process list, where every local user could read it."""
    parser.add_argument("--store-url", metavar="URL", default=None,
                        help=f"file://DIR or an SQLAlchemy URL (default: ${STORE_URL_ENV})")  # fmt: skip


def store_url(args: argparse.Namespace, required: bool = True) -> str | None:
    """The store URL of a command: --store-url, else the environment; an error if required."""
    import os

    url = args.store_url or os.environ.get(STORE_URL_ENV) or None
    if url is None and required:
        raise InputError(f"no store: give --store-url URL or set {STORE_URL_ENV}")
    return url


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        use_models_dir(args)
        return int(args.func(args) or 0)
    except ArmCpuFilterError as exc:
        print(f"arm-cpu-filter {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ImportError as exc:  # an optional package the handler's code path imports
        missing = missing_extra(exc, "this command")
        if missing is None:
            raise
        print(f"arm-cpu-filter {args.command}: error: {missing}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
