"""Security of the store, the agent and the plugin's logs:

- the agent runs as an ordinary user: without access to /dev/kvm it stops with one line naming
  the permission and the kvm group, and everything it writes has the documented modes (store
  0750/0640, provider config 0755/0644) whatever its umask;
- SQL passwords never reach a message, a log line or the config dump; the agent warns when other
  users could read them;
- hostile host names and instance uuids travel as bound parameters (round trip unchanged through
  SQLite and PostgreSQL, tables intact), are refused by the public API, and cannot name a file
  outside the file store;
- log lines built from host names, extra specs and store contents are one escaped physical line;
- devstack and the systemd unit run the agent unprivileged, in the kvm group.
"""

from __future__ import annotations

import configparser
import io
import json
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from faultkit import ALL, PYTHON, backend_url, filtered, plugin_options, report

from arm_cpu_filter.agent import Boot, withdraw_if_rebooted
from arm_cpu_filter.errors import ArmCpuFilterError, InputError
from arm_cpu_filter.logsafe import one_line
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.scheduler import state
from arm_cpu_filter.store import HostRecord, StoreError, open_store

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = [
    "x'; DROP TABLE arm_cpu_filter_hosts; --",
    'x" OR "1"="1',
    "Robert'); DELETE FROM arm_cpu_filter_snapshots;--",
    "../../etc/passwd",
    "a/b",
    "line\nbreak",
    "esc\x1b[2Jape",
    "nul\0byte",
    "ünïcödé-主机",
    "%_wild%",
    "back\\slash",
    " padded ",
    "",
]


# -- running as an ordinary user ---------------------------------------------------------

def _as_nobody(groups: str | None) -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("switching to an unprivileged user needs root (CI runs these tests as root)")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup"] + (["--groups=" + groups] if groups else ["--clear-groups"])
    if subprocess.run(prefix + [PYTHON, "-c", "import arm_cpu_filter.cli"], capture_output=True).returncode:
        pytest.skip("the unprivileged user cannot read this checkout or its Python environment")
    return prefix


