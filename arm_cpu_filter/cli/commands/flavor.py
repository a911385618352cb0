"""``flavor MODEL[,PROP=VAL...] [--format text|json]``: the Nova flavor properties that ask for
a named CPU model: ``arm_cpu:model``, one ``arm_cpu:<property>`` per override, and the placement
trait ``trait:CUSTOM_ARM_CPU_MODEL_<NAME>=required`` that the host agent's provider config puts
on hosts realizing the plain model, so placement prefilters before ``ArmCpuModelFilter`` checks
exactly.  The trait names the model without overrides: a host that realizes the plain model may
still refuse an override that adds a feature (the filter catches that), and one that only removes
features could also fit hosts without the trait.  Text: one ``KEY=VALUE`` per line; JSON: a dict
for ``openstack flavor set --property KEY=VALUE``."""

from __future__ import annotations

import argparse

from arm_cpu_filter.cli import add_format
from arm_cpu_filter.cli.output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flavor", help="Nova flavor properties (extra specs + trait) for a named CPU model",
                       description=__doc__)
    p.add_argument("model", help="MODEL[,PROP=VAL...]")
    add_format(p)
    p.set_defaults(func=run)


def flavor_properties(spec: str) -> dict[str, str]:
    """``grace-v1,feat_AES=off`` -> the flavor's extra specs; raises on an unknown model or a
    property/value the model does not accept (the API's validators would refuse them too)."""
    from arm_cpu_filter.agent.provider_config import trait_name
    from arm_cpu_filter.models import parse_spec, realize

    realize(spec)  # validates the model, every property and every value
    name, overrides = parse_spec(spec)
    out = {"arm_cpu:model": name}
    out.update({f"arm_cpu:{prop}": value for prop, value in overrides.items()})
    out[f"trait:{trait_name(name)}"] = "required"
    return out


def run(args: argparse.Namespace) -> int:
    props = flavor_properties(args.model)
    if args.format == "json":
        emit_json(props)
    else:
        print("\n".join(f"{k}={v}" for k, v in props.items()))
    return 0
