"""Nova provider-config YAML (schema 1.0, read by nova-compute from
``[compute] provider_config_location`` at start-up) adding a ``CUSTOM_ARM_CPU_MODEL_<NAME>``
trait per named model this host realizes to the compute node's resource provider."""

from __future__ import annotations

import os
import re
import time

from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.snapshot.files import atomic_write
from arm_cpu_filter.store.files import makedirs

SCHEMA_VERSION = "1.0"
TRAIT_PREFIX = "CUSTOM_ARM_CPU_MODEL_"


def trait_name(model: str) -> str:
    """``grace-v1`` -> ``CUSTOM_ARM_CPU_MODEL_GRACE_V1`` (placement: ``CUSTOM_[A-Z0-9_]+``)."""
    return TRAIT_PREFIX + re.sub(r"[^A-Z0-9]", "_", model.upper())


def provider_config(models: list[str], host: str) -> str:
    """The YAML text (written by hand: one fixed shape, no YAML library needed to write it)."""
    traits = sorted({trait_name(m) for m in models})
    lines = [
        f"# Written by arm-cpu-filter agent for {host} at "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; do not edit.",
        f"# Named CPU models this host's KVM realizes: {', '.join(sorted(models)) or 'none'}.",
        "meta:",
        f"  schema_version: '{SCHEMA_VERSION}'",
        "providers:",
        "  - identification:",
        "      uuid: $COMPUTE_NODE",
        "    traits:",
    ]
    lines += ["      additional:"] + [f"        - {t}" for t in traits] if traits else ["      additional: []"]
    return "\n".join(lines) + "\n"


def write_provider_config(path: str, models: list[str], host: str) -> None:
    """Readable by nova-compute, writable by the agent only (directory included: whoever could
    write there could give this compute node any trait)."""
    try:
        makedirs(os.path.dirname(os.path.abspath(path)), 0o755)
        atomic_write(path, provider_config(models, host), 0o644)
    except OSError as exc:
        raise ArmCpuFilterError(f"provider config {path}: cannot write: {exc.strerror}") from None
