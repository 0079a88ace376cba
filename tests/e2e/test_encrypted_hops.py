"""Encryption on every hop (issue 12, ADR 14): customer-profile and workorder with NATS over TLS, each as its
own NATS user with only its permissions, and PostgreSQL over TLS with `sslmode=verify-full` — a customer
registered, served at workorder, and the completion consumed by customer-profile. Plain text is refused by
both servers. Real nats-server (embedded) and a real PostgreSQL with SSL (Debian's server binaries: the
pgserver wheel has no SSL)."""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import psycopg
import pytest
from e2e_cluster import Cluster, cluster_settings, eventually, rows, running_cluster

from pitlane_customer_profile.bootstrap import SPEC as PROFILE
from pitlane_customer_profile.bootstrap import build as build_profile
from pitlane_platform.db import sqlalchemy_url
from pitlane_platform.devcluster.secure_nats import SecuredNats, secure_nats
from pitlane_platform.embedded import LOOPBACK, EmbeddedNats, create_database, database_url
from pitlane_platform.security.pki import ClusterCa
from pitlane_platform.services import installed_services
from pitlane_platform.testing.tls_postgres import MISSING_BINARIES, TlsPostgres, debian_postgres_bin
from pitlane_workorder.bootstrap import SPEC as WORKORDER
from pitlane_workorder.bootstrap import build as build_workorder


@dataclass
class EncryptedServers:
    nats: EmbeddedNats
    secured: SecuredNats
    postgres: TlsPostgres


@pytest.fixture
def servers() -> Iterator[EncryptedServers]:
    if debian_postgres_bin() is None:
        pytest.skip(MISSING_BINARIES)
    # Outside pytest's tmp_path: the server runs as the postgres OS user, which must reach its directory.
    with tempfile.TemporaryDirectory(prefix="pitlane-tls-", ignore_cleanup_errors=True) as scratch:
        directory = Path(scratch)
        secured = secure_nats(directory / "security", installed_services())
        ca = ClusterCa(directory / "security")  # the same cluster CA signs PostgreSQL's certificate
        with (
            EmbeddedNats(directory / "nats", tls=secured.tls, users=secured.users) as nats_server,
            TlsPostgres(directory / "postgres", ca) as postgres,
        ):
            yield EncryptedServers(nats_server, secured, postgres)


@pytest.fixture
async def cluster(servers: EncryptedServers) -> AsyncIterator[Cluster]:
    def settings_of(spec_name: str, prefix_database: str) -> dict[str, object]:
        create_database(servers.postgres.admin_url, prefix_database)
        return {
            "database_url": sqlalchemy_url(database_url(servers.postgres.admin_url, prefix_database)),
            "nats_url": servers.nats.url,
            "nats_tls_ca_file": servers.secured.ca_file,
            "nats_nkey_seed_file": servers.secured.seed_file(spec_name),
        }

    profile_settings, workorder_settings = cluster_settings(
        settings_of(PROFILE.name, "customer_profile"), settings_of(WORKORDER.name, "workorder")
    )
    async with running_cluster(profile_settings, workorder_settings) as cluster:
        yield cluster


