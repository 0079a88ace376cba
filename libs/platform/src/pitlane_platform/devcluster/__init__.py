"""`pitlane up` and `pitlane status`: the whole system on one machine, without Docker.

`pitlane up` starts NATS (JetStream; TLS and one user per service, secure_nats.py) and PostgreSQL from the
embedded wheels under the data directory, unless `NATS_URL` / `DATABASE_URL` name servers to use instead;
creates each installed service's database; runs every service (uvicorn on a loopback port; with
`--api-workers N`, N API processes and one worker process for the relay and consumers) as child processes
with their output prefixed by their name; puts the gateway (Caddy, gateway.py) in front of them on one
HTTPS port; writes `state.json`; and blocks. Ctrl-C (or SIGTERM, or closing the terminal) stops the gateway,
the services, then PostgreSQL, then NATS, so the next `pitlane up` finds its streams and databases again.

Data directory layout:
    gateway/        Caddy's configuration, CA and certificates (gateway/caddy), its log, and root-ca.crt
    nats/           nats-server's JetStream file store (nats/jetstream), its log (nats/nats-server.log) and
                    nats/security: the cluster CA, the server's certificate, each user's nkey seed
    postgres/       PostgreSQL's data directory (its log: postgres/log)
    state.json      what runs where: pids, URLs, start and stop times; also the ports to reuse
    up.lock         held by the running `pitlane up`, so a second one on the same directory is refused
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg
from sqlalchemy.engine import make_url

from pitlane_platform.db import libpq_url, sqlalchemy_url
from pitlane_platform.devcluster.gateway import Gateway, GatewayRoute
from pitlane_platform.devcluster.secure_nats import SecuredNats, secure_nats
from pitlane_platform.embedded import (
    LOOPBACK,
    EmbeddedNats,
    EmbeddedPostgres,
    create_database,
    database_url,
    free_port,
    port_is_free,
    server_version,
)
from pitlane_platform.security.nats_access import OPERATOR, NatsClientAccess
from pitlane_platform.services import ServiceSpec, installed_services

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

    from pitlane_platform.messaging.health import ConsumerHealth
    from pitlane_platform.messaging.relay import OutboxHealth
    from pitlane_platform.scheduling.timers import TimerHealth

STATE_FILE = "state.json"
LOCK_FILE = "up.lock"
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SERVICE_READY_TIMEOUT_S = 60.0
CHILD_STOP_TIMEOUT_S = 10.0
# The gateway's port when none is configured (`--gateway-port`, PITLANE_GATEWAY_PORT): one the URLs in
# bookmarks and customer links keep.
DEFAULT_GATEWAY_PORT = 8443


class ShutdownRequested(Exception):
    """Raised in the main thread by SIGINT, SIGTERM or SIGHUP."""


@dataclass
class Child:
    """A service's HTTP app, or its worker process (relay and consumers)."""

    name: str
    process: subprocess.Popen[bytes]
    http_url: str | None = None
    service: str | None = None  # the service it serves HTTP for (None: a worker process)


@dataclass
class ServerInUse:
    """NATS or PostgreSQL as this `pitlane up` uses it: embedded (pid and port known) or named by env var."""

    url: str
    description: str
    pid: int | None = None
    port: int | None = None
    ca_file: Path | None = None  # NATS: the CA its certificate is verified against
    operator_seed_file: Path | None = None  # NATS: the `pitlane` CLI's user