@pytest.fixture
def nobody_dir():
    """A directory the unprivileged user may write to (pytest's own temp root is 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="arm-cpu-filter-nobody-"))
    os.chown(d, pwd.getpwnam("nobody").pw_uid, -1)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("groups", ["kvm", None], ids=["in kvm group", "not in kvm group"])
def test_agent_without_kvm_access_names_the_permission_and_the_group(groups, nobody_dir):
    if not os.path.exists("/dev/kvm"):
        pytest.skip("this machine has no /dev/kvm")
    prefix = _as_nobody(groups)
    probe = subprocess.run(prefix + ["test", "-r", "/dev/kvm", "-a", "-w", "/dev/kvm"])
    if probe.returncode == 0:
        pytest.skip("/dev/kvm is open to the unprivileged user here: nothing to refuse")
    out = subprocess.run(prefix + [PYTHON, "-m", "arm_cpu_filter", "agent", "--once", "--host", "c1", "--no-libvirt",
                                   "--no-provider-config", "--store-url", f"file://{nobody_dir}/store"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    err = out.stderr
    assert "permission denied: the agent runs as nobody" in err and "cannot open /dev/kvm read-write" in err
    assert "it needs the kvm group, not root" in err
    st = os.stat("/dev/kvm")
    if groups is None:
        assert "add nobody to the kvm group (usermod -aG kvm nobody)" in err
    else:
        assert "groups: kvm, nogroup" in err and "usermod" not in err
    if st.st_gid != 0 or stat.S_IMODE(st.st_mode) & 0o060 != 0o060:
        assert "give /dev/kvm to group kvm with mode 0660" in err
    assert not (nobody_dir / "store").exists()  # refused before anything was written
    # after a reboot, the record of the previous kernel is withdrawn all the same, before the read
    store = open_store(f"file://{nobody_dir}/store")
    store.publish(sample_host("graviton3"), host="c1", kernel="5.10.0-old-arm64", boot_id=None)
    subprocess.run(["chown", "-R", "nobody", str(nobody_dir / "store")], check=True)
    again = subprocess.run(out.args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "(the CPU data of c1 stays withdrawn: kernel changed from 5.10.0-old-arm64 to " in again.stderr
    assert "withdrawn by its agent: kernel changed from 5.10.0-old-arm64" in store.host("c1").problem


def _modes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): f"{stat.S_IMODE(p.stat().st_mode):04o} {pwd.getpwuid(p.stat().st_uid).pw_name}"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_agent_writes_with_the_documented_modes_whatever_the_umask(umask, nobody_dir):
    """Store 0750/0640 (files and SQLite alike), provider config 0755/0644, as an ordinary user."""
    prefix = _as_nobody("kvm")
    store, provider = nobody_dir / "var" / "store", nobody_dir / "etc" / "provider" / "arm-cpu-filter.yaml"
    sqlite = f"sqlite:///{nobody_dir}/var/db/store.sqlite"
    for argv in (["agent", "--once", "--from-file", "graviton3", "--host", "c1", "--no-libvirt",
                  "--provider-config", str(provider), "--store-url", f"file://{store}"],
                 ["publish", "graviton4", "--host", "c2", "--store-url", f"file://{store}"],
                 ["publish", "graviton4", "--host", "c2", "--store-url", sqlite]):
        out = subprocess.run(prefix + [PYTHON, "-m", "arm_cpu_filter", *argv],
                             capture_output=True, text=True, timeout=120, umask=umask)
        assert out.returncode == 0, out.stderr
    modes = _modes(nobody_dir)
    for path, mode in modes.items():
        if path.startswith("etc"):
            expected = "0644 nobody" if path.endswith(".yaml") else "0755 nobody"
        else:
            expected = "0750 nobody" if (nobody_dir / path).is_dir() else "0640 nobody"
        assert mode == expected, (path, modes)
    assert len([p for p in modes if p.startswith("var/store/hosts/")]) == 2
    assert modes["var/db/store.sqlite"] == "0640 nobody"
    assert open_store(f"file://{store}").host("c1").fingerprint == sample_host("graviton3").fingerprint


# -- passwords ---------------------------------------------------------------------------

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:1/db?connect_timeout=2",
    f"postgresql+psycopg2://u:{SECRET.replace('-', '%2D')}@127.0.0.1:1/db?connect_timeout=2",
    f"postgresql+psycopg2://u@127.0.0.1:1/db?password={SECRET}&connect_timeout=2",
    f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:notaport/db",
    f"postgresql+psycopg2://u:{SECRET}@[::1/db",
    f"nosuchdialect://u:{SECRET}@host/db",
    f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:1/db?sslmode=bogus",
])
def test_sql_passwords_never_appear_in_errors(url):
    try:
        store = open_store(url)
        assert SECRET not in store.url and SECRET.replace("-", "%2D") not in store.url
        with pytest.raises(StoreError) as err:
            store.hosts()
    except InputError as exc:
        message = str(exc)
    else:
        message = str(err.value)
    assert SECRET not in message and SECRET.replace("-", "%2D") not in message, message
    assert len(message.splitlines()) == 1


def test_sql_password_stays_out_of_the_scheduler_logs_and_config_dump(sandbox, caplog):
    from oslo_config import cfg

    url = f"postgresql+psycopg2://nova:{SECRET}@127.0.0.1:1/cpu?connect_timeout=2"
    caplog.set_level(logging.DEBUG)
    with plugin_options(store_url=url):
        assert filtered(sandbox, sandbox.request_spec({})) == []  # unreachable: every host fails closed
        cfg.CONF.log_opt_values(logging.getLogger("config-dump"), logging.INFO)
    assert "store postgresql+psycopg2://nova:***@127.0.0.1:1/cpu" in caplog.text
    assert SECRET not in caplog.text


def test_agent_warns_about_readable_passwords(tmp_path, postgres_url):
    url = postgres_url.replace("postgresql+psycopg2://postgres@", f"postgresql+psycopg2://postgres:{SECRET}@")
    conf = tmp_path / "agent.conf"
    conf.write_text(f"[arm_cpu_filter]\nstore_url = {url}\n")
    base = [PYTHON, "-m", "arm_cpu_filter", "agent", "--once", "--from-file", "graviton3", "--host", "c1",
            "--no-libvirt", "--no-provider-config", "--format", "json"]
    notes = {}
    for case, mode, extra in (("0644", 0o644, ["--config-file", str(conf)]), ("0640", 0o640, ["--config-file", str(conf)]),
                              ("command line", 0o640, ["--store-url", url])):
        conf.chmod(mode)
        out = subprocess.run(base + extra, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert SECRET not in out.stdout + out.stderr
        notes[case] = [n for n in json.loads(out.stdout)["notes"] if n.startswith("warning:")]
    assert notes["0644"] == [f"warning: {conf} is world-readable (mode 0644) and the store URL carries a password: "
                             f"chmod o-r {conf}"]
    assert notes["0640"] == []
    assert notes["command line"] and "process list" in notes["command line"][0]


# -- hostile names -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_hostile_strings_travel_as_bound_parameters(backend, tmp_path, request, capsys):
    store = open_store(backend_url(backend, tmp_path, request))
    g3 = sample_host("graviton3")
    store.publish(g3, host="honest")
    tried = 0
    for name in HOSTILE:
        if backend == "postgresql" and "\0" in name:
            continue  # PostgreSQL text cannot hold NUL at all (the public API refuses it below)
        rec = HostRecord(name, g3.fingerprint, 1234.5, kernel=name, boot_id=None, problem=f"problem of {name}")
        store._put_host(rec)  # below the name checks: only bound parameters stand between it and the SQL
        assert store._get_host(name) == rec
        tried += 1
    assert set(store._get_hosts()) == {"honest", *(n for n in HOSTILE if backend != "postgresql" or "\0" not in n)}
    for name in HOSTILE:
        if name in store._get_hosts():
            assert store._delete_host(name) is True
    assert set(store.hosts()) == {"honest"}  # every table still there, nothing else touched
    assert store.host_snapshot("honest").fingerprint == g3.fingerprint
    report(capsys, f"security/sql {backend}", hostile_strings_round_tripped=tried)


@pytest.mark.parametrize("backend", ["file", "sqlite", "postgresql", "mysql"])
def test_public_api_refuses_hostile_names(backend, tmp_path, request, capsys):
    url = backend_url(backend, tmp_path, request)
    store = open_store(url)
    g3 = sample_host("graviton3")
    refused = 0
    for name in HOSTILE:
        with pytest.raises(InputError, match=r"^host name .*: expected letters, digits"):
            store.publish(g3, host=name)
        with pytest.raises(InputError):
            store.host(name)
        with pytest.raises(InputError, match="not a UUID"):
            store.instance(name)
        with pytest.raises(InputError, match="not a UUID"):
            store.record_instance(name, g3.as_definition(), "honest")
        refused += 4
    assert store.hosts() == {}
    if backend == "file":  # nothing written anywhere, not even outside the store
        assert sorted(p.name for p in tmp_path.rglob("*")) == []
        for name in ("../escape", "a/b", "", ".hidden", "nul\0"):  # the last line of defence, below the checks
            with pytest.raises(StoreError, match="cannot name a file"):
                store._put_host(HostRecord(name, g3.fingerprint, 1.0))
            refused += 1
        assert not (tmp_path / "escape.json").exists() and not list(tmp_path.rglob("*.json"))
    report(capsys, f"security/public API {backend}", hostile_inputs_refused=refused)


# -- log lines ---------------------------------------------------------------------------

def _physical_lines(records: list[logging.LogRecord]) -> int:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for r in records:
        handler.emit(r)
    return len(stream.getvalue().splitlines())


def test_log_lines_are_one_escaped_line(sandbox, fleet_store, fleet_snapshots, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    # hostile extra specs, through Nova's handlers
    for value in ("graviton2-v1\nERROR fake: all clear", "x\x1b[2J\x1b[H", "y\u2028z\u202e", "nul\0"):
        assert filtered(sandbox, sandbox.request_spec({"arm_cpu:model": value})) == []
    # a hostile problem text planted in a host record, and a hostile host name from Nova
    fleet_store._put_host(HostRecord("g4-a", "", 0.0, problem="damaged\nWARNING fake: g4-a fixed\x1b[0m"))
    state.reset()
    assert filtered(sandbox, sandbox.request_spec({})) == sorted(set(ALL) - {"g4-a"})
    request = state.request_for(sandbox.request_spec({}))
    assert state.admit("evil\nhost\x1b[31m", request) is False
    # the agent: a kernel string from the store in its withdrawal reason
    fleet_store.publish(fleet_snapshots["g3-a"], host="g3-a", kernel="6.1\nINFO fake: published", boot_id=None)
    why = withdraw_if_rebooted(fleet_store, "g3-a", Boot("6.12.0", None))
    logging.getLogger("arm_cpu_filter.agent").warning("withdrew: %s", why)
    ours = [r for r in caplog.records if r.name.startswith("arm_cpu_filter")]
    messages = [r.getMessage() for r in ours]
    assert len(ours) == 7  # 4 requests refused, g4-a, the hostile host, the agent
    assert all(m.isprintable() for m in messages), [m for m in messages if not m.isprintable()]
    assert _physical_lines(ours) == len(ours)
    joined = "\n".join(messages)
    assert "graviton2-v1\\nERROR fake: all clear" in joined and "x\\x1b[2J\\x1b[H" in joined
    assert "damaged\\nWARNING fake: g4-a fixed\\x1b[0m" in joined and "host evil\\nhost\\x1b[31m fails closed" in joined
    assert "6.1\\nINFO fake: published" in joined
    report(capsys, "security/logs", hostile_log_inputs=7, lines=len(ours), physical_lines=_physical_lines(ours))


def test_one_line_escapes_only_what_is_not_printable():
    assert one_line("g3-a ünïcödé 主机 'quoted' \\ back") == "g3-a ünïcödé 主机 'quoted' \\ back"
    assert one_line("a\nb\rc\td\0e\x1bf\x7fg\x85h\u2028i\u202ej") == "a\\nb\\rc\\td\\x00e\\x1bf\\x7fg\\x85h\\u2028i\\u202ej"


# -- how the agent is run ----------------------------------------------------------------

def test_devstack_runs_the_agent_in_the_kvm_group_not_as_root():
    plugin = (ROOT / "devstack" / "plugin.sh").read_text()
    start = plugin[plugin.index("function start_arm_cpu_filter_agent"):]
    start = start[:start.index("\n}\n")]
    assert 'run_process arm-cpu-filter-agent "' in start and start.rstrip().endswith('" kvm')  # group kvm, user STACK_USER
    assert "sudo" not in start
    assert 'sudo usermod -a -G kvm "$STACK_USER"' in plugin
    first = plugin[plugin.index("function first_round_arm_cpu_filter_agent"):]
    first = first[:first.index("\n}\n")]
    assert "sg kvm" in first and "sudo" not in first


def test_systemd_unit_runs_the_agent_unprivileged(tmp_path):
    unit = ROOT / "etc" / "systemd" / "arm-cpu-filter-agent.service"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(unit)
    service = parser["Service"]
    assert service["User"] not in ("root", "0") and "kvm" in service["SupplementaryGroups"].split()
    assert service["NoNewPrivileges"] == "yes" and service["CapabilityBoundingSet"] == ""
    assert service["DevicePolicy"] == "closed" and service["DeviceAllow"] == "/dev/kvm rw"
    assert service["UMask"] == "0027" and service["ProtectSystem"] == "strict"
    assert "arm-cpu-filter agent --config-file /etc/arm-cpu-filter/agent.conf" in service["ExecStart"]
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed: the unit's keys were checked, not its syntax")
    exe = Path(PYTHON).with_name("arm-cpu-filter")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/usr/bin/arm-cpu-filter", str(exe)))
    out = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in out.stderr.splitlines() if str(copy) in line]  # unknown keys, bad values
    assert problems == [], out.stderr


def test_withdrawing_an_unknown_or_hostile_host(tmp_path):
    """The agent of a host that never published has nothing to withdraw; a hostile name is refused."""
    store = open_store(f"file://{tmp_path}/s")
    assert store.withdraw("never-published", "test") is None
    assert withdraw_if_rebooted(store, "never-published", Boot("6.12", None)) is None
    with pytest.raises(ArmCpuFilterError, match="host name"):
        store.withdraw("../x", "test")
    assert not (tmp_path / "s").exists() and not (tmp_path / "x.json").exists()
