"""A byte-forwarding proxy in front of PostgreSQL, so a test can cut the database away and bring it back.

The fault is real, not a mock: `cut()` closes every forwarded connection on both sides at once (the client
sees "server closed the connection unexpectedly", the server's backend ends and rolls back), and while cut
the proxy accepts each new connection and closes it at once, so a connect attempt fails fast rather than
hanging. `restore()` forwards again. The code under test only gets `proxy.url` instead of the real URL:

    async with DatabaseProxy(database_url) as proxy:
        engine = create_engine(proxy.url)
        ...
        await proxy.cut()
        ...  # the database is gone for everything that connected through the proxy
        await proxy.restore()

The proxy listens on a unix socket in a temporary directory of its own, as the embedded PostgreSQL does, and
forwards to the server the URL names: a unix socket (`?host=/socket/dir`, file `.s.PGSQL.<port>`) or TCP
(`host:port`). It runs on the event loop that started it, so it forwards only while that loop runs: drive it
from async tests (pytest-asyncio), and run blocking clients in a thread (`asyncio.to_thread`) or another
process. libpq never uses TLS on a unix socket, so the leg to the proxy is plain text whatever `sslmode`
says; the proxy itself forwards bytes as they come and speaks no protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy.engine import URL, make_url

DEFAULT_PORT = 5432
_CHUNK = 64 * 1024
_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Upstream:
    """Where the proxy forwards to: a unix socket path, or a TCP host and port."""

    unix_path: Path | None = None
    host: str | None = None
    port: int = DEFAULT_PORT

    @classmethod
    def of_url(cls, url: str) -> Upstream:
        """The server a PostgreSQL URL connects to, as libpq would read it (a single host only)."""
        parsed = make_url(url)
        host = _single(parsed.query.get("host"), "host") or parsed.host
        port_text = _single(parsed.query.get("port"), "port")
        port = int(port_text) if port_text else (parsed.port or DEFAULT_PORT)
        if not host:
            raise ValueError("the database URL names no host: give a host or ?host=<socket dir>")
        if host.startswith("/"):
            return cls(unix_path=Path(host) / f".s.PGSQL.{port}", port=port)
        address = _single(parsed.query.get("hostaddr"), "hostaddr") or host
        return cls(host=address, port=port)

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path is not None:
            connecting = asyncio.open_unix_connection(self.unix_path, limit=_CHUNK)
        else:
            connecting = asyncio.open_connection(self.host, self.port, limit=_CHUNK)
        return await asyncio.wait_for(connecting, _CONNECT_TIMEOUT_S)

    def __str__(self) -> str:
        return str(self.unix_path) if self.unix_path is not None else f"{self.host}:{self.port}"


@dataclass(eq=False)
class _Forwarded:
    """One client connection and, once opened, its connection to the server."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        """Close both sides now, dropping whatever is buffered; a TCP server side gets a reset."""
        for writer in (self.client, self.server):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for pump in self.pumps:
            pump.cancel()


class DatabaseProxy:
    """A proxy in front of the PostgreSQL server of `database_url`; `url` is the same database through it.

    An async context manager: entering starts listening, leaving closes every connection and removes the
    socket directory. `cut()` and `restore()` are idempotent; `cuts` counts the cuts so far.
    """

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self.upstream = Upstream.of_url(database_url)
        self._socket_dir: Path | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Forwarded] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self._is_cut = False
        self.cuts = 0

    @property
    def socket_dir(self) -> Path:
        if self._socket_dir is None:
            raise RuntimeError("the proxy is not started")
        return self._socket_dir

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{DEFAULT_PORT}"

    @property
    def url(self) -> str:
        """The database URL given, with the same driver, credentials, database and options, through the
        proxy: `…/<database>?host=<proxy socket dir>&port=5432`. Fit for SQLAlchemy, `db.create_engine`
        and `db.libpq_url`."""
        given = make_url(self._database_url)
        # URL.create, not given.set(host=None): set() keeps a field whose new value is None.
        through_proxy = URL.create(
            given.drivername,
            username=given.username,
            password=given.password,
            database=given.database,
            query={
                **{k: v for k, v in given.query.items() if k not in ("host", "port", "hostaddr")},
                "host": str(self.socket_dir),
                "port": str(DEFAULT_PORT),
            },
        )
        return through_proxy.render_as_string(hide_password=False)

    @property
    def is_cut(self) -> bool:
        return self._is_cut

    @property
    def open_connections(self) -> int:
        """How many client connections the proxy forwards right now."""
        return len(self._connections)

    async def start(self) -> Self:
        if self._server is not None:
            return self
        # Short: a unix socket path is limited to ~100 bytes.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="pitlane-dbproxy-"))
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, path=str(self.socket_path), limit=_CHUNK
            )
        except BaseException:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
            raise
        return self

    async def cut(self) -> None:
        """Close every forwarded connection, both sides, and refuse new ones until `restore()`."""
        if self._is_cut:
            return
        self._is_cut = True
        self.cuts += 1
        await self._abort_all()

    async def restore(self) -> None:
        """Forward new connections again (connections closed by the cut stay closed)."""
        self._is_cut = False

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._abort_all()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "cut" if self._is_cut else "forwarding"
        return f"DatabaseProxy({self._socket_dir} -> {self.upstream}, {state}, cuts={self.cuts})"

    async def _abort_all(self) -> None:
        connections, self._connections = self._connections, set()
        for connection in connections:
            connection.abort()
        # Let the pumps see their cancellation, so the test continues with every socket closed.
        await asyncio.gather(*(p for c in connections for p in c.pumps), return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            await self._forward(client_reader, client)
        finally:
            if handler is not None:
                self._handlers.discard(handler)

    async def _forward(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        if self._is_cut or self._server is None:
            client.transport.abort()  # the client sees its connection closed during start-up: fails at once
            return
        connection = _Forwarded(client)
        self._connections.add(connection)
        cuts_before = self.cuts
        try:
            server_reader, connection.server = await self.upstream.open()
        except (OSError, TimeoutError):
            self._connections.discard(connection)
            connection.abort()  # as a client of the server itself would see it: connection failed
            return
        if self.cuts != cuts_before or connection not in self._connections:
            connection.abort()  # cut while we were connecting
            return
        connection.pumps = [
            asyncio.create_task(_pump(client_reader, connection.server)),
            asyncio.create_task(_pump(server_reader, client)),
        ]
        try:
            # Either side closing ends the connection for both, as it would without the proxy.
            await asyncio.wait(connection.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._connections.discard(connection)
            connection.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()


def _single(value: str | tuple[str, ...] | None, name: str) -> str | None:
    """One value of a URL query parameter; several hosts (libpq's fail-over lists) are not supported."""
    if isinstance(value, tuple):
        if len(value) != 1:
            raise ValueError(f"the database URL has several {name} values: the proxy forwards to one server")
        value = value[0]
    if value is not None and "," in value:
        raise ValueError(f"the database URL lists several {name}s: the proxy forwards to one server")
    return value or None