@dataclass
class DevCluster:
    data_dir: Path
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    gateway: Gateway | None = None
    secured_nats: SecuredNats | None = None
    public_base_url: str | None = None  # handed to every service: the base of the links it sends
    # Handed to every service when the demo is to be played: the file steering their clocks (ADR 27).
    clock_offset_file: Path | None = None
    children: list[Child] = field(default_factory=list)
    _output_lock: threading.Lock = field(default_factory=threading.Lock)

    def start_nats(self, previous_port: int | None, specs: list[ServiceSpec] | None = None) -> ServerInUse:
        if url := os.environ.get("NATS_URL"):
            return ServerInUse(url, "from NATS_URL")
        # Clients and bookmarks keep working across restarts when the port stays the same.
        port = previous_port if previous_port is not None and port_is_free(previous_port) else free_port()
        specs = installed_services() if specs is None else specs
        self.secured_nats = secure_nats(self.data_dir / "nats" / "security", specs)
        # Kept before starting, so a Ctrl-C during start-up still stops what did start.
        self.nats = EmbeddedNats(
            self.data_dir / "nats", port, tls=self.secured_nats.tls, users=self.secured_nats.users
        )
        self.nats.start()
        description = (
            f"embedded nats-server {self.nats.version}, pid {self.nats.pid}, TLS, one user per service"
        )
        return ServerInUse(
            self.nats.url,
            description,
            self.nats.pid,
            self.nats.port,
            ca_file=self.secured_nats.ca_file,
            operator_seed_file=self.secured_nats.seed_file(OPERATOR),
        )

    def start_postgres(self) -> ServerInUse:
        if url := os.environ.get("DATABASE_URL"):
            return ServerInUse(url, f"PostgreSQL {server_version(url)} from DATABASE_URL")
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
        self.postgres.start()
        description = f"embedded PostgreSQL {self.postgres.version}, pid {self.postgres.pid}"
        return ServerInUse(self.postgres.admin_url, description, self.postgres.pid)

    def start_service(
        self,
        spec: ServiceSpec,
        nats_url: str,
        postgres_admin_url: str,
        *,
        api_workers: int = 1,
        previous_port: int | None = None,
    ) -> None:
        """One process serving HTTP and running the background work; or, with `api_workers` > 1, that many
        API processes (uvicorn's workers on one port) beside one worker process for the relay and consumers.
        It listens on loopback, on `previous_port` while that is free (the gateway's routes stay valid)."""
        create_database(postgres_admin_url, spec.database)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",  # lines reach the prefixed output as they are written
            f"{spec.env_prefix}DATABASE_URL": sqlalchemy_url(database_url(postgres_admin_url, spec.database)),
            f"{spec.env_prefix}NATS_URL": nats_url,
            f"{spec.env_prefix}ENV": "dev",
            f"{spec.env_prefix}SERVICE_NAME": spec.name,
            **(self.secured_nats.service_env(spec) if self.secured_nats is not None else {}),
            **({f"{spec.env_prefix}PUBLIC_BASE_URL": self.public_base_url} if self.public_base_url else {}),
            **(
                {f"{spec.env_prefix}CLOCK_OFFSET_FILE": str(self.clock_offset_file)}
                if self.clock_offset_file
                else {}
            ),
        }
        port = previous_port if previous_port is not None and port_is_free(previous_port) else free_port()
        uvicorn = uvicorn_command(spec, port)
        if api_workers == 1:
            self._spawn(spec.name, uvicorn, env, f"http://{LOOPBACK}:{port}", service=spec.name)
            return
        api_env = {**env, f"{spec.env_prefix}RUN_BACKGROUND": "false"}
        self._spawn(
            spec.name,
            [*uvicorn, "--workers", str(api_workers)],
            api_env,
            f"http://{LOOPBACK}:{port}",
            service=spec.name,
        )
        worker = [sys.executable, "-m", "pitlane_platform.worker", spec.asgi_factory]
        self._spawn(f"{spec.name} worker", worker, {**env, f"{spec.env_prefix}RUN_BACKGROUND": "true"})

    def wait_until_services_listen(self) -> None:
        deadline = time.monotonic() + SERVICE_READY_TIMEOUT_S
        for child in self.children:
            if child.http_url is None:
                continue
            port = urlsplit(child.http_url).port
            assert port is not None
            while not _accepts_connections(LOOPBACK, port):
                if child.process.poll() is not None:
                    raise RuntimeError(f"{child.name} exited with {child.process.returncode} while starting")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{child.name} does not listen on {child.http_url}")
                time.sleep(0.1)

    def start_gateway(self, port: int, specs: list[ServiceSpec]) -> Gateway:
        """Caddy in front of the services that listen (call after wait_until_services_listen)."""
        ports = {child.service: _port_of(child.http_url) for child in self.children if child.http_url}
        routes: list[GatewayRoute] = []
        for spec in specs:
            if spec.name not in ports:
                continue
            routes.append(GatewayRoute.api(spec.name, ports[spec.name]))
            routes += [
                GatewayRoute.reserved(path, ports[spec.name], service=spec.name)
                for path in spec.gateway_paths
            ]
        self.gateway = Gateway(self.data_dir / "gateway", port)
        self.gateway.start(routes)
        return self.gateway

    def first_exited_child(self) -> Child | None:
        return next((child for child in self.children if child.process.poll() is not None), None)

    def stop(self) -> None:
        """The gateway, the services (they flush outboxes and ack messages), PostgreSQL, then NATS."""
        if self.gateway is not None:
            self.gateway.stop()
        for child in self.children:
            if child.process.poll() is None:
                child.process.terminate()
        for child in self.children:
            try:
                child.process.wait(CHILD_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop within {CHILD_STOP_TIMEOUT_S:.0f}s: killed")
                child.process.kill()
                child.process.wait()
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()

    def say(self, line: str) -> None:
        with self._output_lock:
            print(line, flush=True)

    def _spawn(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        http_url: str | None = None,
        *,
        service: str | None = None,
    ) -> None:
        # Its own session: a Ctrl-C in the terminal reaches only `pitlane up`, which stops children in order.
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        assert process.stdout is not None
        threading.Thread(target=self._relay_output, args=(name, process.stdout), daemon=True).start()
        self.children.append(Child(name, process, http_url, service))

    def _relay_output(self, name: str, stream: IO[bytes]) -> None:
        for line in stream:
            self.say(f"[{name}] {line.decode(errors='replace').rstrip()}")


def run_up(
    data_dir: Path,
    *,
    api_workers: int = 1,
    gateway_port: int = DEFAULT_GATEWAY_PORT,
    public_base_url: str | None = None,
    demo_size: str | None = None,
) -> None:
    """`demo_size` (a name of demo.SIZES): play the demo chain once everything runs, if the data directory is
    empty (it has no state.json yet)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _single_instance(data_dir), _shutdown_signals_raise():
        if not port_is_free(gateway_port):
            raise SystemExit(
                f"gateway port {gateway_port} on {LOOPBACK} is taken: stop what listens there, or choose "
                "another with --gateway-port (PITLANE_GATEWAY_PORT)"
            )
        previous = read_state(data_dir) or {}
        specs = installed_services()
        cluster = DevCluster(data_dir)
        cluster.public_base_url = (public_base_url or f"https://localhost:{gateway_port}").rstrip("/")
        play_demo = demo_size is not None and not previous
        if play_demo:
            from pitlane_platform.devcluster.demo import CLOCK_OFFSET_FILE

            cluster.clock_offset_file = data_dir / CLOCK_OFFSET_FILE
        exit_code = 0
        try:
            nats = cluster.start_nats(previous.get("nats", {}).get("port"), specs)
            postgres = cluster.start_postgres()
            for spec in specs:
                cluster.start_service(
                    spec,
                    nats.url,
                    postgres.url,
                    api_workers=api_workers,
                    previous_port=previous.get("services", {}).get(spec.name, {}).get("port"),
                )
            cluster.wait_until_services_listen()
            cluster.start_gateway(gateway_port, specs)
            running = _running_state(cluster, nats, postgres)
            _write_state(data_dir, running)
            cluster.say(_url_table(data_dir, cluster, nats, postgres))
            if play_demo:
                assert demo_size is not None
                _start_demo(running, demo_size, cluster.say)
            elif demo_size is not None:
                cluster.say(
                    f"demo: not played, {data_dir} has data already (delete it to start from nothing)"
                )
            while (exited := cluster.first_exited_child()) is None:
                time.sleep(0.5)
            cluster.say(f"{exited.name} exited with {exited.process.returncode}: stopping everything")
            exit_code = 1
        except ShutdownRequested:
            cluster.say("stopping: the gateway, the services, then PostgreSQL, then NATS…")
        finally:
            # A second Ctrl-C must not cut the orderly shutdown short: that is how data gets lost.
            for signum in SHUTDOWN_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
            cluster.stop()
            state = read_state(data_dir)
            if state is not None and state.get("pid") == os.getpid():
                _write_state(data_dir, {**state, "stopped_at": _now()})
            cluster.say("stopped.")
    if exit_code:
        raise SystemExit(exit_code)


def _start_demo(state: dict[str, Any], size: str, say: Callable[[str], None]) -> None:
    """The demo on a thread of its own: `pitlane up` keeps watching its children meanwhile. A demo that fails
    says why and leaves the system running."""
    from pitlane_platform.devcluster.demo import SIZES, play_demo

    def play() -> None:
        try:
            play_demo(state, SIZES[size], say)
        except Exception as failure:
            say(f"demo: stopped: {type(failure).__name__}: {failure}")

    threading.Thread(target=play, name="demo", daemon=True).start()


def print_status(data_dir: Path) -> int:
    """Print what runs where; 0 when `pitlane up` runs and its gateway, NATS and PostgreSQL answer, else 1."""
    data_dir = data_dir.resolve()
    state = read_state(data_dir)
    if state is None:
        print(f"pitlane is not running in {data_dir}: it never started there")
        return 1
    if "stopped_at" in state or not _process_is_alive(state["pid"]):
        stopped = state.get("stopped_at", "without stopping cleanly")
        print(f"pitlane is not running in {data_dir} (started {state['started_at']}, stopped {stopped})")
        return 1
    nats_ok = _nats_answers(state["nats"]["url"], nats_access(state))
    postgres_ok = _postgres_answers(state["postgres"]["url"])
    gateway = state.get("gateway") or {}
    gateway_ok = bool(gateway) and _gateway_answers(gateway)
    rows = [
        ("pitlane up", f"pid {state['pid']}", f"running since {state['started_at']}"),
        ("gateway", gateway.get("url", ""), "answers" if gateway_ok else "DOES NOT ANSWER"),
        ("NATS", state["nats"]["url"], "answers" if nats_ok else "DOES NOT ANSWER"),
        (
            "PostgreSQL",
            _printable_postgres_url(state["postgres"]["url"]),
            "answers" if postgres_ok else "DOES NOT ANSWER",
        ),
    ]
    for name, child in state["services"].items():
        alive = _process_is_alive(child["pid"])
        rows.append(
            (name, child.get("http_url") or "", f"pid {child['pid']} {'running' if alive else 'EXITED'}")
        )
    print(f"pitlane in {data_dir}:")
    print(_table(rows))
    if nats_ok and postgres_ok:
        print(asyncio.run(_messaging_report(state)))
    return 0 if nats_ok and postgres_ok and (gateway_ok or not gateway) else 1


def service_database_urls(state: dict[str, Any]) -> dict[str, str]:
    """Each installed service's database on the PostgreSQL of a `pitlane up` state."""
    return {spec.name: database_url(state["postgres"]["url"], spec.database) for spec in installed_services()}


@dataclass(frozen=True)
class ServiceBacklog:
    service: str
    outbox: OutboxHealth
    consumers: list[ConsumerHealth]
    timers: TimerHealth | None  # None: the service keeps no timers

    @property
    def settled(self) -> bool:
        """Everything it wrote is published, everything it consumes applied, every due timer fired."""
        return (
            self.outbox.pending == 0
            and all(c.pending == 0 and c.held_messages == 0 for c in self.consumers)
            and (self.timers is None or self.timers.late == 0)
        )


@asynccontextmanager
async def operator_nats(state: dict[str, Any]) -> AsyncIterator[NatsClient]:
    """A NATS connection as the operator of a `pitlane up` state. Hold it across repeated looks: nats-py
    upgrades to TLS without telling asyncio's stream protocol, so closing each TLS connection makes asyncio
    warn "returning true from eof_received() has no effect when using ssl" (nats-io/nats.py#574)."""
    import nats

    client = await nats.connect(
        state["nats"]["url"],
        connect_timeout=5,
        max_reconnect_attempts=0,
        **nats_access(state).connect_options(),
    )
    try:
        yield client
    finally:
        await client.close()


async def messaging_backlogs(state: dict[str, Any], client: NatsClient) -> list[ServiceBacklog]:
    """Per service of a `pitlane up` state: its relay's backlog, its consumers' and its due timers; `client`
    from operator_nats."""
    from pitlane_platform.db import DriverPool
    from pitlane_platform.messaging.health import consumer_health
    from pitlane_platform.messaging.relay import outbox_health
    from pitlane_platform.scheduling.timers import timer_health

    backlogs = []
    for service, url in service_database_urls(state).items():
        async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as connection:
            outbox = await outbox_health(connection)
            consumers = await consumer_health(client.jetstream(), service, connection)
            has_timers = await (await connection.execute("SELECT to_regclass('timers')")).fetchone()
        timers = None
        if has_timers is not None and has_timers[0] is not None:
            pool = DriverPool(sqlalchemy_url(url), max_size=1)
            await pool.open()
            try:
                async with pool.transaction() as unit:
                    timers = await timer_health(unit, now=datetime.now(UTC), allowed_lateness=timedelta(0))
            finally:
                await pool.close()
        backlogs.append(ServiceBacklog(service, outbox, consumers, timers))
    return backlogs


async def _messaging_report(state: dict[str, Any]) -> str:
    """Per service: the relay's backlog and parked rows; per consumer: pending, held back, dead-lettered."""
    lines = ["messaging:"]
    async with operator_nats(state) as client:
        backlogs = await messaging_backlogs(state, client)
    for backlog in backlogs:
        outbox = backlog.outbox
        lines.append(
            f"  {backlog.service}: relay lag {outbox.oldest_pending_age_s:.1f}s, {outbox.pending} unpublished, "
            f"{outbox.parked} parked" + ("  <- ALERT" if outbox.parked else "")
        )
        for row in outbox.parked_rows:
            lines.append(f"    parked #{row['id']} {row['subject']} ({row['bytes']} bytes): {row['reason']}")
        for consumer in backlog.consumers:
            lines.append(
                f"    consumer {consumer.consumer}: {consumer.pending} pending, "
                f"{consumer.held_aggregates} aggregate(s) retrying, "
                f"{consumer.dead_lettered_aggregates} dead-lettered with {consumer.held_messages} "
                f"message(s) held back, {consumer.dead_letters} dead letter(s)"
            )
    return "\n".join(lines)


def uvicorn_command(spec: ServiceSpec, port: int) -> list[str]:
    """The command serving `spec`'s API on loopback `port`. Without an access log: a path can carry a link's
    token (configure_logging keeps uvicorn's access logger off as well)."""
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", spec.asgi_factory),
        *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
        *("--host", LOOPBACK, "--port", str(port)),
        # Behind the gateway's /api/<service>/ (which it strips): /docs finds its document and assets.
        *("--root-path", f"/api/{spec.name}"),
    ]


