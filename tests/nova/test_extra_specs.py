"""The ``arm_cpu`` extra specs: Nova's own validator registry (loaded through the
``nova.api.extra_spec_validators`` entry point) rejects typos; the filter reads the specs."""

from __future__ import annotations

import pytest

pytest.importorskip("nova")

from nova import exception  # noqa: E402
from nova.api.validation.extra_specs import validators  # noqa: E402

from arm_cpu_filter.errors import InputError  # noqa: E402
from arm_cpu_filter.scheduler.request import CpuSpec  # noqa: E402


@pytest.mark.parametrize("name, value", [
    ("arm_cpu:model", "graviton2-v1"),
    ("arm_cpu:mode", "host-passthrough"),
    ("arm_cpu:mode", "custom"),
    ("arm_cpu:feat_AES", "pmull"),
    ("arm_cpu:hw_prop_DIC", "off"),
    ("arm_cpu:SYSREG_ID_AA64ISAR0_EL1_AES", "1"),
    ("arm_cpu:aarch32", "off"),
    ("arm_cpu:sve", "on"),
])
def test_valid_specs_pass_novas_validators(name, value):
    validators.validate(name, value)


@pytest.mark.parametrize("name, value, message", [
    ("arm_cpu:model", "gravitn3-v1", "is not one of"),
    ("arm_cpu:mode", "host-model", "is not one of"),
    ("arm_cpu:feat_AES", "sha3", "invalid value 'sha3'"),
    ("arm_cpu:feat_AESX", "on", "unknown property 'feat_AESX'"),
    ("arm_cpu:hw_prop_DIC", "off,feat_AES=off", "invalid value"),
    ("arm_cpu:aarch32", "no", r"invalid value 'no' for aarch32 \(valid: on, off\)"),
])
def test_typos_are_rejected_by_novas_validators(name, value, message):
    with pytest.raises(exception.ValidationError, match=message):
        validators.validate(name, value)


def test_our_namespace_is_registered():
    assert "arm_cpu" in validators.NAMESPACES
    assert {"arm_cpu:model", "arm_cpu:mode", "arm_cpu:{property}"} <= set(validators.VALIDATORS)


@pytest.mark.parametrize("specs, mode, model", [
    ({}, "host-passthrough", None),
    ({"hw:cpu_policy": "dedicated"}, "host-passthrough", None),
    ({"arm_cpu:mode": "host-passthrough"}, "host-passthrough", None),
    ({"arm_cpu:model": "grace-v1"}, "custom", "grace-v1"),
    ({"arm_cpu:model": "grace-v1", "arm_cpu:mode": "custom", "arm_cpu:feat_SM4": "off", "arm_cpu:feat_AES": "aes"},
     "custom", "grace-v1,feat_AES=aes,feat_SM4=off"),
    ({"arm_cpu:model": "graviton3-v1", "arm_cpu:aarch32": "off"}, "custom", "graviton3-v1,aarch32=off"),
])
def test_cpu_spec_from_extra_specs(specs, mode, model):
    spec = CpuSpec.from_extra_specs(specs)
    assert (spec.mode, spec.model) == (mode, model)


@pytest.mark.parametrize("specs, message", [
    ({"arm_cpu:mode": "custom"}, "needs arm_cpu:model"),
    ({"arm_cpu:feat_AES": "off"}, "sets no arm_cpu:model"),
    ({"arm_cpu:model": "grace-v1", "arm_cpu:mode": "host-passthrough"}, "contradicts"),
    ({"arm_cpu:mode": "host-model"}, "expected one of"),
    ({"arm_cpu:model": "grace-v1", "arm_cpu:feat_AES": "off,feat_SM4=off"}, "without ','"),
])
def test_bad_combinations(specs, message):
    with pytest.raises(InputError, match=message):
        CpuSpec.from_extra_specs(specs)


def test_the_flavor_commands_properties_pass_novas_validators():
    from arm_cpu_filter.cli.commands.flavor import flavor_properties

    props = flavor_properties("graviton3-v1,feat_AES=aes,hw_prop_DIC=off")
    specs = {k: v for k, v in props.items() if k.startswith("arm_cpu:")}
    assert specs == {"arm_cpu:model": "graviton3-v1", "arm_cpu:feat_AES": "aes", "arm_cpu:hw_prop_DIC": "off"}
    for name, value in specs.items():
        validators.validate(name, value)
    assert CpuSpec.from_extra_specs(props).model == "graviton3-v1,feat_AES=aes,hw_prop_DIC=off"
