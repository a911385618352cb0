"""A missing optional package is one line naming the extra that installs it (exit 2, no
traceback).  Packages are hidden in-process (``sys.modules[name] = None`` makes importing them
fail as if they were not installed); ``test_plain_install`` proves the same on a real install."""

from __future__ import annotations

import sys

import pytest

from arm_cpu_filter.cli import main
from arm_cpu_filter.errors import ArmCpuFilterError, MissingExtra
from arm_cpu_filter.extras import missing_extra, require


@pytest.fixture
def hide(monkeypatch):
    """``hide(*packages, dependents=(prefix, ...))``: make ``packages`` unimportable and forget the
    already-imported project modules under ``dependents``, so they import again and meet the gap."""

    def hide(*packages: str, dependents: tuple[str, ...] = ()) -> None:
        for name in packages:
            monkeypatch.setitem(sys.modules, name, None)
        for module in [m for m in sys.modules if dependents and m.startswith(dependents)]:
            monkeypatch.delitem(sys.modules, module)

    return hide


def error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_missing_extra_is_an_error_with_the_pip_line():
    err = MissingExtra("--connect", "libvirt-python", "libvirt")
    assert isinstance(err, ArmCpuFilterError)
    assert str(err) == "--connect needs libvirt-python: pip install 'arm-cpu-filter[libvirt]'"
    assert err.pip == "pip install 'arm-cpu-filter[libvirt]'"
    # still an import failure, of the module that is missing: code that can do without it catches it
    assert isinstance(MissingExtra("x", "nova", "nova", "nova"), ImportError)
    assert missing_extra(MissingExtra("x", "nova", "nova", "nova"), "y").name == "nova"
    # a core dependency: the plain install brings it back
    assert str(MissingExtra("x", "lxml", None)) == "x needs lxml: pip install arm-cpu-filter"


def test_require_names_the_extra_of_a_missing_package(hide):
    hide("hypothesis", "nova")
    with pytest.raises(MissingExtra, match=r"^fuzzing needs hypothesis: pip install 'arm-cpu-filter\[fuzz\]'$"):
        require("hypothesis", "fuzzing")
    with pytest.raises(MissingExtra, match=r"^the filter needs nova: pip install 'arm-cpu-filter\[nova\]'$"):
        require("nova", "the filter")
    # a missing submodule is told by its top-level package
    assert str(missing_extra(ModuleNotFoundError(name="pymysql.cursors"), "a MySQL store")) == (
        "a MySQL store needs PyMySQL: pip install 'arm-cpu-filter[sql]'")
    # a core dependency missing (a broken install) is told as the plain install
    assert str(missing_extra(ModuleNotFoundError(name="oslo_db.sqlalchemy"), "the SQL store")) == (
        "the SQL store needs oslo.db: pip install arm-cpu-filter")
    assert require("json", "anything").dumps([1]) == "[1]"


def test_an_unknown_missing_module_is_not_dressed_up_as_an_extra():
    assert missing_extra(ModuleNotFoundError("No module named 'nosuch'", name="nosuch"), "x") is None
    assert missing_extra(ImportError("cannot import name 'x'"), "x") is None  # no module name: a bug
    with pytest.raises(ModuleNotFoundError):
        require("arm_cpu_filter_nosuch", "x")


def test_domcapabilities_without_lxml(hide, capsys):
    hide("lxml", dependents=("arm_cpu_filter.libvirt.",))
    assert main(["domcapabilities", "--host", "graviton3"]) == 2
    assert error_line(capsys) == "arm-cpu-filter domcapabilities: error: this command needs lxml: pip install arm-cpu-filter\n"


def test_connect_without_libvirt_python(hide, capsys):
    hide("libvirt")
    assert main(["domcapabilities", "--host", "graviton3", "--connect", "qemu:///system"]) == 2
    assert error_line(capsys) == ("arm-cpu-filter domcapabilities: error: --connect needs libvirt-python: "
                                  "pip install 'arm-cpu-filter[libvirt]'\n")


def test_server_store_url_without_its_driver(hide, capsys, tmp_path):
    hide("pymysql", "psycopg2")
    assert main(["publish", "graviton2", "--store-url", "mysql+pymysql://arm:secret@localhost/cpus"]) == 2
    assert error_line(capsys) == ("arm-cpu-filter publish: error: store URL mysql+pymysql://... needs PyMySQL: "
                                  "pip install 'arm-cpu-filter[sql]'\n")
    assert main(["publish", "graviton2", "--store-url", "postgresql://arm:secret@localhost/cpus"]) == 2
    assert error_line(capsys) == ("arm-cpu-filter publish: error: store URL postgresql://... needs psycopg2-binary: "
                                  "pip install 'arm-cpu-filter[sql]'\n")


@pytest.mark.parametrize("argv", [["demo"], ["soak", "--hosts", "4", "--requests", "4"]])
def test_nova_commands_without_nova(hide, capsys, monkeypatch, argv):
    from arm_cpu_filter.testing.nova import sandbox

    monkeypatch.setattr(sandbox, "_SANDBOX", None)  # one started by an earlier test would hold Nova already
    hide("nova")
    assert main(argv) == 2
    assert error_line(capsys) == f"arm-cpu-filter {argv[0]}: error: this command needs nova: pip install 'arm-cpu-filter[nova]'\n"


def test_bench_skips_what_it_cannot_measure(hide):
    from arm_cpu_filter.testing.nova.bench import bench_all

    hide("sqlalchemy", "nova", dependents=("arm_cpu_filter.store.sql",))
    figures = bench_all(quick=True)
    assert figures["skipped"] == [
        {"probe": "sqlite store load", "reason": "sqlite store load needs SQLAlchemy: pip install arm-cpu-filter",
         "install": "pip install arm-cpu-filter"},
        {"probe": "nova scheduler overhead", "reason": "nova scheduler overhead needs nova: pip install 'arm-cpu-filter[nova]'",
         "install": "pip install 'arm-cpu-filter[nova]'"},
    ]
    assert figures["store_load_hosts"] == 1000  # the file store still measured
    assert not any(key.startswith(("sqlite_", "nova_")) for key in figures)


def test_bench_prints_the_skipped_probes(monkeypatch, capsys):
    import arm_cpu_filter.testing.bench as bench

    canned = {"check_us": 1.5, "skipped": [{"probe": "nova.bench", "install": "pip install 'arm-cpu-filter[nova]'",
                                            "reason": "nova.bench needs nova: pip install 'arm-cpu-filter[nova]'"}]}
    monkeypatch.setattr(bench, "run_all", lambda quick: dict(canned))
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split() == ["check_us", "1.500", "<=", "3", "ok"]
    assert out[3:] == ["skipped: nova.bench needs nova: pip install 'arm-cpu-filter[nova]'"]


def test_bench_run_all_reports_a_probe_that_cannot_import(hide, monkeypatch):
    import arm_cpu_filter.testing.bench as bench

    for probe in ("bench_engine", "bench_migrate", "bench_cli_startup"):
        monkeypatch.setattr(bench, probe, lambda: {})
    monkeypatch.setattr(bench, "OPTIONAL", [("arm_cpu_filter.testing.bench.libvirt", "bench_all")])
    hide("lxml", dependents=("arm_cpu_filter.libvirt.", "arm_cpu_filter.testing.bench.libvirt"))
    assert bench.run_all(quick=True) == {"skipped": [
        {"probe": "bench.libvirt", "reason": "bench.libvirt needs lxml: pip install arm-cpu-filter",
         "install": "pip install arm-cpu-filter"}]}
