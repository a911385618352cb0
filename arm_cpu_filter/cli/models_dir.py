"""``--models-dir DIR``: the site models directory, an option of every command."""

from __future__ import annotations

import argparse

HELP = "site models directory (default: $ARM_CPU_FILTER_MODELS_DIR, else /etc/arm-cpu-filter/models.d)"


def add_models_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", metavar="DIR", default=None, help=HELP)


def use_models_dir(args: argparse.Namespace) -> None:
    """Make the command's catalog read ``--models-dir`` (or, without it, the environment's)."""
    # loaded on use: the registry pulls the property tables, which most commands' start-up skips
    from arm_cpu_filter.models.registry import set_models_dir

    set_models_dir(getattr(args, "models_dir", None))
