"""Fixtures of the Nova plugin tests: one real Nova scheduler sandbox per session (Nova's
configuration is process-global), per-test stores, and private PostgreSQL and MariaDB servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("nova", reason="Nova is not installed (tools/bootstrap.sh installs .[test])")

from oslo_config import cfg  # noqa: E402

from arm_cpu_filter.samples import sample_host  # noqa: E402
from arm_cpu_filter.scheduler import state  # noqa: E402
from arm_cpu_filter.store import open_store  # noqa: E402
from arm_cpu_filter.testing.nova import sandbox as sandbox_mod  # noqa: E402
from arm_cpu_filter.testing.nova import scenario  # noqa: E402
from arm_cpu_filter.testing.vmfacts import with_kernel_facts  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MARIADB_BIN = Path("/usr/sbin/mariadbd")


@pytest.fixture(scope="session")
def plan() -> scenario.Scenario:
    return scenario.load()


@pytest.fixture(scope="session")
def fleet_snapshots(plan):
    """The scenario's hosts as format 2: synthetic kvm facts of the lab's shape (moves need them)."""
    return {host: with_kernel_facts(sample_host(sample)) for host, sample in plan.hosts.items()}


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory, fleet_snapshots):
    sb = sandbox_mod.get(tmp_path_factory.mktemp("nova"))
    sb.add_computes(list(fleet_snapshots))
    return sb


@pytest.fixture
def store_url(tmp_path, sandbox):
    """A fresh file store for one test, installed as [arm_cpu_filter] store_url."""
    url = f"file://{tmp_path}/store"
    cfg.CONF.set_override("store_url", url, "arm_cpu_filter")
    state.reset()
    yield url
    cfg.CONF.clear_override("store_url", "arm_cpu_filter")
    state.reset()


@pytest.fixture
def fleet_store(store_url, fleet_snapshots):
    """The scenario fleet published fresh into the test's store."""
    store = open_store(store_url)
    for host, snap in fleet_snapshots.items():
        store.publish(snap, host=host)
    return store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """A throwaway PostgreSQL cluster (Debian's server binaries) on a unix socket, which a test
    can stop and start again (same data, same URL)."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (tools/bootstrap.sh installs postgresql)")
        # not under pytest's 0700 temp root: the server may run as another user
        self.base = Path(tempfile.mkdtemp(prefix="arm-cpu-filter-pg-"))
        self.data, self.sock = self.base / "data", self.base / "sock"
        self.sock.mkdir()
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres system user
            if not shutil.which("runuser"):
                self.close()
                pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sock, "postgres")
        self.port = _free_port()
        r = self.run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if r.returncode:
            self.close()
            pytest.skip(f"initdb failed: {r.stderr.strip().splitlines()[-1:]}")

    def run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.prefix + list(cmd), capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        r = self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.base / "log"), "start",
                     "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=''")
        if r.returncode:
            self.close()
            pytest.skip(f"PostgreSQL did not start: {r.stderr.strip()}")
        for _ in range(50):
            if self.run(str(PG_BIN / "pg_isready"), "-h", str(self.sock), "-p", str(self.port)).returncode == 0:
                break
            time.sleep(0.1)

    def stop(self) -> None:
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def createdb(self, name: str) -> str:
        r = self.run(str(PG_BIN / "createdb"), "-h", str(self.sock), "-p", str(self.port), "-U", "postgres", name)
        assert r.returncode == 0, r.stderr
        return self.url(name)

    def url(self, db: str, password: str | None = None) -> str:
        """SQLAlchemy URL of ``db`` (``password`` is accepted and ignored: trust authentication)."""
        user = f"postgres:{password}" if password else "postgres"
        return f"postgresql+psycopg2://{user}@/{db}?host={self.sock}&port={self.port}"

    def close(self) -> None:
        if self.data.exists():
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """A database on a throwaway PostgreSQL server shared by the session's SQL store tests."""
    server = PgServer()
    try:
        server.start()
        yield server.createdb("armcpu")
    finally:
        server.close()


class MariaDbServer:
    """A throwaway MariaDB server (Debian's mariadb-server) on a unix socket, no networking, which
    a test can stop and start again (same data, same URL)."""

    def __init__(self) -> None:
        install = shutil.which("mariadb-install-db")
        if not (MARIADB_BIN.exists() and install):
            pytest.skip(f"MariaDB server not found ({MARIADB_BIN}; tools/bootstrap.sh installs mariadb-server)")
        # not under pytest's 0700 temp root: the server runs as the mysql user when we are root
        self.base = Path(tempfile.mkdtemp(prefix="arm-cpu-filter-mariadb-"))
        self.data, self.sock = self.base / "data", self.base / "mysqld.sock"
        self.proc: subprocess.Popen | None = None
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # mariadbd refuses root: run it as the mysql system user
            if not shutil.which("runuser"):
                self.close()
                pytest.skip("running as root without runuser: cannot start MariaDB as another user")
            self.prefix = ["runuser", "-u", "mysql", "--"]
            shutil.chown(self.base, "mysql")
        r = subprocess.run(self.prefix + [install, "--no-defaults", f"--datadir={self.data}", "--skip-test-db",
                                          "--auth-root-authentication-method=normal"],
                           capture_output=True, text=True, timeout=300)
        if r.returncode:
            self.close()
            pytest.skip(f"mariadb-install-db failed: {r.stderr.strip().splitlines()[-1:]}")

    def start(self) -> None:
        log = open(self.base / "start.log", "ab")  # noqa: SIM115 - the server's stdout/stderr while it runs
        self.proc = subprocess.Popen(
            self.prefix + [str(MARIADB_BIN), "--no-defaults", f"--datadir={self.data}", f"--socket={self.sock}",
                           "--skip-networking", f"--pid-file={self.base / 'mysqld.pid'}",
                           f"--log-error={self.base / 'error.log'}", "--innodb-buffer-pool-size=32M"],
            stdout=log, stderr=log)
        log.close()
        for _ in range(600):  # readiness: the socket answers (InnoDB's first start takes seconds)
            if self.proc.poll() is not None:
                break
            if self._ping():
                return
            time.sleep(0.1)
        errors = (self.base / "error.log").read_text(errors="replace")[-500:] if (self.base / "error.log").exists() else ""
        self.close()
        pytest.skip(f"MariaDB did not start: {errors}")

    def _ping(self) -> bool:
        import pymysql

        try:
            pymysql.connect(unix_socket=str(self.sock), user="root", connect_timeout=2).close()
            return True
        except pymysql.Error:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: a clean shutdown
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def createdb(self, name: str) -> str:
        import pymysql

        conn = pymysql.connect(unix_socket=str(self.sock), user="root")
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()
        return self.url(name)

    def url(self, db: str) -> str:
        return f"mysql+pymysql://root@localhost/{db}?unix_socket={self.sock}&charset=utf8mb4"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_server():
    """A throwaway MariaDB server shared by the session's SQL store tests (stopped at the end)."""
    server = MariaDbServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def mysql_url(mariadb_server):
    """A database on the session's MariaDB server."""
    return mariadb_server.createdb("armcpu")
