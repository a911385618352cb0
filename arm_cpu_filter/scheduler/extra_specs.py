"""Flavor extra-spec validators for the ``arm_cpu`` namespace, registered through Nova's
``nova.api.extra_spec_validators`` entry point so the compute API (microversion 2.86+)
rejects a typo in a model, property or value when the flavor is created."""

from __future__ import annotations

from nova import exception
from nova.api.validation.extra_specs import base
from oslo_config import cfg

from arm_cpu_filter import conf
from arm_cpu_filter.errors import ArmCpuFilterError
from arm_cpu_filter.models import catalog, composite_spec, set_models_dir
from arm_cpu_filter.models.registry import parse_setting
from arm_cpu_filter.properties import properties
from arm_cpu_filter.scheduler.request import MODES, NAMESPACE


def _model_names() -> list[str]:
    """The bundled and site models (``[arm_cpu_filter] models_dir``) when the API loads us."""
    conf.register_opts(cfg.CONF)
    set_models_dir(cfg.CONF.arm_cpu_filter.models_dir)
    return sorted(catalog())


class PropertyValidator(base.ExtraSpecValidator):
    """``arm_cpu:<property>``: the property (or model composite) must exist and the value must parse."""

    def validate(self, name: str, value: str) -> None:
        super().validate(name, value)
        prop_name = name.split(":", 1)[1]
        try:
            if prop_name in composite_spec()[1]:  # sve, pauth, pmu, aarch32: on/off
                parse_setting(prop_name, value, "composite")
            else:
                properties().get(prop_name).parse(value)
        except ArmCpuFilterError as exc:
            raise exception.ValidationError(f"Validation failed; {name}={value}: {exc}") from None
        if "," in value or "=" in value:
            raise exception.ValidationError(f"Validation failed; {name}={value}: ',' and '=' are not allowed")


def register() -> list[base.ExtraSpecValidator]:
    return [
        base.ExtraSpecValidator(
            name=f"{NAMESPACE}:model",
            description="Named ARM64 CPU model the guest sees (implies arm_cpu:mode=custom); the "
            "ArmCpuModelFilter admits only hosts whose KVM can realize it.",
            value={"type": str, "description": "a model of `arm-cpu-filter models`", "enum": _model_names()},
        ),
        base.ExtraSpecValidator(
            name=f"{NAMESPACE}:mode",
            description="host-passthrough (default: the guest sees the CPU of the host it boots on) or "
            "custom (a named model, arm_cpu:model).",
            value={"type": str, "description": "CPU mode", "enum": list(MODES)},
        ),
        PropertyValidator(
            name=f"{NAMESPACE}:{{property}}",
            description="Override one property of the named model (arm_cpu:feat_AES=off, "
            "arm_cpu:hw_prop_DIC=off, arm_cpu:SYSREG_ID_AA64ISAR0_EL1_AES=0) or switch a composite "
            "(arm_cpu:aarch32=off, arm_cpu:sve=off).",
            value={"type": str, "description": "a value the property accepts"},
            parameters=[{"name": "property", "pattern": r"[A-Za-z][A-Za-z0-9_]*",
                         "description": "a property name (`arm-cpu-filter fields`)"}],
        ),
    ]
