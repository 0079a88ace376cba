"""NATS as `pitlane up` secures it (ADR 14): TLS with the cluster CA's certificate, one nkey user per service
with the permissions of security/nats_access.py — against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import pytest
import trustme
from nats.errors import Error as NatsError

from pitlane_platform.devcluster.secure_nats import SecuredNats, secure_nats
from pitlane_platform.embedded import LOOPBACK, EmbeddedNats
from pitlane_platform.messaging.streams import declare_stream, service_stream
from pitlane_platform.security.nats_access import OPERATOR, NatsClientAccess
from pitlane_platform.services import ServiceSpec

WORKORDER = ServiceSpec("workorder", "WORKORDER_", "unused:app", consumes=("customer-profile",))
PROFILE = ServiceSpec("customer-profile", "CUSTOMER_PROFILE_", "unused:app", consumes=("workorder",))


@pytest.fixture
def secured(tmp_path: Path) -> SecuredNats:
    return secure_nats(tmp_path / "security", [PROFILE, WORKORDER])


@pytest.fixture
def server(secured: SecuredNats, embedded_nats_factory: Callable[..., EmbeddedNats]) -> EmbeddedNats:
    return embedded_nats_factory(tls=secured.tls, users=secured.users)


async def connect(server: EmbeddedNats, access: NatsClientAccess, **options):  # type: ignore[no-untyped-def]
    return await nats.connect(
        server.url, allow_reconnect=False, connect_timeout=5, **access.connect_options(), **options
    )


async def connect_noting_errors(
    server: EmbeddedNats, access: NatsClientAccess
) -> tuple[Any, asyncio.Queue[Exception]]:
    """A client whose asynchronous errors (the server's permission violations) land in the queue returned."""
    errors: asyncio.Queue[Exception] = asyncio.Queue()

    async def on_error(error: Exception) -> None:
        await errors.put(error)

    return await connect(server, access, error_cb=on_error), errors


async def test_an_unauthenticated_client_cannot_connect(server: EmbeddedNats, secured: SecuredNats) -> None:
    with pytest.raises(NatsError, match="Authorization Violation"):
        await connect(server, NatsClientAccess(ca_file=secured.ca_file))


async def test_a_client_that_does_not_know_the_cluster_ca_refuses_the_server(
    server: EmbeddedNats, secured: SecuredNats
) -> None:
    stranger = trustme.CA()  # a CA that signed nothing of this server's
    with stranger.cert_pem.tempfile() as ca_file:
        access = NatsClientAccess(ca_file=Path(ca_file), nkey_seed_file=secured.seed_file("workorder"))
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(server, access)


def test_a_plain_text_connection_is_refused(server: EmbeddedNats) -> None:
    assert server.url.startswith("tls://")
    with socket.create_connection((LOOPBACK, server.port or 0), timeout=5) as plain:
        plain.settimeout(5)
        info = json.loads(plain.recv(4096).decode().removeprefix("INFO ").strip())
        assert info["tls_required"] is True
        plain.sendall(b'CONNECT {"verbose":false}\r\nPUB workorder.b1.Forged.v1 2\r\nhi\r\nPING\r\n')
        answer = b""
        # The server reads those bytes as a TLS handshake, fails it and closes: end of file, never a PONG
        # (a socket.timeout here would mean it kept a plain-text client).
        while chunk := plain.recv(4096):
            answer += chunk
    assert b"PONG" not in answer and b"+OK" not in answer


def test_the_monitoring_port_listens_on_loopback_only(server: EmbeddedNats) -> None:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{server.http_port}/varz", timeout=5) as response:
        varz = json.load(response)
    assert varz["http_host"] == LOOPBACK
    assert varz["tls_required"] is True and varz["auth_required"] is True


async def test_workorders_user_publishes_its_own_events_and_cannot_forge_anothers(
    server: EmbeddedNats, secured: SecuredNats
) -> None:
    operator = await connect(server, secured.client_access(OPERATOR))
    workorder, errors = await connect_noting_errors(server, secured.client_access("workorder"))
    try:
        js = operator.jetstream()
        for producer in ("workorder", "customer-profile", "notification"):
            await declare_stream(js, service_stream(producer))

        ack = await workorder.jetstream().publish("workorder.b1.WorkOrderOpened.v1", b"{}")
        assert (ack.stream, ack.seq) == ("WORKORDER", 1)

        for forged in ("customer-profile.b1.CustomerRegistered.v1", "notification.b1.NpsAnswered.v1"):
            await workorder.publish(forged, b'{"score": 0}')
            await workorder.flush()
            error = await asyncio.wait_for(errors.get(), timeout=10)
            # nats-py lowercases the server's `-ERR 'Permissions Violation for Publish to "<subject>"'`.
            assert f'permissions violation for publish to "{forged.lower()}"' in str(error)
            # Through JetStream too: the server drops the publish, so no ack ever comes.
            with pytest.raises(nats.errors.TimeoutError):
                await workorder.jetstream().publish(forged, b'{"score": 0}', timeout=1)
            await asyncio.wait_for(errors.get(), timeout=10)
        for stream in ("CUSTOMER_PROFILE", "NOTIFICATION"):
            assert (await js.stream_info(stream)).state.messages == 0
        assert workorder.is_connected  # a refused publish is an error, not a disconnection
    finally:
        await workorder.close()
        await operator.close()


async def test_a_service_cannot_subscribe_to_anothers_subjects_or_read_streams_it_does_not_consume(
    server: EmbeddedNats, secured: SecuredNats
) -> None:
    operator = await connect(server, secured.client_access(OPERATOR))
    profile, errors = await connect_noting_errors(server, secured.client_access("customer-profile"))
    try:
        await declare_stream(operator.jetstream(), service_stream("notification"))
        await profile.subscribe("workorder.>")
        await profile.flush()
        error = await asyncio.wait_for(errors.get(), timeout=10)
        assert 'permissions violation for subscription to "workorder.>"' in str(error)
        # NOTIFICATION is not among what this spec consumes: no consumer can be made on it.
        with pytest.raises(nats.errors.TimeoutError):
            await profile.jetstream().pull_subscribe("notification.>", durable="peek", stream="NOTIFICATION")
    finally:
        await profile.close()
        await operator.close()


def test_users_and_keys_are_made_once_and_kept(tmp_path: Path) -> None:
    first = secure_nats(tmp_path / "security", [WORKORDER])
    seed = first.seed_file("workorder")
    assert oct(seed.stat().st_mode & 0o777) == "0o600"
    assert oct(first.tls.key_file.stat().st_mode & 0o777) == "0o600"
    again = secure_nats(tmp_path / "security", [WORKORDER])
    assert [user.public_key for user in again.users] == [user.public_key for user in first.users]
    assert again.ca_file.read_bytes() == first.ca_file.read_bytes()
    assert again.tls.cert_file.read_bytes() == first.tls.cert_file.read_bytes()
    assert b"SU" in seed.read_bytes()[:2]  # a user seed; the server's configuration names public keys only
