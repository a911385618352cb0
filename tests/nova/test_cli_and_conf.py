"""Operator commands (publish, migrate-targets, pool-baseline, demo) and configuration files."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from arm_cpu_filter.cli import main
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.snapshot.passthrough import passthrough_definition
from arm_cpu_filter.store import open_store
from arm_cpu_filter.testing.vmfacts import with_kernel_facts

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def url(tmp_path, capsys):
    url = f"file://{tmp_path}/store"
    code, out, _ = run(capsys, "publish", "graviton3", "graviton4", "graviton2", "--store-url", url)
    assert code == 0 and "graviton3" in out
    assert run(capsys, "publish", "graviton3", "--host", "g3-b", "--store-url", url)[0] == 0
    return url


def test_publish_lists_hosts(url):
    assert sorted(open_store(url).hosts()) == ["g3-b", "graviton2", "graviton3", "graviton4"]


def test_publish_errors_write_nothing(tmp_path, capsys):
    url = f"file://{tmp_path}/s"
    code, _, err = run(capsys, "publish", "graviton3", str(tmp_path / "missing.json"), "--store-url", url)
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
    code, _, err = run(capsys, "publish", "graviton3", "graviton4", "--host", "x", "--store-url", url)
    assert code == 2 and "one SNAPSHOT" in err


def test_store_url_from_the_environment(tmp_path, capsys, monkeypatch):
    """A database password can stay off the process list: $ARM_CPU_FILTER_STORE_URL."""
    url = f"sqlite:///{tmp_path}/s.sqlite"
    monkeypatch.delenv("ARM_CPU_FILTER_STORE_URL", raising=False)
    code, _, err = run(capsys, "publish", "graviton3")
    assert code == 2 and "give --store-url URL or set ARM_CPU_FILTER_STORE_URL" in err
    monkeypatch.setenv("ARM_CPU_FILTER_STORE_URL", url)
    assert run(capsys, "publish", "graviton3", "graviton2")[0] == 0
    assert sorted(open_store(url).hosts()) == ["graviton2", "graviton3"]
    code, out, _ = run(capsys, "pool-baseline", "graviton3", "graviton2", "--format", "json")
    conflicts = {c["register"] for c in json.loads(out)["conflicts"]}
    assert code == 1 and "MIDR_EL1" in conflicts  # read through the store named by the environment


def test_migrate_targets_of_a_recorded_instance(url, capsys):
    vm = str(uuid.uuid4())
    open_store(url).record_instance(vm, passthrough_definition(sample_host("graviton3"), "graviton3"), "graviton3")
    code, out, _ = run(capsys, "migrate-targets", vm, "--store-url", url, "--format", "json")
    data = json.loads(out)  # format-1 samples: a live move's register lists are unknown
    assert code == 1 and data["targets"] == [] and "unknown (a format-1 snapshot)" in data["refused"]["g3-b"]
    store = open_store(url)
    for host, sample in (("graviton3", "graviton3"), ("g3-b", "graviton3"), ("graviton4", "graviton4")):
        store.publish(with_kernel_facts(sample_host(sample)), host=host)
    code, out, _ = run(capsys, "migrate-targets", vm, "--store-url", url, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["targets"] == ["g3-b"] and data["source"] == "graviton3"
    assert "feat_SM3" in data["refused"]["graviton4"]
    code, out, _ = run(capsys, "migrate-targets", vm, "--store-url", url, "--hosts", "graviton4")
    assert code == 1 and "graviton4" in out and "no" in out


def test_migrate_targets_of_a_definition_without_store(capsys):
    code, out, _ = run(capsys, "migrate-targets", "--definition", "graviton2-v1,hw_prop_DIC=off",
                       "--hosts", "altra-7.3", "altra", "graviton2", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["targets"] == ["altra-7.3", "graviton2"]
    assert "REVIDR_EL1" in data["refused"]["altra"]


def test_migrate_targets_needs_an_instance_or_definition(capsys):
    code, _, err = run(capsys, "migrate-targets")
    assert code == 2 and "INSTANCE" in err


def test_pool_baseline(url, capsys, tmp_path):
    for sample, host in (("graviton2-7.3", "g2-new"), ("altra-7.3", "altra-new")):
        assert run(capsys, "publish", sample, "--host", host, "--store-url", url)[0] == 0
    code, out, _ = run(capsys, "pool-baseline", "g2-new", "altra-new", "--store-url", url,
                       "--format", "json", "--output", str(tmp_path / "pool.json"))
    data = json.loads(out)
    assert code == 0 and data["possible"] is True
    from arm_cpu_filter.engine import check
    from arm_cpu_filter.snapshot.files import load_definition

    pool = load_definition(tmp_path / "pool.json")
    for sample in ("graviton2-7.3", "altra-7.3"):
        assert check(pool, sample_host(sample)).usable
    assert not check(pool, sample_host("graviton3")).usable
    # Graviton3 and Graviton4 on Linux 6.12 share no CPU: MIDR differs and cannot be set
    code, out, err = run(capsys, "pool-baseline", "graviton3", "graviton4", "--store-url", url)
    assert code == 1 and out == "" and "MIDR_EL1: differs" in err
    code, _, err = run(capsys, "pool-baseline", "nowhere", "--store-url", url)
    assert code == 2 and "host nowhere: no snapshot" in err


@pytest.mark.parametrize("argv, status", [
    (["pool-baseline", "g2-new", "altra-new"], 0),  # text format: the definition itself, notes on stderr
    (["pool-baseline", "altra-new", "g2-new", "--json"], 0),
    (["pool-baseline", "graviton3", "graviton4", "--json"], 1),
    (["publish", "graviton4", "--host", "g4-b", "--json"], 0),
    (["migrate-targets", "--definition", "graviton3-v1", "--json"], 1),
    (["upgrade-check", "graviton4", "--json"], 0),
])
def test_store_commands_write_only_json_to_stdout(url, capsys, argv, status):
    for sample, host in (("graviton2-7.3", "g2-new"), ("altra-7.3", "altra-new")):
        assert run(capsys, "publish", sample, "--host", host, "--store-url", url)[0] == 0
    code, out, _ = run(capsys, *argv, "--store-url", url)
    assert code == status
    json.loads(out)


def test_pool_baseline_is_the_same_in_either_order(url, capsys):
    for sample, host in (("graviton2-7.3", "g2-new"), ("altra-7.3", "altra-new")):
        assert run(capsys, "publish", sample, "--host", host, "--store-url", url)[0] == 0
    code, forward, notes = run(capsys, "pool-baseline", "g2-new", "altra-new", "--store-url", url)
    assert code == 0 and run(capsys, "pool-baseline", "altra-new", "g2-new", "--store-url", url)[1] == forward
    assert json.loads(forward)["registers"]["REVIDR_EL1"] == "0x00000000000000c7"
    assert notes.splitlines()[0] == "altra-new gives up: cpu_revidr: 0x1c7 -> 0xc7"


def test_config_sample_is_up_to_date(tmp_path):
    gen = shutil.which("oslo-config-generator", path=str(Path(sys.executable).parent))
    assert gen, "oslo-config-generator is installed with oslo.config"
    out = tmp_path / "sample"
    subprocess.run([gen, "--config-file", "etc/oslo-config-generator/arm-cpu-filter.conf", "--output-file", str(out)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert filecmp.cmp(out, ROOT / "etc" / "arm-cpu-filter.conf.sample", shallow=False), (
        "etc/arm-cpu-filter.conf.sample is out of date: run "
        "oslo-config-generator --config-file etc/oslo-config-generator/arm-cpu-filter.conf")


def test_snippet_names_real_classes_and_options():
    pytest.importorskip("nova")
    from arm_cpu_filter import conf
    from arm_cpu_filter.scheduler.filters import ArmCpuModelFilter  # noqa: F401
    from arm_cpu_filter.scheduler.weighers import ArmCpuWeigher  # noqa: F401

    text = (ROOT / "etc" / "nova-arm-cpu-filter.conf.snippet").read_text()
    assert "arm_cpu_filter.scheduler.filters.ArmCpuModelFilter" in text
    assert "arm_cpu_filter.scheduler.weighers.ArmCpuWeigher" in text
    import configparser

    parser = configparser.ConfigParser(strict=False)
    parser.read_string(text)
    used = set(parser["arm_cpu_filter"])
    assert used and used <= {o.name for o in conf.ALL_OPTS}
    assert set(parser["arm_cpu_filter_database"]) == {"connection"}


def test_demo_runs_through_nova(tmp_path):
    pytest.importorskip("nova")
    out = subprocess.run([sys.executable, "-m", "arm_cpu_filter", "demo", "--format", "json"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    by_title = {r["title"]: r for r in data["requests"]}
    g3 = by_title["live migration: host-passthrough VM started on g3-a"]
    assert [a["host"] for a in g3["admitted"]] == ["g3-b"]
    assert "feat_SM4" in g3["refused"]["g4-a"]
    typo = by_title["boot: unknown model (typo) fails closed"]
    assert typo["admitted"] == [] and len(typo["refused"]) == 11
    live = by_title["live migration: graviton2-v1 VM with DIC off, running on g2-b"]
    assert [a["host"] for a in live["admitted"]] == ["g2-c"]
    assert "destination kernel 7.3.4 has no TCR2_EL1" in live["refused"]["g2-a"]  # the synthetic 7.3 list
    move = by_title["resize: graviton2-v1 VM with DIC off, running on g2-b"]
    assert [a["host"] for a in move["admitted"]][0] == "g2-c"  # identical to the source: preferred
    assert sorted(a["host"] for a in move["admitted"]) == ["altra-a", "g2-a", "g2-c"]


def test_database_connection_takes_precedence_over_store_url(tmp_path, capsys):
    """``[arm_cpu_filter_database] connection`` is the store when set: for the agent, ``db sync``
    and ``conf.store_settings`` (with its oslo.db options); ``--store-url`` overrides both."""
    from oslo_config import cfg

    from arm_cpu_filter import conf

    sql, files = f"sqlite:///{tmp_path}/store.sqlite", f"file://{tmp_path}/files"
    config = tmp_path / "agent.conf"
    config.write_text(f"[arm_cpu_filter]\nstore_url = {files}\n\n"
                      f"[arm_cpu_filter_database]\nconnection = {sql}\ndb_max_retries = 3\n")
    config.chmod(0o640)
    options = cfg.ConfigOpts()
    conf.register_opts(options)
    options([], default_config_files=[str(config)])
    url, database = conf.store_settings(options)
    assert url == sql and database["db_max_retries"] == 3 and database["mysql_sql_mode"] == "TRADITIONAL"
    assert "connection" not in database

    code, out, _ = run(capsys, "db", "sync", "--config-file", str(config))
    assert code == 0 and out == f"store {sql}: schema created at 0003_mysql_double_timestamps\n"
    agent = ["agent", "--once", "--from-file", "graviton3", "--host", "g3-a", "--no-libvirt", "--no-provider-config",
             "--config-file", str(config)]
    assert run(capsys, *agent)[0] == 0
    assert list(open_store(sql).hosts()) == ["g3-a"] and open_store(files).hosts() == {}
    assert run(capsys, *agent, "--store-url", files)[0] == 0
    assert list(open_store(sql).hosts()) == ["g3-a"] and list(open_store(files).hosts()) == ["g3-a"]
    config.write_text(f"[arm_cpu_filter]\nstore_url = {files}\n")
    options = cfg.ConfigOpts()
    conf.register_opts(options)
    options([], default_config_files=[str(config)])
    assert conf.store_settings(options) == (files, {})