def nats_access(state: dict[str, Any]) -> NatsClientAccess:
    """How the `pitlane` CLI reaches the NATS of a `pitlane up` state: verified against the cluster CA, as
    the operator user (nothing when NATS came from NATS_URL)."""
    nats_state = state["nats"]
    ca, seed = nats_state.get("ca_file"), nats_state.get("operator_seed_file")
    return NatsClientAccess(
        ca_file=Path(ca) if ca else None,
        nkey_seed_file=Path(seed) if seed else None,
        inbox_prefix=f"_INBOX_{OPERATOR}" if seed else None,
    )


def read_state(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None


def _running_state(cluster: DevCluster, nats: ServerInUse, postgres: ServerInUse) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "started_at": _now(),
        "data_dir": str(cluster.data_dir),
        "gateway": (
            {
                "url": cluster.gateway.url,
                "port": cluster.gateway.port,
                "pid": cluster.gateway.pid,
                "root_ca_file": str(cluster.gateway.root_ca_file),
                "public_base_url": cluster.public_base_url,
            }
            if cluster.gateway is not None
            else None
        ),
        "nats": {
            "url": nats.url,
            "pid": nats.pid,
            "port": nats.port,
            "source": nats.description,
            "ca_file": str(nats.ca_file) if nats.ca_file else None,
            "operator_seed_file": str(nats.operator_seed_file) if nats.operator_seed_file else None,
        },
        "postgres": {"url": postgres.url, "pid": postgres.pid, "source": postgres.description},
        "clock_offset_file": str(cluster.clock_offset_file) if cluster.clock_offset_file else None,
        "services": {
            child.name: {
                "pid": child.process.pid,
                "http_url": child.http_url,
                "port": _port_of(child.http_url) if child.http_url else None,
                "gateway_path": f"/api/{child.service}/" if child.service else None,
            }
            for child in cluster.children
        },
    }


