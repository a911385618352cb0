"""Site models in the Nova plugin: ``[arm_cpu_filter] models_dir`` makes the filter, the
weighers and the flavor validators see the models ``pool-model`` wrote."""

from __future__ import annotations

import pytest

pytest.importorskip("nova")

from faultkit import plugin_options  # noqa: E402
from test_units import ZERO, passing, spec, weights_of  # noqa: E402
from test_units import store as store  # noqa: E402, F401 (the fixture)

from arm_cpu_filter import conf  # noqa: E402
from arm_cpu_filter.cli import main  # noqa: E402
from arm_cpu_filter.models import catalog, models_dir  # noqa: E402
from arm_cpu_filter.models.registry import DEFAULT_MODELS_DIR  # noqa: E402
from arm_cpu_filter.scheduler import extra_specs  # noqa: E402


@pytest.fixture
def site_dir(tmp_path, capsys):
    directory = tmp_path / "models.d"
    # graviton2 alone on 6.12: MIDR, REVIDR and the rest completed with its values
    assert main(["pool-model", "g2pool", "--from", "armv8.2-a-v1", "graviton2", "--models-dir", str(directory)]) == 0
    capsys.readouterr()
    return directory


def test_the_option_defaults_to_etc():
    (opt,) = [o for o in conf.ALL_OPTS if o.name == "models_dir"]
    assert opt.default == DEFAULT_MODELS_DIR


@pytest.mark.usefixtures("store")
def test_the_filter_admits_a_flavor_naming_a_site_model(site_dir):
    request = spec({"arm_cpu:model": "g2pool-v1"})
    assert passing(request) == []  # the default directory has no such model: every host refused
    with plugin_options(models_dir=str(site_dir)):
        assert passing(spec({"arm_cpu:model": "g2pool-v1"})) == ["g2-a", "g2-b"]  # Altra: another REVIDR
        assert models_dir() == site_dir and "g2pool-v1" in catalog()
        # the weigher's tightest fit counts the site model too: the Graviton2 hosts realize one more
        # model than Altra now (with the bundled catalog alone they tie: graviton2-v1 vs altra-v1)
        assert weights_of(spec({"arm_cpu:model": "g2pool-v1"})) == {**ZERO, "altra": 0.5, "g3": 1.0, "g4": 1.0}
    assert str(models_dir()) == DEFAULT_MODELS_DIR  # the plugin's reset forgets the option


def test_the_flavor_validator_lists_site_models(site_dir):
    with plugin_options(models_dir=str(site_dir)):
        assert "g2pool-v1" in extra_specs._model_names()
    assert "g2pool-v1" not in extra_specs._model_names()


def test_the_agent_offers_a_trait_for_a_site_model_from_its_config_file(tmp_path, site_dir, capsys):
    config = tmp_path / "arm-cpu-filter.conf"
    config.write_text(f"[arm_cpu_filter]\nmodels_dir = {site_dir}\n")
    argv = ["agent", "--once", "--from-file", "graviton2", "--host", "c1", "--no-libvirt", "--store-url",
            f"file://{tmp_path}/store", "--provider-config", str(tmp_path / "pc.yaml"), "--config-file", str(config)]
    assert main(argv) == 0
    capsys.readouterr()
    assert "CUSTOM_ARM_CPU_MODEL_G2POOL_V1" in (tmp_path / "pc.yaml").read_text()
    assert main(argv[:-2]) == 0  # without the config: the default directory, no site model
    capsys.readouterr()
    assert "CUSTOM_ARM_CPU_MODEL_G2POOL_V1" not in (tmp_path / "pc.yaml").read_text()