@pytest.mark.slow
async def test_a_visit_flows_over_tls_with_a_nats_user_per_service(
    cluster: Cluster, servers: EncryptedServers
) -> None:
    customer_id = await cluster.register("13800001111")
    vehicle = {"owner_customer_id": customer_id, "plate": "沪A10001", "brand": "大众", "model": "朗逸"}
    await cluster.call(cluster.profile, "POST", "/v1/vehicles", vehicle)

    async def workorder_knows_the_customer_and_the_car() -> bool:
        # Two aggregates, two events with no order between them: the car can arrive after the phone, and
        # an arrival for a plate workorder has not heard of asks for its make and model.
        return bool(
            rows(
                cluster.workorder_database,
                "SELECT 1 FROM directory_phones WHERE customer_id = %s",
                customer_id,
            )
        ) and bool(
            rows(cluster.workorder_database, "SELECT 1 FROM directory_vehicles WHERE plate = %s", "沪A10001")
        )

    await eventually(
        workorder_knows_the_customer_and_the_car,
        "workorder's directory has the customer and the car (NATS over TLS)",
    )
    booked = await cluster.book_online("138 0000 1111", "沪A10001", slot=0)
    assert booked["customer_id"] == customer_id
    work_order_id = await cluster.serve(booked["appointment_id"], mileage_km=42_000)

    async def visit_counted() -> bool:
        found = await cluster.lookup(plate="沪A10001")
        return found is not None and found["figures"]["visit_count"] == 1

    await eventually(visit_counted, "customer-profile consumed the completion")
    found = await cluster.lookup(plate="沪A10001")
    assert found is not None and [visit["work_order_id"] for visit in found["visits"]] == [work_order_id]

    # Every connection the services hold to PostgreSQL is encrypted; there are some of each.
    for database in ("customer_profile", "workorder"):
        sessions = rows(
            servers.postgres.admin_url,
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = %s",
            database,
        )
        assert sessions and all(ssl for (ssl,) in sessions), (database, sessions)
    # And to NATS: each service connected as its own user, over TLS (the operator reads the server's view).
    connections = await nats_connections(servers)
    assert {PROFILE.name, WORKORDER.name} <= {connection["name"] for connection in connections}
    for connection in connections:
        assert connection["tls_version"] and connection["authorized_user"] == connection["name"], connection


async def nats_connections(servers: EncryptedServers) -> list[dict[str, object]]:
    """The server's /connz, with each connection's user and TLS version (monitoring: loopback only)."""
    url = f"http://{LOOPBACK}:{servers.nats.http_port}/connz?auth=true"
    async with httpx.AsyncClient() as client:
        listing = (await client.get(url)).json()["connections"]
    public_keys = {user.public_key: user.name for user in servers.secured.users}
    return [
        {**connection, "authorized_user": public_keys.get(connection.get("authorized_user", ""), "?")}
        for connection in listing
    ]


def test_plain_text_connections_to_either_server_are_refused(servers: EncryptedServers) -> None:
    plain_url = servers.postgres.url_for("postgres", sslmode="disable")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(plain_url, connect_timeout=5)
    # A certificate that names the server, from a CA the client was not given, is refused too.
    wrong_root = servers.postgres.url_for("postgres").replace(
        f"sslrootcert={servers.secured.ca_file}", "sslrootcert=system"
    )
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(wrong_root, connect_timeout=5)

    with socket.create_connection((LOOPBACK, servers.nats.port or 0), timeout=5) as plain:
        plain.settimeout(5)
        info = json.loads(plain.recv(4096).decode().removeprefix("INFO ").strip())
        assert info["tls_required"] is True
        plain.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        answer = b""
        while chunk := plain.recv(4096):  # closed after a failed TLS handshake: never a PONG
            answer += chunk
    assert b"PONG" not in answer


async def test_a_client_without_a_user_cannot_connect_to_the_services_nats(servers: EncryptedServers) -> None:
    from pitlane_platform.security.nats_access import NatsClientAccess

    access = NatsClientAccess(ca_file=servers.secured.ca_file)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            servers.nats.url, allow_reconnect=False, connect_timeout=5, **access.connect_options()
        )


def test_each_services_nats_user_covers_the_streams_its_consumers_read(servers: EncryptedServers) -> None:
    """`ServiceSpec.consumes` is what the user may read: it must name every stream the code consumes."""
    never_connected = {"database_url": "postgresql://unused@localhost/unused", "nats_url": servers.nats.url}
    profile_settings, workorder_settings = cluster_settings(never_connected, never_connected)
    profile_runtime, _ = build_profile(profile_settings)
    workorder_runtime = build_workorder(workorder_settings).runtime
    for spec, runtime in ((PROFILE, profile_runtime), (WORKORDER, workorder_runtime)):
        sources = {consumer.source_service for consumer in runtime.consumers} - {spec.name}
        assert sources and sources <= set(spec.consumes), (spec.name, sources, spec.consumes)