def _write_state(data_dir: Path, state: dict[str, Any]) -> None:
    # Replaced atomically: `pitlane status` never reads half a file. 0600: a DATABASE_URL may hold a password.
    partial = data_dir / f".{STATE_FILE}.partial"
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.chmod(0o600)
    partial.replace(data_dir / STATE_FILE)


def _url_table(data_dir: Path, cluster: DevCluster, nats: ServerInUse, postgres: ServerInUse) -> str:
    """One https URL (the gateway's) and where everything behind it runs."""
    rows = [
        ("NATS", nats.url, nats.description),
        ("PostgreSQL", _printable_postgres_url(postgres.url), postgres.description),
    ]
    specs = {spec.name: spec for spec in installed_services()}
    for child in cluster.children:
        if child.service is None:
            rows.append((child.name, "", f"pid {child.process.pid}"))
            continue
        spec = specs.get(child.service)
        paths = " ".join([f"/api/{child.service}/", *(spec.gateway_paths if spec else ())])
        loopback = (child.http_url or "").removeprefix("http://")
        rows.append((child.name, paths, f"{loopback}, pid {child.process.pid}"))
    if not cluster.children:
        rows.append(("services", "", "none installed (entry point group pitlane.services)"))
    if cluster.gateway is None:
        return f"pitlane is up, data in {data_dir}:\n{_table(rows)}\nCtrl-C stops everything."
    gateway, ca = cluster.gateway.url, cluster.gateway.root_ca_file
    return (
        f"pitlane is up at {gateway} (its CA: {ca}), data in {data_dir}:\n{_table(rows)}\n"
        f"Try: curl --cacert {ca} {gateway}/api/<service>/health\nCtrl-C stops everything."
    )


