"""A service serving HTTPS itself (`python -m pitlane_platform.serve`), for deployments without a gateway, and
the TLS settings refused with the field named — real uvicorn, real workorder, real servers."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trustme
from pydantic import ValidationError

from pitlane_platform.embedded import LOOPBACK, free_port
from pitlane_platform.settings import ServiceSettings

REQUIRED = {"database_url": "postgresql://u@h/d", "nats_url": "nats://127.0.0.1:1"}


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", LOOPBACK)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return ca, cert, key


def test_a_certificate_without_its_key_is_refused_naming_both_fields(
    certificate: tuple[trustme.CA, Path, Path],
) -> None:
    _, cert, _ = certificate
    with pytest.raises(ValidationError, match="http_tls_cert_file and http_tls_key_file go together"):
        ServiceSettings(**REQUIRED, http_tls_cert_file=cert)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="nats_tls_cert_file and nats_tls_key_file go together"):
        ServiceSettings(**REQUIRED, nats_tls_cert_file=cert)  # type: ignore[arg-type]


def test_a_tls_file_that_does_not_exist_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as refused:
        ServiceSettings(**REQUIRED, nats_tls_ca_file=tmp_path / "missing-ca.crt")  # type: ignore[arg-type]
    [error] = refused.value.errors()
    assert error["loc"] == ("nats_tls_ca_file",) and error["type"] == "path_not_file"


def test_the_database_url_keeps_its_tls_options_for_every_connection() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from pitlane_platform.db import libpq_url, sqlalchemy_url

    url = "postgresql://pitlane@db.internal:5432/workorder?sslmode=verify-full&sslrootcert=/run/ca.crt"
    # As libpq reads them (SQLAlchemy percent-encodes the path's slashes; libpq decodes them).
    for rendered in (sqlalchemy_url(url), libpq_url(sqlalchemy_url(url))):
        options = conninfo_to_dict(libpq_url(rendered))
        assert (options["sslmode"], options["sslrootcert"], options["host"]) == (
            "verify-full",
            "/run/ca.crt",
            "db.internal",
        )


@pytest.mark.slow
def test_a_service_serves_https_from_its_own_settings(
    certificate: tuple[trustme.CA, Path, Path],
    make_database: Callable[[str], str],
    nats_url: str,
    tmp_path: Path,
) -> None:
    ca, cert, key = certificate
    port = free_port()
    environment = {
        **os.environ,
        "WORKORDER_DATABASE_URL": make_database("workorder"),
        "WORKORDER_NATS_URL": nats_url,
        "WORKORDER_BLOB_DIR": str(tmp_path / "blobs"),
        "WORKORDER_HTTP_TLS_CERT_FILE": str(cert),
        "WORKORDER_HTTP_TLS_KEY_FILE": str(key),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pitlane_platform.serve", "workorder", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with ca.cert_pem.tempfile() as ca_file:
            trusted = ssl.create_default_context(cafile=ca_file)
            deadline = time.monotonic() + 60
            while True:  # until the service answers over HTTPS (a positive signal), or exits
                assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
                try:
                    answer = httpx.get(f"https://localhost:{port}/health", verify=trusted, timeout=2)
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the service does not serve HTTPS"
                    time.sleep(0.2)
            assert answer.json() == {"status": "ok"}
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                httpx.get(f"https://localhost:{port}/health", timeout=5)  # a client without the CA
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.get(f"http://localhost:{port}/health", timeout=5)  # plain HTTP is not spoken
    finally:
        process.terminate()
        process.wait(30)