def _table(rows: list[tuple[str, str, str]]) -> str:
    name_width = max(len(row[0]) for row in rows)
    url_width = max(len(row[1]) for row in rows)
    return "\n".join(f"  {name:<{name_width}}  {url:<{url_width}}  {note}" for name, url, note in rows)


def _printable_postgres_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.render_as_string(hide_password=True) if parsed.password else url


@contextmanager
def _single_instance(data_dir: Path) -> Iterator[None]:
    """Refuse a second `pitlane up` on this data directory: two NATS servers on one file store corrupt it.
    An OS lock, so it is released however the holder dies."""
    with (data_dir / LOCK_FILE).open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            state = read_state(data_dir) or {}
            holder = f" (pid {state['pid']}, since {state.get('started_at')})" if "pid" in state else ""
            raise SystemExit(
                f"pitlane up already runs on {data_dir}{holder}: stop it with Ctrl-C in its terminal, "
                "or use another --data-dir"
            ) from None
        yield


@contextmanager
def _shutdown_signals_raise() -> Iterator[None]:
    def request_shutdown(signum: int, frame: object) -> None:
        raise ShutdownRequested(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, request_shutdown) for signum in SHUTDOWN_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _process_is_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists; another user owns it
    return True


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _nats_answers(url: str, access: NatsClientAccess) -> bool:
    """The server accepts our user and answers a round trip (over TLS, verified, where it demands it)."""
    import nats

    async def round_trip() -> bool:
        client = await nats.connect(url, connect_timeout=3, allow_reconnect=False, **access.connect_options())
        try:
            await client.flush(timeout=3)
            return True
        finally:
            await client.close()

    try:
        return asyncio.run(round_trip())
    except Exception:
        return False


def _gateway_answers(gateway: dict[str, Any]) -> bool:
    """The gateway completes a TLS handshake that verifies against its exported root."""
    import ssl

    try:
        context = ssl.create_default_context(cafile=gateway["root_ca_file"])
        address = urlsplit(gateway["url"])
        with (
            socket.create_connection((LOOPBACK, address.port or 443), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname=address.hostname),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def _port_of(url: str | None) -> int:
    port = urlsplit(url or "").port
    assert port is not None, url
    return port


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
